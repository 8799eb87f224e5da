"""What a hostile or broken partner server cannot do to a feed sync through the shared HTTP helper
(hashsvc.exchanges.base.Http): fill memory with a compressed page, or hold the sync with a trickling one."""

from __future__ import annotations

import functools
import gzip
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hashsvc.exchanges import base
from hashsvc.exchanges.base import Http, MalformedFeedError, TransientFeedError
from hashsvc.netguard import Guard

PAGE = gzip.compress(b'{"entries": [1, 2, 3]}')


LIMIT = 4 << 20  # MAX_BODY in these tests (64 MiB in service), so that the bomb is quick to make


@functools.cache
def bomb() -> bytes:
    """A gzip body of about 60 KB that unpacks to 16 x LIMIT (64 MiB) of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    zeros = b"\0" * (1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(16 * LIMIT >> 20)) + packer.flush()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
            return
        body = bomb() if self.path == "/bomb" else PAGE
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http() -> Iterator[Http]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Http(f"http://127.0.0.1:{server.server_address[1]}", timeout_s=5, guard=Guard.from_setting(
        "127.0.0.0/8", "HASHSVC_EXCHANGE_ALLOWED_NETWORKS"))
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_a_compressed_page_is_decoded_once(http: Http) -> None:
    assert http.json("GET", "page") == {"entries": [1, 2, 3]}


def test_a_page_that_unpacks_past_the_limit_is_refused_before_it_is_all_in_memory(
    http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "MAX_BODY", LIMIT)
    bomb()
    tracemalloc.start()
    try:
        with pytest.raises(MalformedFeedError, match="larger than"):
            http.request("GET", "bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Refused at the first chunk past the limit: never the 64 MiB of the whole page, nor copies of it.
    assert peak < 3 * LIMIT, peak


def test_a_page_trickling_in_is_cut_off_at_the_page_deadline(http: Http, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "PAGE_DEADLINE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(TransientFeedError, match=r"not complete within 0\.5 s"):
        http.request("GET", "drip")
    assert time.monotonic() - started < 2  # a read timeout of 5 s never fired: each byte came within 0.1 s
