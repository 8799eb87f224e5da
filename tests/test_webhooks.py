"""Webhooks: subscriptions, refused targets, signatures, the outbox, retries with backoff, one deliverer at a time.

On SQLite and PostgreSQL, with a real HTTP receiver on loopback (allowed explicitly, as loopback is refused by
default). The SIGKILL test with real servers is in test_after_match_replicas.py.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from api_fixtures import Api
from webhook_receiver import Receiver, receiving

from hashsvc.service.webhooks import sign, signature_header, verify
from hashsvc.store.schema import webhook_outbox

MD5 = "0123456789abcdef0123456789abcdef"
LOOPBACK = "127.0.0.0/8"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def svc(make_api: Callable[..., Api], store_url: str) -> Api:
    api = make_api(database_url=store_url, webhook_allowed_networks=LOOPBACK)
    for name, action in (("known", "block"), ("maybe", "review")):
        assert api.post_json("/v1/banks", {"name": name, "category": "csam", "action": action}).status_code == 201
    return api


def subscribe(api: Api, receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = api.post_json("/v1/webhooks", {"url": receiver.url, "events": ["block", "review"], **body}, "admin")
    assert response.status_code == 201, response.json
    receiver.secret = response.json["secret"]
    return dict(response.json)


def blocked(api: Api, md5: str, bank: str = "known", content_id: str = "c") -> None:
    assert api.post_json(f"/v1/banks/{bank}/items", {"hashes": {"md5": md5}}).status_code == 201
    api.sync()
    answer = api.post_json("/v1/match/hashes", {"md5": md5, "content_id": content_id}, "match")
    assert answer.status_code == 200
    api.service.after.events.flush()


def test_signatures_verify_and_expire() -> None:
    body = b'{"id":"x"}'
    header = signature_header("whsec_k", body, timestamp=1_700_000_000)
    assert header == f"t=1700000000,v1={sign('whsec_k', 1_700_000_000, body)}"
    assert verify("whsec_k", header, body, now=1_700_000_100)
    assert not verify("whsec_k", header, body + b" ", now=1_700_000_100)
    assert not verify("other", header, body, now=1_700_000_100)
    assert not verify("whsec_k", header, body, now=1_700_000_000 + 301)  # a replay, too late
    assert not verify("whsec_k", "garbage", body)


# Which targets are refused, and what an allowed network opens: tests/test_netguard.py (the guard is shared).


def test_subscriptions_are_admin_only_and_the_secret_is_shown_once(svc: Api, receiver: Receiver) -> None:
    assert svc.post_json("/v1/webhooks", {"url": receiver.url, "events": ["block"]}, "curate").status_code == 403
    created = subscribe(svc, receiver)
    assert created["secret"].startswith("whsec_")
    listed = svc.client.get("/v1/webhooks", headers=svc.headers("admin")).json["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert "secret" not in svc.client.get(f"/v1/webhooks/{created['id']}", headers=svc.headers("admin")).json
    for body in (
        {"url": receiver.url, "events": ["nope"]},
        {"url": receiver.url, "events": []},
        {"url": receiver.url, "events": ["block"], "banks": ["missing"]},
        {"url": receiver.url, "events": ["block"], "extra": 1},
        {"url": "http://10.0.0.1/", "events": ["block"]},
    ):
        response = svc.post_json("/v1/webhooks", body, "admin")
        assert response.status_code in (400, 404), body
    refused = svc.post_json("/v1/webhooks", {"url": "http://10.0.0.1/", "events": ["block"]}, "admin")
    assert refused.json["error"]["code"] == "target_refused"


def test_events_are_delivered_signed_with_an_idempotency_key(svc: Api, receiver: Receiver) -> None:
    hook = subscribe(svc, receiver)
    blocked(svc, MD5, content_id="post-42")
    assert svc.service.after.deliverer.deliver_once() == 1
    (request,) = receiver.requests
    assert receiver.bad_signatures == 0
    assert request["event"] == "block" and request["body"]["type"] == "block"
    event = request["body"]["event"]
    assert (event["content_id"], event["decision"], event["matches"][0]["bank"]) == ("post-42", "block", "known")
    assert request["key"] == request["body"]["id"]
    (delivery,) = svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=svc.headers("admin")).json[
        "deliveries"
    ]
    assert (delivery["status"], delivery["attempts"], delivery["idempotency_key"]) == ("delivered", 1, request["key"])
    assert delivery["history"][0]["status_code"] == 204
    assert svc.service.after.deliverer.deliver_once() == 0  # nothing twice


class FrozenClock:
    """Stands in for the wall clock of events and the outbox: "not due yet" must not depend on the machine's load."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def test_failures_are_retried_with_exponential_backoff_then_given_up(
    svc: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock()
    monkeypatch.setattr("hashsvc.store.webhooks.utcnow", clock)
    monkeypatch.setattr("hashsvc.service.webhooks.utcnow", clock)
    monkeypatch.setattr("hashsvc.service.aftermatch.utcnow", clock)
    hook = subscribe(svc, receiver)
    receiver.fail_next = 2
    blocked(svc, MD5)
    engine = svc.service.store.engine
    deliverer = svc.service.after.deliverer
    for backoff_s in (1.0, 2.0):  # 1 s, then 2 s, ... doubling up to an hour
        assert deliverer.deliver_once() == 1
        with engine.connect() as conn:
            row = conn.execute(sa.select(webhook_outbox)).one()
        assert (row.next_attempt_at - clock.now).total_seconds() == pytest.approx(backoff_s, abs=0.001)
        clock.advance(backoff_s - 0.01)
        assert deliverer.deliver_once() == 0  # not due yet
        clock.advance(0.01)
    assert deliverer.deliver_once() == 1
    (delivery,) = svc.service.after.webhooks.deliveries(hook["id"], 10, None)["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    assert [a["status_code"] for a in delivery["history"]] == [500, 500, 204]
    assert len(receiver.unique) == 1

    # A delivery still failing after the retry period (48 h by default) is given up.
    receiver.fail_next = 1
    blocked(svc, "f" * 32)
    old = clock.now - dt.timedelta(seconds=svc.service.settings.webhook_retry_for_s + 1)
    with engine.begin() as conn:
        conn.execute(sa.update(webhook_outbox).where(webhook_outbox.c.status == "pending").values(created_at=old))
    assert deliverer.deliver_once() == 1
    statuses = [d["status"] for d in svc.service.after.webhooks.deliveries(hook["id"], 10, None)["deliveries"]]
    assert statuses == ["failed", "delivered"]


def test_subscriptions_filter_by_event_type_and_bank_and_deletion_cancels(svc: Api, receiver: Receiver) -> None:
    reviews_only = subscribe(svc, receiver, events=["review"], banks=["maybe"])
    blocked(svc, MD5, bank="known")
    blocked(svc, "1" * 32, bank="maybe")
    svc.service.after.deliverer.deliver_once()
    assert [r["event"] for r in receiver.requests] == ["review"]
    blocked(svc, "2" * 32, bank="maybe")
    assert svc.client.delete(f"/v1/webhooks/{reviews_only['id']}", headers=svc.headers("admin")).status_code == 204
    assert svc.service.after.deliverer.deliver_once() == 0
    assert len(receiver.requests) == 1
    assert svc.client.get(f"/v1/webhooks/{reviews_only['id']}", headers=svc.headers("admin")).status_code == 404


def test_two_processes_one_deliverer(make_api: Callable[..., Api], store_url: str, receiver: Receiver) -> None:
    one = make_api(database_url=store_url, webhook_allowed_networks=LOOPBACK, lease_ttl_s=30)
    two = make_api(database_url=store_url, webhook_allowed_networks=LOOPBACK, lease_ttl_s=30)
    two.keys = one.keys
    assert one.post_json("/v1/banks", {"name": "known", "category": "csam"}).status_code == 201
    subscribe(one, receiver, events=["block"])
    for n in range(5):
        blocked(one, f"{n:032x}", content_id=f"c{n}")
    assert one.service.after.background.run_due() == 5
    assert two.service.after.background.run_due() == 0  # the lease is one's
    blocked(two, "a" * 32)
    assert two.service.after.background.run_due() == 0
    one.service.after.background.jobs[0].next_at = 0
    assert one.service.after.background.run_due() == 1
    assert len(receiver.requests) == len(receiver.unique) == 6


def test_refused_targets_at_delivery_time_are_retried_not_sent(
    svc: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = subscribe(svc, receiver)
    blocked(svc, MD5)
    # The name now resolves to a metadata address (DNS rebinding): nothing is sent.
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
            if host == "127.0.0.1"
            else real(host, port, *a, **k)
        ),
    )
    assert svc.service.after.deliverer.deliver_once() == 1
    assert receiver.requests == []
    (delivery,) = svc.service.after.webhooks.deliveries(hook["id"], 10, None)["deliveries"]
    assert delivery["status"] == "pending" and "metadata" in delivery["history"][0]["error"]


