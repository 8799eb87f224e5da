"""Read an iterator ahead in a thread, so that fetching pages N+1... overlaps writing page N.

A feed sync alternates between waiting for the partner (network, their server, the parser process) and writing
to the store (SQLite and psycopg release the GIL while they work); reading ahead overlaps the two. Exceptions
raised by the source come out of `next()` in the consumer, in order; `close()` stops the reader.

How far ahead: at least `depth` items, and, with a `weight` (a page's entry count), until the items waiting
weigh `budget` (a batch's worth of entries). A sync writes up to 10,000+ entries at once; reading only four
1000-entry pages ahead left the parser idle for most of each write and the writer idle while the rest of the
next batch was fetched and parsed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.1  # how often a blocked reader looks at the stop flag


class Prefetch(Generic[T]):
    def __init__(
        self,
        source: Iterator[T],
        depth: int = 1,
        *,
        weight: Callable[[T], int] | None = None,
        budget: int = 0,
    ) -> None:
        self._depth = depth
        self._weight = weight
        self._budget = budget
        self._items: deque[tuple[object, int]] = deque()
        self._held = 0  # the weight of the items waiting
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name="hashsvc-prefetch", daemon=True)
        self._thread.start()

    def _full(self) -> bool:
        return len(self._items) >= self._depth and (self._weight is None or self._held >= self._budget)

    def _put(self, value: object, weight: int = 0) -> bool:
        with self._changed:
            while self._full():
                if self._stop.is_set():
                    return False
                self._changed.wait(_POLL_S)
            if self._stop.is_set():
                return False
            self._items.append((value, weight))
            self._held += weight
            self._changed.notify_all()
        return True

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(item, self._weight(item) if self._weight is not None else 0):
                    return
            self._put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in its own thread
            self._put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _get(self) -> object:
        with self._changed:
            while not self._items:
                self._changed.wait()
            value, weight = self._items.popleft()
            self._held -= weight
            self._changed.notify_all()
        return value

    def __iter__(self) -> Iterator[T]:
        while True:
            value = self._get()
            if value is _END:
                return
            if isinstance(value, BaseException):
                raise value
            yield value  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=30)
