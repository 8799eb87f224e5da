"""The sandbox: upload bytes are decoded and hashed in worker processes with hard limits. A job that hangs, spins,
crashes or allocates without bound answers a typed MediaError at the deadline at the latest, other jobs are
not affected, the pool keeps serving, and its memory returns to its baseline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import psutil
import pytest
from api_fixtures import Api
from hostile import png_of_zeros
from images import encode, photo
from sandbox_hashers import allocates, segfaults, sleeps, spins
from test_media_cost import first_frame_then

from hashsvc.errors import MediaError
from hashsvc.service.hashing import ImageHashes, hash_image
from hashsvc.service.sandbox import Sandbox, SandboxLimits

MIB = 1024 * 1024
DEADLINE_S = 1.0
LIMITS = SandboxLimits(memory_bytes=1024 * MIB, deadline_s=DEADLINE_S, recycle_rss_bytes=192 * MIB)


@pytest.fixture
def make_pool() -> Iterator[Callable[..., Sandbox]]:
    pools: list[Sandbox] = []

    def make(
        hasher: Callable[..., ImageHashes] = hash_image, size: int = 2, limits: SandboxLimits = LIMITS
    ) -> Sandbox:
        pool = Sandbox(size, limits, hasher)
        pool.start()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


PICTURE = encode(photo(640, 480, seed=11))


def test_the_pool_hashes_like_the_serving_process(make_pool: Callable[..., Sandbox]) -> None:
    pool = make_pool()
    for options in ({}, {"dihedral": True, "extras": "query"}, {"extras": "index"}):
        assert pool.hash(PICTURE, **options) == hash_image(PICTURE, **options)


def test_a_typed_refusal_comes_back_as_the_same_media_error(make_pool: Callable[..., Sandbox]) -> None:
    pool = make_pool()
    pids = pool.pids()
    with pytest.raises(MediaError) as info:
        pool.hash(b"not an image")
    assert info.value.code == "unsupported_format"
    assert pool.pids() == pids  # an ordinary refusal keeps its worker


@pytest.mark.parametrize("hasher", [sleeps, spins], ids=["sleeps", "spins"])
def test_a_job_that_hangs_is_killed_at_the_deadline_and_others_are_unaffected(
    make_pool: Callable[..., Sandbox], hasher: Callable[..., ImageHashes]
) -> None:
    pool = make_pool(hasher)
    before = set(pool.pids())
    others: list[ImageHashes] = []

    def hash_others() -> None:  # runs on the other worker while the hung job holds one
        others.extend(pool.hash(PICTURE) for _ in range(5))

    neighbour = threading.Thread(target=hash_others)
    started = time.monotonic()
    neighbour.start()
    with pytest.raises(MediaError) as info:
        pool.hash(b"misbehave")
    elapsed = time.monotonic() - started
    neighbour.join(10)
    assert info.value.code == "decode_timeout"
    assert info.value.http_status == 422
    assert DEADLINE_S <= elapsed < DEADLINE_S + 1.0
    assert others == [hash_image(PICTURE)] * 5
    assert len(before - set(pool.pids())) == 1  # the hung worker was killed and replaced
    assert pool.hash(PICTURE) == hash_image(PICTURE)


def test_a_worker_that_crashes_gives_a_typed_error_and_the_pool_recovers(make_pool: Callable[..., Sandbox]) -> None:
    pool = make_pool(segfaults)
    with pytest.raises(MediaError) as info:
        pool.hash(b"misbehave")
    assert info.value.code == "corrupt"
    assert "SIGSEGV" in info.value.message
    assert len(pool.pids()) == 2
    assert [pool.hash(PICTURE) for _ in range(3)] == [hash_image(PICTURE)] * 3


def test_an_allocation_past_the_memory_limit_fails_inside_the_worker(make_pool: Callable[..., Sandbox]) -> None:
    # A generous deadline: on a loaded machine, touching a gigabyte can take longer than DEADLINE_S, and this
    # test is about the memory limit, not the clock.
    pool = make_pool(allocates, limits=replace(LIMITS, deadline_s=15.0))
    before = set(pool.pids())
    with pytest.raises(MediaError) as info:
        pool.hash(b"misbehave")
    assert info.value.code == "too_expensive"
    assert info.value.http_status == 413
    assert len(before - set(pool.pids())) == 1  # a worker that hit the limit is replaced
    assert pool.hash(PICTURE) == hash_image(PICTURE)


def pool_rss(pool: Sandbox) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pool.pids())


@pytest.mark.parametrize("mode", ["LA", "I;16"])
def test_heavy_pngs_are_answered_within_the_deadline_and_memory_returns_to_baseline(
    make_pool: Callable[..., Sandbox], mode: str
) -> None:
    """9,990 x 9,990 zeros, 194 KB: grey+alpha is refused from its header (400 MB decoded); 16-bit grey is
    decoded in strips within the budget (about 200 MiB in the worker, under a second) and its worker, grown past
    the recycle bound, is replaced."""
    data = png_of_zeros(9990, 9990, mode)
    deadline_s = 5.0  # the default decode timeout
    pool = make_pool(limits=SandboxLimits(1024 * MIB, deadline_s, 192 * MIB))
    pool.hash(PICTURE)
    baseline = pool_rss(pool)
    started = time.monotonic()
    try:
        outcome = pool.hash(data).format
    except MediaError as error:
        outcome = error.code
    assert time.monotonic() - started < deadline_s + 1.0
    assert outcome == {"LA": "too_expensive", "I;16": "PNG"}[mode]
    assert pool_rss(pool) < baseline + 32 * MIB


def test_close_stops_every_worker(make_pool: Callable[..., Sandbox]) -> None:
    pool = make_pool()
    pids = pool.pids()
    pool.close()
    time.sleep(0.1)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    with pytest.raises(RuntimeError):
        pool.hash(PICTURE)


def test_closing_while_the_workers_start_in_the_background_raises_nothing_and_leaves_no_worker() -> None:
    """What a service closed straight after it was built does (its sandbox starts in a thread of its own)."""
    failures: list[BaseException] = []
    previous, threading.excepthook = threading.excepthook, lambda args: failures.append(args.exc_value)
    try:
        for wait_s in (0.0, 0.05, 0.2, 0.5):
            pool = Sandbox(2, LIMITS)
            pool.start_in_background()
            time.sleep(wait_s)
            pids = pool.pids()
            pool.close()
            for thread in threading.enumerate():
                if thread.name == "hashsvc-sandbox-start":
                    thread.join(10)
            assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    finally:
        threading.excepthook = previous
    assert failures == []


def test_a_workers_pipe_is_closed_once_when_two_threads_close_it_at_once() -> None:
    """Connection.close is not thread-safe: two closers could close the same descriptor number twice."""
    pool = Sandbox(1, LIMITS)
    worker = pool._launch()
    closes = []
    real_close = worker.conn._close  # type: ignore[attr-defined]

    def slow_close() -> None:
        closes.append(worker.conn.fileno())
        time.sleep(0.1)  # wide enough for the other thread to arrive while this close is under way
        real_close()

    worker.conn._close = slow_close  # type: ignore[attr-defined]
    both = [threading.Thread(target=worker.kill), threading.Thread(target=worker.kill)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(10)
    assert len(closes) == 1 and worker.conn.closed
    pool.close()


# ------------------------------------------------------------------------------------------- the service


def test_the_service_hashes_uploads_in_the_sandbox(make_api: Callable[..., Api]) -> None:
    api = make_api()
    assert api.service.sandbox is not None
    response = api.upload("/v1/hash", PICTURE)
    assert response.status_code == 200
    assert response.get_json()["pdq"]["value"] == hash_image(PICTURE).to_dict()["pdq"]["value"]
    assert api.service.sandbox.pids()


def test_hashing_in_process_is_a_setting(make_api: Callable[..., Api]) -> None:
    api = make_api(sandbox=False)
    assert api.service.sandbox is None
    assert api.upload("/v1/hash", PICTURE).status_code == 200


def test_a_heavy_upload_is_a_413_within_the_deadline(make_api: Callable[..., Api]) -> None:
    api = make_api(decode_timeout_s=DEADLINE_S)
    started = time.monotonic()
    response = api.upload("/v1/match", png_of_zeros(9990, 9990, "LA"))
    assert time.monotonic() - started < DEADLINE_S + 1.0
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_expensive"


def test_a_banked_image_is_blocked_as_the_first_frame_of_a_1002_frame_gif(make_api: Callable[..., Api]) -> None:
    api = make_api()
    assert api.post_json("/v1/banks", {"name": "csam-test", "category": "csam"}).status_code == 201
    picture = photo(320, 240, seed=4)
    assert api.upload("/v1/banks/csam-test/items", encode(picture, "GIF"), "curate").status_code == 201
    api.sync()
    response = api.upload("/v1/match", first_frame_then(picture, 1001))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["decision"] == "block"
