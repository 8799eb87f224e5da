"""Prefetch: items in order, the source's error after the items before it, and a read-ahead bounded by a count
of items and, with a weight, by the weight of the items waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hashsvc.service.prefetch import Prefetch


class Counted:
    """A source of pages (lists of `size` entries) that records how many the reader has taken."""

    def __init__(self, pages: int, size: int) -> None:
        self.pages, self.size = pages, size
        self.taken = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[list[int]]:
        try:
            for n in range(self.pages):
                self.taken += 1
                yield [n] * self.size
        finally:
            self.closed.set()


def settled(source: Counted) -> int:
    """How many pages the reader took once it stopped taking more: those waiting, and one in its hands that
    waits for room."""
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.3:
        if source.taken != last:
            last, stable_since = source.taken, time.monotonic()
        time.sleep(0.01)
    return last


def test_items_come_out_in_order_then_the_source_error() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise ValueError("page 6 failed")

    seen: list[int] = []
    ahead = Prefetch(source(), depth=2)
    with pytest.raises(ValueError, match="page 6 failed"):
        for item in ahead:
            seen.append(item)
    ahead.close()
    assert seen == [0, 1, 2, 3, 4]


def test_without_a_weight_it_reads_depth_items_ahead() -> None:
    source = Counted(pages=100, size=10)
    ahead = Prefetch(iter(source), depth=4)
    try:
        assert settled(source) == 4 + 1
    finally:
        ahead.close()


def test_with_a_weight_it_reads_ahead_until_the_waiting_items_weigh_the_budget() -> None:
    source = Counted(pages=100, size=10)
    ahead = Prefetch(iter(source), depth=4, weight=len, budget=250)
    try:
        assert settled(source) == 25 + 1  # 25 pages of 10 entries waiting
        first = next(iter(ahead))
        assert first == [0] * 10
        assert settled(source) == 26 + 1  # one taken out, one more read
    finally:
        ahead.close()


def test_large_pages_are_still_read_depth_ahead() -> None:
    source = Counted(pages=100, size=1000)
    ahead = Prefetch(iter(source), depth=4, weight=len, budget=250)
    try:
        assert settled(source) == 4 + 1
    finally:
        ahead.close()


def test_close_stops_a_reader_that_waits_for_room_and_closes_the_source() -> None:
    source = Counted(pages=100, size=1)
    ahead = Prefetch(iter(source), depth=2)
    settled(source)
    ahead.close()
    assert source.closed.wait(5)
    assert source.taken < 100
