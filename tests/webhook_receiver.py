"""A webhook receiver for tests: verifies every signature, remembers idempotency keys, can be told to fail."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hashsvc.service.webhooks import SIGNATURE_HEADER, verify


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.fail_next = 0  # answer 500 to this many requests
        self.delay_s = 0.0
        self.one_at_a_time = False  # handle requests in turn, each taking delay_s (a receiver that keeps up slowly)
        self.turn = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every POST, duplicates included
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.url = ""

    @property
    def unique(self) -> dict[str, dict[str, Any]]:
        """Idempotency key -> the first body received with it (what a deduplicating receiver processes)."""
        seen: dict[str, dict[str, Any]] = {}
        with self.lock:
            for request in self.requests:
                seen.setdefault(request["key"], request)
        return seen

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.unique) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"received {len(self.unique)} of {count} events within {timeout_s} s")
            time.sleep(0.02)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.turn if receiver.one_at_a_time else contextlib.nullcontext():
                self._record(body)

        def _record(self, body: bytes) -> None:
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            ok = verify(receiver.secret, self.headers.get(SIGNATURE_HEADER, ""), body)
            with receiver.lock:
                if not ok:
                    receiver.bad_signatures += 1
                failing = receiver.fail_next > 0
                if failing:
                    receiver.fail_next -= 1
                else:
                    receiver.requests.append(
                        {
                            "key": self.headers["Idempotency-Key"],
                            "body": json.loads(body),
                            "at": time.time(),
                            "event": self.headers["X-Hashsvc-Event"],
                        }
                    )
            self.send_response(500 if failing or not ok else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
