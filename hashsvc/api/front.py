"""The HTTP front: granian speaks HTTP, this ASGI adapter hands only complete requests to the Flask app.

Why not granian's own WSGI interface: it lets the app read the body from a worker thread, so 64 clients that
send a body one byte every 2 s held every thread and stopped all service (measured: 20 of 20 normal requests
timed out). Here the body is read on the event loop, which costs a coroutine per slow client instead of a
thread, under three limits:

- its size: a declared Content-Length above `max_body_bytes` is refused before a byte is read, and a chunked
  body is cut off as soon as it passes the limit (413 `too_large`);
- its rate: after `body_grace_s`, the body must keep arriving at `min_body_rate` bytes/s on average, and all of
  it within `body_timeout_s` (408 `request_timeout`);
- what all the clients of one process may have buffered at once, `max_buffered_bytes` (503 `overloaded`).

Header timeouts, header and URL sizes and connection counts are granian's (see `hashsvc.server`). A request
that passes all of this runs the WSGI app in a bounded thread pool with its body already in memory, so a
thread is only ever busy with work, never with waiting for a client.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class BodyLimits:
    max_body_bytes: int
    max_url_bytes: int = 8192
    max_header_bytes: int = 65536
    body_timeout_s: float = 60.0
    body_grace_s: float = 2.0
    min_body_rate: int = 64 * 1024
    max_buffered_bytes: int = 512 * 1024 * 1024


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class _Disconnected(Exception):
    pass


class Front:
    """ASGI app over a WSGI app: read the whole body on the loop, then call the WSGI app in a thread."""

    def __init__(
        self,
        wsgi_app: WsgiApp,
        limits: BodyLimits,
        *,
        threads: int,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.limits = limits
        self.threads = max(1, threads)
        self.on_shutdown = on_shutdown
        self.buffered = 0  # bytes of bodies being read right now, over every connection of this process
        self._pool: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    # ------------------------------------------------------------------------------------------ lifespan

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---------------------------------------------------------------------------------------------- http

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self._read_body(scope, receive)
        except _Refused as refused:
            await _send_json_error(send, refused.status, refused.code, refused.message, refused.headers)
            return
        except _Disconnected:
            return
        status, headers, payload = await asyncio.get_running_loop().run_in_executor(
            self._executor(), self._call_wsgi, scope, body
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:  # created on the worker's loop thread, after the server forked the worker
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hashsvc-app")
        return self._pool

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limits = self.limits
        _check_head(scope, limits)
        declared = _declared_length(scope)
        if declared is not None and declared > limits.max_body_bytes:
            raise _Refused(413, "too_large", f"the request body is larger than the {limits.max_body_bytes}-byte limit")
        started = time.monotonic()
        chunks: list[bytes] = []
        received = 0
        try:
            while True:
                message = await self._next_message(receive, started, received)
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                if chunk:
                    received += len(chunk)
                    self.buffered += len(chunk)
                    chunks.append(chunk)
                    self._check_size(received)
                if not message.get("more_body", False):
                    break
        finally:
            self.buffered -= received
        return b"".join(chunks)

    async def _next_message(self, receive: Receive, started: float, received: int) -> Message:
        """The next body message, within what the minimum rate and the overall body deadline still allow."""
        limits = self.limits
        rate_deadline = started + limits.body_grace_s + received / max(1, limits.min_body_rate)
        deadline = min(rate_deadline, started + limits.body_timeout_s)
        try:
            return await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise _Refused(
                408,
                "request_timeout",
                f"the request body arrived too slowly (at least {limits.min_body_rate} bytes/s after "
                f"{limits.body_grace_s:g} s, all of it within {limits.body_timeout_s:g} s)",
                (("Connection", "close"),),
            ) from None

    def _check_size(self, received: int) -> None:
        if received > self.limits.max_body_bytes:
            raise _Refused(
                413, "too_large", f"the request body is larger than the {self.limits.max_body_bytes}-byte limit"
            )
        if self.buffered > self.limits.max_buffered_bytes:
            raise _Refused(
                503,
                "overloaded",
                "the service is receiving too many uploads at once; retry after the delay in Retry-After",
                (("Retry-After", "1"),),
            )

    # ---------------------------------------------------------------------------------------------- wsgi

    def _call_wsgi(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run the WSGI app on a complete request; its (small, JSON) response is collected whole."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            started[:] = [status, headers]
            return lambda _data: None  # the legacy write() callable; Flask never uses it

        try:
            result = self.wsgi_app(_environ(scope, body), start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            status, headers = started
            encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            return int(status.split(" ", 1)[0]), encoded, payload
        except Exception:  # the app answers its own errors; this is the last line of defence
            log.exception("unhandled error in the WSGI bridge")
            return _json_error(500, "internal_error", "an internal error occurred; it has been logged")


def _check_head(scope: Scope, limits: BodyLimits) -> None:
    """The exact limits on the URL and the headers, answered in JSON. (granian's parser refuses far larger ones
    itself, with an empty body: see `hashsvc.server`.)"""
    url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
    if url_bytes > limits.max_url_bytes:
        raise _Refused(414, "uri_too_long", f"the URL is longer than {limits.max_url_bytes} bytes")
    if sum(len(name) + len(value) for name, value in scope.get("headers", ())) > limits.max_header_bytes:
        raise _Refused(431, "headers_too_large", f"the request headers are larger than {limits.max_header_bytes} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise _Refused(400, "bad_request", "the Content-Length header is not a number") from None
    return None


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        # WSGI carries the percent-decoded path as bytes in a latin-1 str (PEP 3333).
        "PATH_INFO": scope["path"].encode("utf-8", "surrogateescape").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0] if client else "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1")
        if "_" in name:
            # `X_Forwarded_For` and `X-Forwarded-For` would both become HTTP_X_FORWARDED_FOR; drop the odd one
            # so that one header can never be spoofed through the other.
            continue
        if name == "content-length":
            continue  # the body is complete: its real length was set above
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _json_error(status: int, code: str, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    payload = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())], payload


async def _send_json_error(
    send: Send, status: int, code: str, message: str, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    status, headers, payload = _json_error(status, code, message)
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
