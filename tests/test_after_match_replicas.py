"""After a match across real replicas (two `hashsvc serve` on one store, SQLite file and PostgreSQL).

A review claimed through one replica is claimed on the other; a quarantine decided by one holds on the other; a
webhook event is delivered once although both replicas run a deliverer; and a server SIGKILLed in the middle of
deliveries, then restarted, still gets every event to a deduplicating receiver exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from cli_helpers import Cli
from live_server import LiveServer
from webhook_receiver import Receiver, receiving

from hashsvc.store import Store
from hashsvc.store.schema import webhook_outbox

pytestmark = pytest.mark.slow
SETTINGS = {
    "webhook_allowed_networks": "127.0.0.0/8",
    "lease_ttl_s": 2,
    "webhook_timeout_s": 2,
    "flood_max_contents": 3,
    "sandbox": 0,
}


def eventually(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)


@pytest.fixture
def keys(store_url: str) -> dict[str, str]:
    with Store(store_url) as store:
        made = {name: store.create_api_key(name, scopes, actor="test")[1] for name, scopes in
                (("pipeline", ["match"]), ("analyst-a", ["curate"]), ("analyst-b", ["curate"]), ("ops", ["admin"]))}
        store.create_bank("maybe", category="csam", action="review", actor="test")
        store.create_bank("known", category="csam", actor="test")
    return made


@pytest.fixture
def replicas(store_url: str, tmp_path: Path, keys: dict[str, str]) -> Iterator[tuple[LiveServer, LiveServer]]:
    with (
        LiveServer(store_url, tmp_path / "a", **SETTINGS).start() as a,
        LiveServer(store_url, tmp_path / "b", **SETTINGS).start() as b,
    ):
        yield a, b


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def add(server: LiveServer, keys: dict[str, str], bank: str, md5: str) -> int:
    status, item = server.request("POST", f"/v1/banks/{bank}/items", {"hashes": {"md5": md5}}, keys["analyst-a"])
    assert status == 201, item
    return int(item["id"])


def decide(server: LiveServer, keys: dict[str, str], md5: str, content_id: str | None = None) -> str:
    body = {"md5": md5, **({"content_id": content_id} if content_id else {})}
    status, answer = server.request("POST", "/v1/match/hashes", body, keys["pipeline"])
    assert status == 200, answer
    return str(answer["decision"])


def test_reviews_quarantines_and_webhooks_hold_across_two_replicas(
    replicas: tuple[LiveServer, LiveServer], keys: dict[str, str], receiver: Receiver
) -> None:
    """One pair of servers for the three checks (starting servers is the slow part)."""
    a_review_claimed_on_one_replica_is_claimed_on_the_other(replicas, keys)
    a_quarantine_on_one_replica_holds_on_the_other(replicas, keys)
    a_webhook_event_is_delivered_once_across_replicas(replicas, keys, receiver)


def a_review_claimed_on_one_replica_is_claimed_on_the_other(
    replicas: tuple[LiveServer, LiveServer], keys: dict[str, str]
) -> None:
    a, b = replicas
    md5 = "1" * 32
    add(a, keys, "maybe", md5)
    eventually(lambda: decide(b, keys, md5, "post-1") == "review", 5)

    def listed() -> list[dict[str, object]]:
        return list(a.request("GET", "/v1/reviews", token=keys["analyst-a"])[1]["reviews"])

    eventually(lambda: len(listed()) == 1, 5)
    review_id = listed()[0]["id"]
    status, claimed = a.request("POST", f"/v1/reviews/{review_id}/claim", {}, keys["analyst-a"])
    assert status == 200 and claimed["claimed_by"] == "analyst-a"
    status, refused = b.request("POST", f"/v1/reviews/{review_id}/claim", {}, keys["analyst-b"])
    assert status == 409 and refused["error"]["code"] == "conflict"
    # The same through the CLI in remote mode, against the other replica.
    cli_b = Cli({"HASHSVC_URL": b.url, "HASHSVC_KEY": keys["analyst-b"]}, [])
    assert cli_b.json("review", "claim", str(review_id), code=1)["error"]["code"] == "conflict"
    assert [r["claimed_by"] for r in cli_b.json("review", "list")] == ["analyst-a"]
    cli_a = Cli({"HASHSVC_URL": b.url, "HASHSVC_KEY": keys["analyst-a"]}, [])
    done = cli_a.json("review", "resolve", str(review_id), "--resolution", "dismissed", "--reason", "test upload")
    assert done["status"] == "resolved"
    assert [e["content_id"] for e in cli_a.json("events", "--type", "match")] == ["post-1"]


def a_quarantine_on_one_replica_holds_on_the_other(
    replicas: tuple[LiveServer, LiveServer], keys: dict[str, str]
) -> None:
    a, b = replicas
    md5 = "2" * 32
    item = add(a, keys, "known", md5)
    eventually(lambda: decide(a, keys, md5, "c0") == "block", 5)
    for n in range(1, 4):
        decide(a, keys, md5, f"c{n}")  # 4 distinct contents > 3
    eventually(lambda: decide(b, keys, md5, "after") == "review", 5)
    status, held = b.request("GET", "/v1/quarantines", token=keys["analyst-b"])
    assert status == 200 and [q["item_id"] for q in held["quarantines"]] == [item]
    status, _ = b.request("POST", f"/v1/quarantines/{item}/rearm", {"reason": "checked"}, keys["analyst-b"])
    assert status == 200
    assert decide(a, keys, md5, "again") == "block"
    # Events are written in batches (every 0.25 s): wait until this one is stored, so that the webhook created
    # next is not handed an event decided before it existed.
    eventually(lambda: _stored(b, keys, "again"), 5)


def _stored(server: LiveServer, keys: dict[str, str], content_id: str) -> bool:
    status, found = server.request("GET", f"/v1/events?content_id={content_id}", token=keys["analyst-b"])
    return status == 200 and len(found["events"]) > 0


def a_webhook_event_is_delivered_once_across_replicas(
    replicas: tuple[LiveServer, LiveServer], keys: dict[str, str], receiver: Receiver
) -> None:
    a, b = replicas
    status, hook = a.request("POST", "/v1/webhooks", {"url": receiver.url, "events": ["block"]}, keys["ops"])
    assert status == 201, hook
    receiver.secret = hook["secret"]
    md5s = [f"{n:032x}" for n in range(100, 120)]
    for md5 in md5s:
        add(a, keys, "known", md5)
    eventually(lambda: decide(b, keys, md5s[-1]) == "block", 5)
    for n, md5 in enumerate(md5s[:-1]):
        decide(a if n % 2 else b, keys, md5, f"post-{n}")
    receiver.wait_for(len(md5s), 15)
    time.sleep(0.5)  # a duplicate, if any, would arrive now
    assert len(receiver.requests) == len(md5s) and receiver.bad_signatures == 0
    status, listed = b.request("GET", f"/v1/webhooks/{hook['id']}/deliveries", token=keys["ops"])
    assert status == 200 and {d["status"] for d in listed["deliveries"]} == {"delivered"}


def _sigkill(server: LiveServer) -> None:
    """Kill the server and its workers at once, as an OOM killer or a lost machine would."""
    assert server.process is not None
    parent = psutil.Process(server.process.pid)
    for process in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    server.process.wait()
    server.process = None


def test_every_event_reaches_the_receiver_exactly_once_across_a_sigkill(
    store_url: str, tmp_path: Path, keys: dict[str, str], receiver: Receiver
) -> None:
    server = LiveServer(store_url, tmp_path / "s", **SETTINGS).start()
    try:
        server.wait_for("/readyz", 60)
        status, hook = server.request("POST", "/v1/webhooks", {"url": receiver.url, "events": ["block"]}, keys["ops"])
        assert status == 201
        receiver.secret = hook["secret"]
        # Deliveries go 32 at a time: a receiver taking 0.1 s for each in turn makes the kill land mid-way (with
        # them all at once, all 30 could arrive between two looks at the count).
        receiver.delay_s, receiver.one_at_a_time = 0.1, True
        md5s = [f"{n:032x}" for n in range(200, 230)]
        for md5 in md5s:
            add(server, keys, "known", md5)
        eventually(lambda: decide(server, keys, md5s[-1], "warm") == "block", 5)
        for n, md5 in enumerate(md5s[:-1]):
            decide(server, keys, md5, f"post-{n}")
        engine = sa.create_engine(store_url)
        with engine.connect() as conn:  # every event is in the outbox (written with the event) before the kill
            eventually(lambda: conn.execute(sa.select(sa.func.count()).select_from(webhook_outbox)).scalar() == 30, 5)
        engine.dispose()
        eventually(lambda: len(receiver.requests) >= 5, 10)
        _sigkill(server)
        received_before = len(receiver.unique)
        assert received_before < len(md5s)  # it really died mid-way

        server.start()
        server.wait_for("/readyz", 60)
        receiver.wait_for(len(md5s), 30)
    finally:
        server.stop()
    assert receiver.bad_signatures == 0
    assert len(receiver.unique) == len(md5s)  # every event, once per idempotency key
    contents = sorted(str(r["body"]["event"]["content_id"]) for r in receiver.unique.values())
    assert contents == sorted(["warm", *(f"post-{n}" for n in range(29))])
