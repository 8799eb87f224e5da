"""Read an iterator one item ahead in a thread, so that fetching page N+1 overlaps writing page N.

A feed sync alternates between waiting for the partner (network, their server) and writing to the store
(SQLite and psycopg release the GIL while they work); reading ahead overlaps the two. Exceptions raised by the
source come out of `next()` in the consumer, in order; `close()` stops the reader.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class Prefetch(Generic[T]):
    def __init__(self, source: Iterator[T], depth: int = 1) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name="hashsvc-prefetch", daemon=True)
        self._thread.start()

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in its own thread
            self._put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while True:
            value = self._queue.get()
            if value is _END:
                return
            if isinstance(value, BaseException):
                raise value
            yield value  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
