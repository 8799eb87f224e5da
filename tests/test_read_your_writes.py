"""Read-your-writes: a match first catches its process up with every change committed before it arrived.

`LatestSequence` (PostgreSQL) shares reads of the store's sequence: a caller is answered only by a read that began
after it called, and concurrent callers share reads. `PooledSequence` (SQLite) reads at once for each caller. The
end-to-end check, across two real servers whose tail threads are too slow to help, is in test_replicas.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hashsvc.config import Settings
from hashsvc.service.live_index import LatestSequence, LiveIndex, PooledSequence
from hashsvc.service.service import Service
from hashsvc.store import Store
from hashsvc.store.migrate import upgrade


class GatedStore:
    """A sequence that a test advances, and reads that a test can hold open."""

    def __init__(self) -> None:
        self.sequence = 0
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()
        self.reading = threading.Event()

    def read(self) -> int:
        self.reads += 1
        seen = self.sequence
        self.reading.set()
        self.gate.wait(5)
        return seen


def in_thread(latest: LatestSequence, answers: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: answers.append(latest.read(5)))
    thread.start()
    return thread


def test_a_caller_is_answered_by_a_read_that_began_after_it_called() -> None:
    store = GatedStore()
    latest = LatestSequence(store.read)
    store.gate.clear()
    first: list[int] = []
    early = in_thread(latest, first)
    assert store.reading.wait(5)  # the first read has seen sequence 0 and is held open
    store.sequence = 7  # a change commits now, and then a second caller arrives
    second: list[int] = []
    late = in_thread(latest, second)
    time.sleep(0.05)
    store.gate.set()
    early.join(5), late.join(5)
    assert first == [0]
    assert second == [7]  # not the answer of the read already running when it called
    assert store.reads == 2


def test_callers_that_arrive_during_one_read_share_the_next() -> None:
    store = GatedStore()
    latest = LatestSequence(store.read)
    store.gate.clear()
    answers: list[int] = []
    threads = [in_thread(latest, answers)]
    assert store.reading.wait(5)
    store.sequence = 3
    threads += [in_thread(latest, answers) for _ in range(8)]
    time.sleep(0.05)
    store.gate.set()
    for thread in threads:
        thread.join(5)
    assert sorted(answers) == [0] + [3] * 8
    assert store.reads == 2


def test_a_failed_read_reaches_its_callers_and_the_next_read_is_tried_afresh() -> None:
    outcomes: list[int | Exception] = [RuntimeError("database restarting"), 4]

    def read() -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    latest = LatestSequence(read)
    with pytest.raises(RuntimeError, match="restarting"):
        latest.read(1)
    assert latest.read(1) == 4


def test_a_caller_gives_up_waiting_after_its_timeout() -> None:
    store = GatedStore()
    latest = LatestSequence(store.read)
    store.gate.clear()
    holder = in_thread(latest, [])
    assert store.reading.wait(5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        latest.read(0.2)
    assert 0.15 < time.monotonic() - started < 2
    store.gate.set()
    holder.join(5)


@pytest.mark.parametrize(("fresh_read_timeout_s", "first_answer"), [(2.0, "block"), (0.0, "allow")])
def test_a_service_that_did_not_make_the_add_matches_it_at_once(
    tmp_path: Path, fresh_read_timeout_s: float, first_answer: str
) -> None:
    """The add goes through the store directly, as another serving process's would; the service's index was
    loaded before it and has no tail thread running."""
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    settings = Settings(data_dir=str(tmp_path), database_url=url, sandbox=False,
                        fresh_read_timeout_s=fresh_read_timeout_s)  # fmt: skip
    reader = Service(settings, warm_sandbox=False)
    try:
        reader.live.load()
        with Store(url) as store:
            store.create_bank("csam-test", category="csam", actor="test")
            store.add_item("csam-test", {"md5": "00112233445566778899aabbccddeeff"}, actor="test")
        answer = reader.match_hashes({"md5": "00112233445566778899aabbccddeeff"})
        assert answer["decision"] == first_answer
    finally:
        reader.close()


def test_the_sequence_reader_sees_each_commit_and_survives_a_broken_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        reader = store.sequence_reader()
        assert reader.read() == 0
        store.create_bank("csam-test", category="csam", actor="test")
        assert reader.read() == store.max_sequence() > 0  # no snapshot held from the read before
        reader._conn.connection.dbapi_connection.close()  # type: ignore[union-attr]  # as a restarted database would
        store.add_item("csam-test", {"md5": "00112233445566778899aabbccddeeff"}, actor="test")
        assert reader.read() == store.max_sequence()
        reader.close()


def test_sqlite_reads_reuse_a_connection_per_concurrent_caller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        pooled = PooledSequence(store)
        assert [pooled.read(1) for _ in range(50)] == [0] * 50
        assert len(pooled._free) == 1  # one caller at a time: one connection, kept
        barrier = threading.Barrier(4)

        def four_at_once() -> None:
            barrier.wait(5)
            for _ in range(50):
                pooled.read(1)

        threads = [threading.Thread(target=four_at_once) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert 1 <= len(pooled._free) <= 4  # never more connections than callers at once
        pooled.close()
        assert pooled._free == []


def test_a_store_failure_while_catching_up_answers_from_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        live = LiveIndex(store)
        live.load()
        store.create_bank("csam-test", category="csam", actor="test")

        def unreachable(*args: object, **kwargs: object) -> None:
            raise ConnectionError("the database went away")

        monkeypatch.setattr(store, "changes_since", unreachable)
        assert live.refresh(1.0) is False  # no exception: the match goes on with what is applied
        monkeypatch.undo()
        assert live.refresh(1.0) is True
        live.stop()
