"""Where the API finds its collaborators: bound to the app in `init_app`, never hung on globals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app

from hashsvc.errors import OverloadedError
from hashsvc.service.service import Service

EXTENSION = "hashsvc"


class Admission:
    """At most `slots` CPU-heavy requests per process; the rest wait up to `timeout_s`, then get 503.

    Under overload this keeps latency and memory flat: excess requests are refused in a fraction of a
    second with Retry-After instead of piling up behind the hashing work.
    """

    def __init__(self, slots: int, timeout_s: float) -> None:
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self.timeout_s = timeout_s

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.timeout_s):
            raise OverloadedError("the service is at capacity; retry after the delay in Retry-After")
        try:
            yield
        finally:
            self._slots.release()


def init_app(app: Flask, svc: Service) -> None:
    app.extensions[EXTENSION] = svc
    app.extensions[EXTENSION + ".admission"] = Admission(svc.settings.max_inflight, svc.settings.queue_timeout_s)


def service() -> Service:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def admission() -> Admission:
    return current_app.extensions[EXTENSION + ".admission"]  # type: ignore[no-any-return]
