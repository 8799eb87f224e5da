"""Running the API: granian (a Rust HTTP server) in front, the Flask app behind `hashsvc.api.front`.

Why granian and not gunicorn's threaded workers, which served until round 2: gunicorn gives a thread to a
connection as soon as its first bytes arrive and keeps it while the rest trickles in, so 16 sockets sending one
header line every 2 s made normal requests wait 9 s and 32 stopped the service. granian parses requests on
an async runtime (a slow client costs a little memory, no thread), times out slow headers, and bounds header
sizes and concurrent requests; `front.Front` does the same for bodies. Numbers: README "Security".

What granian answers by itself, before the app sees the request, comes with the right status and an empty
body, not the JSON error shape, because its parser answers, not the app: a malformed request line (400), a URL
or headers too big for its read buffer (414, 431; twice `max_header_bytes`), more than 100 headers (431),
headers slower than `header_timeout_s` (the connection is closed). Within the buffer, `front` enforces the URL
and header limits exactly and answers in JSON.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import shutil
import socket
import tempfile
from typing import TYPE_CHECKING, Any

from hashsvc.config import ENV_PREFIX, SETTINGS, Settings, load_settings
from hashsvc.errors import ConflictError

if TYPE_CHECKING:
    from hashsvc.service.live_index import LiveIndex


def app() -> Any:
    """The ASGI app of one server process (granian calls this factory in each worker after it starts)."""
    from hashsvc.api import MULTIPART_ALLOWANCE, create_app
    from hashsvc.api.context import service
    from hashsvc.api.front import BodyLimits, Front

    settings = load_settings()
    flask_app = create_app(settings)
    with flask_app.app_context():
        svc = service()
    freeze_startup_objects_when_ready(svc.live)
    limits = BodyLimits(
        max_body_bytes=settings.max_upload_bytes + MULTIPART_ALLOWANCE,
        max_header_bytes=settings.max_header_bytes,
        body_timeout_s=settings.body_timeout_s,
        min_body_rate=settings.min_body_rate,
        max_buffered_bytes=settings.max_buffered_mb * 1024 * 1024,
    )
    return Front(flask_app.wsgi_app, limits, threads=settings.threads, on_shutdown=svc.close)


def freeze_startup_objects_when_ready(live: LiveIndex) -> None:
    """Once the index has loaded, take every object alive then out of the garbage collector's sight (gc.freeze).

    A serving process holds ~235k objects from start-up (modules, the app, numba's compiled kernels), all kept
    until it exits, and every full collection walked them again: ~120 ms each, set off every 10-20 batches of
    1,000 hash sets by what the batches allocate, so 6-12 ms per batch on average (~10% of its CPU at 1M
    hashes). Frozen, a full collection only looks at what requests made. The cost: cyclic garbage among the
    frozen objects is never freed, and start-up leaves none worth freeing.
    """
    frozen = False

    def freeze() -> None:
        nonlocal frozen
        if live.ready and not frozen:
            gc.freeze()
            frozen = True

    live.listeners.append(freeze)


def serve(settings: Settings) -> None:
    """Serve until interrupted. Every worker process builds its own app from the same settings."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    refuse_busy_port(settings.host, settings.port)
    # Workers read their settings from the environment, so flags given to `hashsvc serve` must be there too.
    os.environ.update(_as_environment(settings))
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="hashsvc-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    server = Server(
        "hashsvc.server:app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        http=HTTPModes.http1,  # upload pipelines speak HTTP/1.1; HTTP/2 would add a second parser to attack
        websockets=False,
        backlog=max(128, settings.max_connections),
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout_s * 1000),
            keep_alive=True,
            # hyper's read buffer: the parser's own backstop; the front enforces max_header_bytes exactly.
            max_buffer_size=max(8192, 2 * settings.max_header_bytes),
        ),
        respawn_failed_workers=True,
        workers_kill_timeout=10,
        log_access=False,
    )
    try:
        server.serve()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def refuse_busy_port(host: str, port: int) -> None:
    """Raise ConflictError when something already listens on host:port.

    granian binds with SO_REUSEPORT, so a second `hashsvc serve` on a busy port would start without a word and
    the kernel would share connections between the two servers, old code and new, or another replica's store.
    A plain bind (SO_REUSEADDR only, which passes over TIME_WAIT but never over a listener) tells first.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConflictError(
                f"{host}:{port} is already in use (another `hashsvc serve`?); stop it or choose --port",
                code="port_in_use",
            ) from None


def _as_environment(settings: Settings) -> dict[str, str]:
    values = dataclasses.asdict(settings)
    return {ENV_PREFIX + spec.name.upper(): str(values[spec.name]) for spec in SETTINGS}
