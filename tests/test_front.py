"""The ASGI front hands the app only complete requests, and refuses slow, oversized and piled-up bodies itself.

Driven directly with ASGI messages (no sockets), so the timings are the front's own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from hashsvc.api.front import BodyLimits, Front


class EchoApp:
    """A WSGI app that says how much body it got and on which thread it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.threads: set[str] = set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        body = environ["wsgi.input"].read()
        payload = json.dumps({
            "length": len(body),
            "content_length": environ["CONTENT_LENGTH"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "remote": environ["REMOTE_ADDR"],
            "auth": environ.get("HTTP_AUTHORIZATION"),
            "spoofed": environ.get("HTTP_X_FORWARDED_FOR"),
        }).encode()
        start_response("201 Created", [("Content-Type", "application/json")])
        return [payload]


def scope(headers: list[tuple[bytes, bytes]] | None = None, path: str = "/v1/match") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"a=1",
        "headers": headers or [],
        "client": ("10.0.0.7", 5555),
        "server": ("127.0.0.1", 8080),
        "http_version": "1.1",
        "scheme": "http",
    }


def run(front: Front, request_scope: dict[str, Any], chunks: list[tuple[float, bytes, bool]]) -> dict[str, Any]:
    """Feed body chunks (delay before it, bytes, more_body) and collect what the front sends back."""
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        queue = list(chunks)

        async def receive() -> dict[str, Any]:
            if not queue:
                await asyncio.sleep(3600)  # a client that just stops sending
            delay, body, more = queue.pop(0)
            await asyncio.sleep(delay)
            return {"type": "http.request", "body": body, "more_body": more}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await front(request_scope, receive, send)

    asyncio.run(main())
    start, body = sent
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return {"status": start["status"], "headers": headers, "json": json.loads(body["body"])}


def front(app: EchoApp, **limits: Any) -> Front:
    return Front(app, BodyLimits(**{"max_body_bytes": 1000, **limits}), threads=2)


def test_a_complete_request_reaches_the_app_with_its_whole_body_and_headers() -> None:
    app = EchoApp()
    headers = [(b"authorization", b"Bearer k"), (b"content-length", b"6")]
    answer = run(front(app), scope(headers), [(0, b"abc", True), (0, b"def", False)])
    assert answer["status"] == 201
    assert answer["json"] == {
        "length": 6, "content_length": "6", "path": "/v1/match", "query": "a=1", "remote": "10.0.0.7",
        "auth": "Bearer k", "spoofed": None,
    }
    assert app.threads and all(name.startswith("hashsvc-app") for name in app.threads)


def test_a_header_with_an_underscore_cannot_pose_as_its_dashed_twin() -> None:
    app = EchoApp()
    answer = run(front(app), scope([(b"x_forwarded_for", b"1.2.3.4")]), [(0, b"", False)])
    assert answer["json"]["spoofed"] is None


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read() -> None:
    app = EchoApp()
    answer = run(front(app), scope([(b"content-length", b"5000")]), [])
    assert answer["status"] == 413
    assert answer["json"]["error"]["code"] == "too_large"
    assert app.calls == 0


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    app = EchoApp()
    answer = run(front(app), scope(), [(0, b"x" * 600, True), (0, b"x" * 600, True)])
    assert answer["status"] == 413
    assert app.calls == 0


def test_a_body_slower_than_the_minimum_rate_gets_408_without_reaching_the_app() -> None:
    app = EchoApp()
    slow = front(app, min_body_rate=100, body_grace_s=0.2, body_timeout_s=10)
    started = time.monotonic()
    # 10 bytes, then nothing: the rate allows 0.2 s + 10 / 100 s = 0.3 s for the next chunk.
    answer = run(slow, scope(), [(0, b"x" * 10, True)])
    assert answer["status"] == 408
    assert answer["json"]["error"]["code"] == "request_timeout"
    assert answer["headers"]["connection"] == "close"
    assert 0.25 < time.monotonic() - started < 2
    assert app.calls == 0


def test_a_body_that_keeps_up_with_the_rate_is_accepted_even_when_it_takes_a_while() -> None:
    app = EchoApp()
    steady = front(app, min_body_rate=100, body_grace_s=0.1, body_timeout_s=10)
    chunks = [(0.05, b"x" * 10, True) for _ in range(8)] + [(0.05, b"x" * 10, False)]
    assert run(steady, scope(), chunks)["json"]["length"] == 90


def test_the_whole_body_must_arrive_within_the_body_timeout_whatever_its_rate() -> None:
    app = EchoApp()
    capped = front(app, max_body_bytes=10**6, min_body_rate=1, body_grace_s=5, body_timeout_s=0.3)
    answer = run(capped, scope(), [(0.1, b"x", True)] * 10)
    assert answer["status"] == 408


def test_bodies_buffered_at_once_over_the_process_cap_are_refused_with_retry_after() -> None:
    app = EchoApp()
    capped = front(app, max_buffered_bytes=500)
    capped.buffered = 450  # other clients' bodies still arriving
    answer = run(capped, scope(), [(0, b"x" * 100, False)])
    assert answer["status"] == 503
    assert answer["json"]["error"]["code"] == "overloaded"
    assert answer["headers"]["retry-after"] == "1"
    assert capped.buffered == 450  # what this request held is released


def test_a_content_length_that_is_not_a_number_is_a_json_400() -> None:
    answer = run(front(EchoApp()), scope([(b"content-length", b"ten")]), [])
    assert answer["status"] == 400
    assert answer["json"]["error"]["code"] == "bad_request"


def test_an_app_that_raises_past_its_own_handlers_gives_a_json_500_not_a_dropped_connection() -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("boom")

    answer = run(Front(broken, BodyLimits(max_body_bytes=10), threads=1), scope(), [(0, b"", False)])
    assert answer["status"] == 500
    assert answer["json"]["error"]["code"] == "internal_error"
    assert "boom" not in json.dumps(answer["json"])


def test_lifespan_is_acknowledged_and_shutdown_closes_the_service() -> None:
    closed: list[bool] = []
    lifespan_front = Front(EchoApp(), BodyLimits(max_body_bytes=10), threads=1, on_shutdown=lambda: closed.append(True))
    sent: list[str] = []

    async def main() -> None:
        messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await lifespan_front({"type": "lifespan"}, receive, send)

    asyncio.run(main())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True]
