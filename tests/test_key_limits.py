"""Per-key options (disclosure, rate, burst, concurrency): stored, validated, shown, changed; the token buckets;
the fair admission slots."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from api_fixtures import Api
from cli_helpers import Cli

from hashsvc.api.admission import Admission
from hashsvc.errors import NotFoundError, OverloadedError, RateLimitedError, ValidationError
from hashsvc.service.ratelimit import RateLimiter
from hashsvc.store import Store, upgrade

pytest_plugins = ["store_fixtures"]

# ------------------------------------------------------------------------------------------------- store


def test_a_key_keeps_its_disclosure_and_limit_overrides(store: Store) -> None:
    plain, _ = store.create_api_key("pipeline", ["match"], actor="root")
    assert (plain.disclosure, plain.rate_per_s, plain.burst, plain.max_inflight) == ("full", None, None, None)
    assert not plain.decision_only
    _, token = store.create_api_key(
        "partner", ["match"], actor="root", disclosure="decision", rate_per_s=20, burst=40, max_inflight=1
    )
    verified = store.verify_api_key(token)
    assert verified is not None and verified.decision_only
    assert (verified.rate_per_s, verified.burst, verified.max_inflight) == (20.0, 40, 1)
    changed = store.update_api_key("partner", actor="admin", rate_per_s=None, disclosure="full")
    assert (changed.disclosure, changed.rate_per_s, changed.burst) == ("full", None, 40)
    assert [entry.action for entry in store.list_audit(limit=2)] == ["key.update", "key.create"]
    with pytest.raises(NotFoundError):
        store.update_api_key("nobody", actor="admin", burst=3)


@pytest.mark.parametrize(
    "options",
    [
        {"disclosure": "partial"},
        {"rate_per_s": 0},
        {"rate_per_s": float("nan")},
        {"rate_per_s": "fast"},
        {"burst": 0},
        {"burst": 2.5},
        {"max_inflight": True},
        {"max_inflight": -1},
    ],
)
def test_bad_key_options_are_refused(store: Store, options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        store.create_api_key("k", ["match"], actor="root", **options)  # type: ignore[arg-type]
    store.create_api_key("ok", ["match"], actor="root")
    with pytest.raises(ValidationError):
        store.update_api_key("ok", actor="root", **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- API, CLI


def test_keys_are_created_listed_and_changed_with_their_options(api: Api) -> None:
    body = {"name": "partner", "scopes": ["match"], "disclosure": "decision", "rate_per_s": 20, "burst": 40}
    created = api.post_json("/v1/keys", {**body, "max_inflight": 1}, "admin")
    assert created.status_code == 201, created.json
    listed = {k["name"]: k for k in api.client.get("/v1/keys", headers=api.headers("admin")).json["keys"]}
    shown = listed["partner"]
    assert "key" not in shown and created.json["key"] not in str(listed)
    assert (shown["disclosure"], shown["rate_per_s"], shown["burst"], shown["max_inflight"]) == ("decision", 20, 40, 1)
    assert listed["match-key"]["disclosure"] == "full" and listed["match-key"]["rate_per_s"] is None
    patched = api.client.patch(
        f"/v1/keys/{shown['id']}", json={"max_inflight": None, "disclosure": "full"}, headers=api.headers("admin")
    )
    assert patched.status_code == 200
    assert (patched.json["disclosure"], patched.json["max_inflight"], patched.json["burst"]) == ("full", None, 40)
    for bad, status in (({"colour": "red"}, 400), ({"burst": -1}, 400), (["x"], 400)):
        response = api.client.patch(f"/v1/keys/{shown['id']}", json=bad, headers=api.headers("admin"))
        assert response.status_code == status, response.json
    assert api.client.patch("/v1/keys/999", json={"burst": 1}, headers=api.headers("admin")).status_code == 404
    assert api.client.patch(f"/v1/keys/{shown['id']}", json={}, headers=api.headers("match")).status_code == 403
    refused = api.post_json("/v1/keys", {"name": "x", "scopes": ["match"], "disclosure": "some"}, "admin")
    assert refused.status_code == 400


def test_the_cli_creates_and_updates_key_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    cli = Cli({"HASHSVC_DATA_DIR": str(tmp_path / "data")}, ["--database-url", url])
    args = ("--scope", "match", "--decision-only", "--rate", "20", "--burst", "40", "--max-inflight", "1")
    created = cli.json("keys", "create", "--name", "partner", *args)
    assert (created["disclosure"], created["rate_per_s"], created["burst"], created["max_inflight"]) == (
        "decision",
        20.0,
        40,
        1,
    )
    [listed] = cli.lines("keys", "list")
    assert (listed["disclosure"], listed["max_inflight"]) == ("decision", 1)
    assert "decision, 20/s, burst 40, 1 in flight" in cli("keys", "list").stdout
    updated = cli.json("keys", "update", "partner", "--rate", "default", "--disclosure", "full")
    assert (updated["disclosure"], updated["rate_per_s"], updated["burst"]) == ("full", None, 40)
    cli("keys", "update", "partner", code=2)  # nothing to change


# ------------------------------------------------------------------------------------------- rate limit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    for _ in range(4):
        limiter.charge("k", 1, rate_per_s=0.5, burst=4)
    with pytest.raises(RateLimitedError) as refused:
        limiter.charge("k", 1, rate_per_s=0.5, burst=4)
    assert refused.value.retry_after_s == 2  # one token at 0.5 a second
    limiter.charge("other", 1, rate_per_s=0.5, burst=4)  # another key has its own bucket
    clock.now += 2
    limiter.charge("k", 1, rate_per_s=0.5, burst=4)
    with pytest.raises(RateLimitedError):
        limiter.charge("k", 1, rate_per_s=0.5, burst=4)


def test_a_batch_pays_for_every_set_even_beyond_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.charge("k", 10, rate_per_s=1.0, burst=4)  # admitted from a full bucket, leaving a debt of 6
    with pytest.raises(RateLimitedError) as refused:
        limiter.charge("k", 1, rate_per_s=1.0, burst=4)
    assert refused.value.retry_after_s == 7
    clock.now += 7
    limiter.charge("k", 1, rate_per_s=1.0, burst=4)


def test_429_with_retry_after_when_a_key_exceeds_its_rate(api: Api) -> None:
    token = api.service.store.create_api_key("slow", ["match"], actor="t", rate_per_s=0.5, burst=3)[1]
    headers = {"Authorization": f"Bearer {token}"}
    batch = {"items": [{"md5": "0" * 32}, {"md5": "1" * 32}]}
    assert api.client.post("/v1/match/hashes", json=batch, headers=headers).status_code == 200  # costs 2
    assert api.client.post("/v1/match/hashes", json={"md5": "0" * 32}, headers=headers).status_code == 200
    refused = api.client.post("/v1/match/hashes", json={"md5": "0" * 32}, headers=headers)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limited" and refused.json["error"]["message"]
    assert refused.headers["Retry-After"] == "2"
    # Another key is not affected; neither is a request that never got past authentication.
    assert api.post_json("/v1/match/hashes", {"md5": "0" * 32}, "match").status_code == 200


# -------------------------------------------------------------------------------------------- admission


def hold(admission: Admission, key: str, held: threading.Event, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with admission.slot(key):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(5)
    return thread


def test_a_single_key_gets_every_slot() -> None:
    admission = Admission(2, timeout_s=0.05)
    release = threading.Event()
    threads = [hold(admission, "pipeline", threading.Event(), release) for _ in range(2)]
    assert admission.held("pipeline") == 2
    with pytest.raises(OverloadedError), admission.slot("pipeline"):
        pass
    release.set()
    for thread in threads:
        thread.join()


def test_a_freed_slot_goes_to_the_key_that_holds_fewest_and_a_flooder_keeps_to_its_share() -> None:
    admission = Admission(2, timeout_s=2.0)
    release_first, release_second = threading.Event(), threading.Event()
    first = hold(admission, "flooder", threading.Event(), release_first)
    second = hold(admission, "flooder", threading.Event(), release_second)
    order: list[str] = []

    def wait_for_slot(key: str) -> None:
        with admission.slot(key):
            order.append(key)
            time.sleep(0.1)

    flooder_waits = threading.Thread(target=wait_for_slot, args=("flooder",))
    flooder_waits.start()
    time.sleep(0.05)  # the flooder queued first...
    other_waits = threading.Thread(target=wait_for_slot, args=("other",))
    other_waits.start()
    time.sleep(0.05)
    release_first.set()  # ...but the freed slot goes to the key holding none
    other_waits.join()
    assert order == ["other"]
    # While "other" is active the flooder may hold only its share (1 of 2): its waiter gets the slot only when
    # the flooder's own second request finishes.
    time.sleep(0.1)
    assert order == ["other"] and admission.held("flooder") == 1
    release_second.set()
    flooder_waits.join()
    assert order == ["other", "flooder"]
    first.join()
    second.join()


def test_a_keys_own_cap_holds_even_when_alone() -> None:
    admission = Admission(2, timeout_s=0.05)
    release = threading.Event()
    thread = hold(admission, "partner", threading.Event(), release)
    with pytest.raises(OverloadedError), admission.slot("partner", cap=1):
        pass
    release.set()
    thread.join()
