"""Replicas: two real `hashsvc serve` servers on one store stay in step through the change log.

An item added through A is matched by B within a second; disabled through B, A stops matching it within a
second; A restarted from a snapshot that is behind the log catches up before /readyz says ready.
Run on PostgreSQL (the multi-replica store) and on one shared SQLite file.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from images import encode, photo
from live_server import LiveServer

from hashsvc.store import Store

pytestmark = pytest.mark.slow


def eventually(predicate: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until predicate() held; fails if it does not within timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout_s} s")


@pytest.fixture
def servers(store_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    with Store(store_url) as store:
        token = store.create_api_key("tester", ["match", "curate"], actor="test")[1]
    with (
        LiveServer(store_url, tmp_path / "a", snapshot_interval_s=0.3).start() as a,
        LiveServer(store_url, tmp_path / "b").start() as b,
    ):
        yield a, b, token


def decision(server: LiveServer, token: str, md5: str) -> str:
    status, body = server.request("POST", "/v1/match/hashes", {"md5": md5}, token)
    assert status == 200, body
    return str(body["decision"])


def test_changes_through_one_replica_reach_the_other_within_a_second(
    servers: tuple[LiveServer, LiveServer, str],
) -> None:
    a, b, token = servers
    assert a.request("POST", "/v1/banks", {"name": "csam-test", "category": "csam"}, token)[0] == 201
    md5 = "0123456789abcdef0123456789abcdef"
    status, item = a.request("POST", "/v1/banks/csam-test/items", {"hashes": {"md5": md5}}, token)
    assert status == 201
    assert eventually(lambda: decision(b, token, md5) == "block", 1.0) < 1.0

    change = {"status": "disabled", "reason": "false positive"}
    assert b.request("PATCH", f"/v1/items/{item['id']}", change, token)[0] == 200
    assert eventually(lambda: decision(a, token, md5) == "allow", 1.0) < 1.0


def test_an_image_added_through_a_is_matched_by_b(servers: tuple[LiveServer, LiveServer, str]) -> None:
    a, b, token = servers
    a.request("POST", "/v1/banks", {"name": "terror", "category": "terror"}, token)
    boundary = "hashsvcboundary"
    image = encode(photo(480, 360, seed=21))
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _ = a.request(
        "POST",
        "/v1/banks/terror/items",
        data=body,
        token=token,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert status == 201

    def blocked() -> bool:
        status, result = b.request("POST", "/v1/match", data=image, token=token, content_type="image/jpeg")
        return status == 200 and result["decision"] == "block"

    assert eventually(blocked, 1.0) < 1.0


def test_a_restarted_replica_catches_up_from_its_snapshot_before_it_is_ready(
    servers: tuple[LiveServer, LiveServer, str],
) -> None:
    a, b, token = servers
    b.request("POST", "/v1/banks", {"name": "csam-test", "category": "csam"}, token)
    early = [f"{n:032x}" for n in range(1, 4)]
    for md5 in early:
        b.request("POST", "/v1/banks/csam-test/items", {"hashes": {"md5": md5}}, token)
    eventually(lambda: decision(a, token, early[-1]) == "block", 2.0)
    snapshot = Path(a.env["HASHSVC_DATA_DIR"]) / "snapshots" / "md5.hidx"
    eventually(snapshot.exists, 3.0)
    a.stop()

    late = [f"{n:032x}" for n in range(100, 110)]
    for md5 in late:
        b.request("POST", "/v1/banks/csam-test/items", {"hashes": {"md5": md5}}, token)
    a.start()
    a.wait_for("/readyz", 60)
    assert all(decision(a, token, md5) == "block" for md5 in early + late)


@pytest.mark.parametrize(("fresh_read_timeout_s", "first_answer"), [(2.0, "block"), (0, "allow")])
def test_a_match_right_after_an_add_through_another_replica_sees_the_add(
    store_url: str, tmp_path: Path, fresh_read_timeout_s: float, first_answer: str
) -> None:
    """Read-your-writes: a match reads the store's latest change sequence and applies what its process lacks
    before it looks up. The tail thread polls every 30 s here, so only that can make B see A's add at once;
    with the check off (timeout 0), B answers from its stale index, which shows the test can fail."""
    with Store(store_url) as store:
        token = store.create_api_key("tester", ["match", "curate"], actor="test")[1]
    slow_tail = {"poll_interval_s": 30, "fresh_read_timeout_s": fresh_read_timeout_s}
    with (
        LiveServer(store_url, tmp_path / "a", **slow_tail).start() as a,
        LiveServer(store_url, tmp_path / "b", **slow_tail).start() as b,
    ):
        assert a.request("POST", "/v1/banks", {"name": "csam-test", "category": "csam"}, token)[0] == 201
        pdq = random.Random(7).randbytes(32).hex()
        assert a.request("POST", "/v1/banks/csam-test/items", {"hashes": {"pdq": pdq}}, token)[0] == 201
        status, answer = b.request("POST", "/v1/match/hashes", {"pdq": pdq}, token)
        assert (status, answer["decision"]) == (200, first_answer)
        near = f"{int(pdq, 16) ^ 0b10101:064x}"  # 3 bits away: found through the index, not the store's exact lookup
        status, found = b.request("GET", f"/v1/search?algorithm=pdq&hash={near}&max_distance=10", token=token)
        assert status == 200
        assert len(found["matches"]) == (1 if first_answer == "block" else 0)
