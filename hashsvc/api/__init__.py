"""The HTTP API: a Flask app factory over `hashsvc.service.Service`.

`create_app(settings)` builds the app and binds its collaborators; no I/O happens at import time. The index
loads in a background thread, so the process answers /healthz at once and /readyz turns 200 when the index
has caught up with the store.
"""

from __future__ import annotations

import threading

from flask import Flask

from hashsvc import ui as console
from hashsvc.api import (
    admin,
    aftermatch,
    aftermetrics,
    context,
    curate,
    exchanges,
    limits,
    match,
    metrics,
    ops,
    request_log,
    search,
    video,
)
from hashsvc.api.errors import register_error_handlers
from hashsvc.config import Settings, load_settings
from hashsvc.service.service import Service

# Multipart framing around an upload at the size limit must not trip the body limit first.
MULTIPART_ALLOWANCE = 64 * 1024


def create_app(settings: Settings | None = None, *, service: Service | None = None, background: bool = True) -> Flask:
    """Build the app. With `background`, start the index loader / change-log tail and the snapshot writer."""
    settings = settings or (service.settings if service else load_settings())
    svc = service or Service(settings)
    app = Flask("hashsvc")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + MULTIPART_ALLOWANCE
    app.json.sort_keys = False  # type: ignore[attr-defined]
    context.init_app(app, svc)
    register_error_handlers(app)
    limits.init_app(app)
    metrics.init_app(app)
    request_log.init_app(app, enabled=settings.request_log)
    for blueprint in (match.bp, curate.bp, admin.bp, ops.bp, search.bp, aftermatch.bp, exchanges.bp, video.bp):
        app.register_blueprint(blueprint)
    aftermetrics.init_app(app, svc)
    console.init_app(app, settings)  # the analyst console under /ui/ (hashsvc.ui)
    if background:
        svc.live.listeners.append(lambda: metrics.set_index_gauges(svc.status()))
        svc.live.start()
        svc.after.start_background()  # webhook deliveries, pruning (one process at a time, by lease)
        if settings.snapshot_interval_s > 0:
            _start_snapshot_writer(svc, settings.snapshot_interval_s)
        if settings.exchange_scheduler:
            exchanges.start_scheduler(svc)
    return app


def _start_snapshot_writer(svc: Service, interval_s: float) -> None:
    def run() -> None:
        last = -1
        while not svc.live.wait_stopped(interval_s):
            if svc.live.ready and svc.live.sequence != last and svc.live.save_snapshots():
                last = svc.live.sequence

    threading.Thread(target=run, name="hashsvc-snapshots", daemon=True).start()
