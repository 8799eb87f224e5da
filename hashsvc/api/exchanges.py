"""/v1/exchanges: partner feeds. Scope `curate` reads them, `admin` adds, changes, syncs and removes them.

Credentials go in (POST, PATCH) and never come out: answers say only whether an exchange has some.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from flask import Blueprint, Response, g

from hashsvc.api.auth import require
from hashsvc.api.body import json_body
from hashsvc.api.context import service
from hashsvc.service.service import Service

bp = Blueprint("exchanges", __name__, url_prefix="/v1")


@bp.get("/exchanges")
@require("curate")
def list_exchanges() -> dict[str, Any]:
    return {"exchanges": service().exchanges.list()}


@bp.post("/exchanges")
@require("admin")
def add_exchange() -> tuple[dict[str, Any], int]:
    return service().exchanges.add(json_body(), g.actor), 201


@bp.get("/exchanges/<name>")
@require("curate")
def show_exchange(name: str) -> dict[str, Any]:
    return service().exchanges.show(name)


@bp.patch("/exchanges/<name>")
@require("admin")
def update_exchange(name: str) -> dict[str, Any]:
    return service().exchanges.update(name, json_body(), g.actor)


@bp.post("/exchanges/<name>/pause")
@require("admin")
def pause_exchange(name: str) -> dict[str, Any]:
    return service().exchanges.pause(name, g.actor)


@bp.post("/exchanges/<name>/resume")
@require("admin")
def resume_exchange(name: str) -> dict[str, Any]:
    return service().exchanges.resume(name, g.actor)


@bp.post("/exchanges/<name>/sync")
@require("admin")
def sync_exchange(name: str) -> tuple[dict[str, Any], int]:
    # A first sync of a large feed takes minutes: the request only makes it due now, and the scheduler (in a
    # server with HASHSVC_EXCHANGE_SCHEDULER=1, or `hashsvc exchange run`) picks it up within seconds.
    return service().exchanges.request_sync(name, g.actor), 202


@bp.delete("/exchanges/<name>")
@require("admin")
def remove_exchange(name: str) -> Response:
    service().exchanges.remove(name, g.actor)
    return Response(status=204)


def start_scheduler(svc: Service) -> threading.Event:
    """Run the feed scheduler in a daemon thread of this process; set the returned event to stop it."""
    stop = threading.Event()
    owner = f"{socket.gethostname()}:{os.getpid()}"
    threading.Thread(
        target=svc.exchanges.run_scheduler, args=(owner, stop), name="hashsvc-exchanges", daemon=True
    ).start()
    return stop
