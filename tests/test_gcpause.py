"""gc_paused: automatic garbage collection is off inside, and back as it was after, whatever the nesting."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from hashsvc.service.gcpause import gc_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after() -> None:
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_in_the_block_still_turns_the_collector_back_on() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("write failed")
    assert gc.isenabled()


def test_nested_pauses_turn_it_back_on_only_when_the_outer_one_ends() -> None:
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_end_with_the_collector_on() -> None:
    # Thread A pauses, B pauses, A ends first: B's write must stay paused, and the collector is on once B ends.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen_by_b: list[bool] = []

    def a() -> None:
        with gc_paused():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with gc_paused():
            b_in.set()
            a_out.wait(5)
            seen_by_b.append(gc.isenabled())

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen_by_b == [False]
    assert gc.isenabled()


def test_a_collector_the_application_turned_off_stays_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()