def test_a_test_request_reaches_the_receiver_signed_and_is_not_a_delivery(svc: Api, receiver: Receiver) -> None:
    hook = subscribe(svc, receiver)
    path = f"/v1/webhooks/{hook['id']}/test"
    assert svc.client.post(path, headers=svc.headers("curate")).status_code == 403
    answer = svc.client.post(path, headers=svc.headers("admin")).json
    assert (answer["delivered"], answer["status"], answer["error"]) == (True, 204, None)
    (request,) = receiver.requests
    assert receiver.bad_signatures == 0 and request["event"] == "test"
    assert request["key"] == answer["idempotency_key"] == request["body"]["id"]
    assert request["body"]["event"]["webhook_id"] == hook["id"]
    assert svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=svc.headers("admin")).json[
        "deliveries"
    ] == []
    receiver.fail_next = 1
    failed = svc.client.post(path, headers=svc.headers("admin")).json
    assert (failed["delivered"], failed["status"], failed["error"]) == (False, 500, "HTTP 500")
    assert svc.client.post("/v1/webhooks/999/test", headers=svc.headers("admin")).status_code == 404


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout(
    make_api: Callable[..., Api], store_url: str
) -> None:
    """Each read had its own timeout, so a receiver sending a header byte every 0.2 s held a delivery for ever."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        stop = threading.Event()

        def drip() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    while not stop.is_set():
                        try:
                            conn.sendall(b"X")
                        except OSError:
                            break
                        time.sleep(0.2)

        threading.Thread(target=drip, daemon=True).start()
        try:
            api = make_api(database_url=store_url, webhook_allowed_networks=LOOPBACK, webhook_timeout_s=1.0)
            assert api.post_json("/v1/banks", {"name": "known", "category": "csam"}).status_code == 201
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
            hook = api.post_json("/v1/webhooks", {"url": url, "events": ["block"]}, "admin").json
            started = time.monotonic()
            answer = api.client.post(f"/v1/webhooks/{hook['id']}/test", headers=api.headers("admin")).json
            assert time.monotonic() - started < 3
            assert (answer["delivered"], answer["status"]) == (False, None)
            assert answer["error"] == "TimeoutError: no complete answer within 1 s"

            blocked(api, MD5)
            started = time.monotonic()
            assert api.service.after.deliverer.deliver_once() == 1
            assert time.monotonic() - started < 5  # two tries (a kept-alive connection is retried once), 1 s each
            (delivery,) = api.service.after.webhooks.deliveries(hook["id"], 10, None)["deliveries"]
            assert delivery["status"] == "pending"
            assert "no complete answer within 1 s" in delivery["history"][0]["error"]
        finally:
            stop.set()
