"""Partner feeds against local fake partner servers (tests/exchange_fakes.py): paging, checkpoints, updates,
retractions, entries kept aside, 429/5xx/timeouts/garbage, the lease, credentials and feedback."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from exchange_fakes import FakeHashList, FakeNcmec, FakeStopNcii, FakeTat, FakeThreatExchange, Fault
from fake_dns import answer

from hashsvc.config import load_settings
from hashsvc.errors import ValidationError
from hashsvc.exchanges import Entry, Page, TransientFeedError, make_client
from hashsvc.netguard import TargetRefused
from hashsvc.service import exchanges as exchange_service
from hashsvc.service.credentials import CredentialsKeyError
from hashsvc.service.exchanges import ExchangeService, batched
from hashsvc.store import Actor, Store
from hashsvc.store import exchanges as feeds
from hashsvc.store.exchanges import FeedEntry, LeaseLostError
from hashsvc.store.schema import audit_log

ADMIN = Actor("admin")
T0 = 1_750_000_000
LOOPBACK = "127.0.0.0/8"


def pdq(n: int) -> str:
    return hashlib.sha256(f"pdq{n}".encode()).hexdigest()


def md5(n: int) -> str:
    return hashlib.md5(f"md5{n}".encode()).hexdigest()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 1000)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_service(store: Store, clock: Clock, sleeps: list[float], **settings: Any) -> ExchangeService:
    key = settings.pop("exchange_key", None) or Fernet.generate_key().decode()
    # The fake partners listen on 127.0.0.1, which the address guard refuses unless it is allowed.
    settings.setdefault("exchange_allowed_networks", LOOPBACK)
    loaded = load_settings({"exchange_key": key, "exchange_timeout_s": 2.0, **settings}, environ={})
    factory = functools.partial(make_client, clock=clock)
    return ExchangeService(store, loaded, client_factory=factory, sleep=sleeps.append)


@pytest.fixture
def service(store: Store, clock: Clock, sleeps: list[float]) -> ExchangeService:
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    return make_service(store, clock, sleeps)


@pytest.fixture
def ncmec() -> Iterator[FakeNcmec]:
    with FakeNcmec(page_size=2) as fake:
        yield fake


def add_ncmec(service: ExchangeService, fake: FakeNcmec, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "ncmec-feed",
        "type": "ncmec",
        "bank": "ncmec",
        "config": {"base_url": fake.url},
        "credentials": {"username": "esp", "password": "secret"},
        **fields,
    }
    return service.add(body, ADMIN)


def bank_state(store: Store, bank: str = "ncmec") -> dict[str, tuple[str, tuple[str, ...], list[str]]]:
    """external_ref -> (status, hashes, labels): what an uninterrupted sync must leave, whatever the ids."""
    state = {}
    after = 0
    while chunk := store.list_items(bank, after_id=after, limit=1000):
        for item in chunk:
            hashes = tuple(sorted(f"{h.algorithm}:{h.hex}" for h in item.hashes))
            assert item.external_ref not in state, "an entry is in the bank twice"
            state[item.external_ref] = (item.status, hashes, item.metadata.get("labels"))
        after = chunk[-1].id
    return state


# ----------------------------------------------------------------------------------------------------- NCMEC


def test_a_first_ncmec_sync_reads_every_page_and_keeps_provenance(
    service: ExchangeService, ncmec: FakeNcmec, store: Store, clock: Clock
) -> None:
    ncmec.add(T0 + 1, "img1", md5=md5(1), pdq=pdq(1), other={"pdna": "0a" * 72})
    ncmec.add(T0 + 2, "img2", md5=md5(2), classification="B1")
    ncmec.add(T0 + 3, "vid1", md5=md5(3), video=True)
    ncmec.add(T0 + 4, "img3", other={"pdna": "ff" * 72, "sha1": "a" * 40})  # nothing we store: kept aside
    ncmec.add(T0 + 5, "img4", md5="not-hex")  # malformed: counted, skipped
    add_ncmec(service, ncmec)

    result = service.sync("ncmec-feed", "worker-1")

    assert result.ok and result.pages == 3  # 5 entries, 2 per page
    assert result.counts["added"] == 3 and result.counts["unknown"] == 1 and result.counts["bad"] == 1
    assert "42-img4" in result.problems[0]
    item = store.find_item("ncmec", "42-img1")
    assert item.source == "exchange:ncmec-feed"
    assert item.metadata["exchange"] == "ncmec-feed" and item.metadata["entry_id"] == "42-img1"
    assert item.metadata["labels"] == ["A1"] and item.metadata["partner"]["member_id"] == "42"
    assert item.metadata["other_signals"] == {"pdna": "0a" * 72}
    assert {h.algorithm for h in item.hashes} == {"md5", "pdq"}
    shown = service.show("ncmec-feed")
    assert shown["status"]["state"] == "ok" and shown["status"]["entries"] == 3
    assert shown["status"]["kept_aside"] == 1 and shown["status"]["last_success_at"] is not None
    assert feeds.get_exchange(store, "ncmec-feed").checkpoint == {"from": clock.now, "to": None, "next": None}


def test_updates_retractions_and_restorations_reach_the_bank(
    service: ExchangeService, ncmec: FakeNcmec, store: Store, clock: Clock
) -> None:
    for n in range(1, 6):
        ncmec.add(T0 + n, f"img{n}", md5=md5(n))
    ncmec.add(T0 + 6, "img6", other={"pdna": "00" * 72})
    add_ncmec(service, ncmec)
    assert service.sync("ncmec-feed", "w").counts["added"] == 5
    analyst_disabled = store.find_item("ncmec", "42-img5")
    store.disable_item(analyst_disabled.id, reason="false positive, case 77", actor=ADMIN)

    # Later, the partner changes things (timestamps after the first sync's range).
    later = int(clock.now)
    ncmec.add(later, "img1", md5=md5(1), classification="A2")  # label changed
    ncmec.add(later, "img2", md5=md5(22))  # hash changed
    ncmec.add(later, "img3", deleted=True)  # retracted
    ncmec.add(later, "img5", md5=md5(55))  # an analyst's false positive, updated by the partner
    ncmec.add(later, "img6", md5=md5(6))  # was kept aside, now carries an MD5
    clock.now += 3600
    result = service.sync("ncmec-feed", "w")

    assert result.ok
    assert result.counts["retracted"] == 1 and result.counts["added"] == 1 and result.counts["updated"] == 3
    assert store.find_item("ncmec", "42-img1").metadata["labels"] == ["A2"]
    assert store.find_item("ncmec", "42-img2").hashes[0].hex == md5(22)
    retracted = store.find_item("ncmec", "42-img3")
    assert retracted.status == "disabled" and retracted.status_reason == "retracted by ncmec-feed"
    kept = store.find_item("ncmec", "42-img5")
    assert kept.status == "disabled" and kept.status_reason == "false positive, case 77"
    assert kept.hashes[0].hex == md5(55)
    assert store.find_item("ncmec", "42-img6").status == "active"
    assert service.show("ncmec-feed")["status"]["kept_aside"] == 0

    later = int(clock.now)
    ncmec.add(later, "img3", md5=md5(3))  # listed again: we retracted it, so it comes back
    clock.now += 3600
    again = service.sync("ncmec-feed", "w")
    assert again.counts["restored"] == 1 and store.find_item("ncmec", "42-img3").status == "active"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pages_written_in_batches_leave_the_bank_as_page_by_page_writing_does(
    store: Store, clock: Clock, sleeps: list[float]
) -> None:
    """Several partner pages go into one transaction; an entry added on one page and retracted or changed on a
    later one still ends as page-by-page writing leaves it (a retracted item, disabled), and the totals count
    partner pages."""
    states = []
    for max_entries in (1, 10_000):  # page by page, then every page of the feed in one batch where possible
        bank = f"bank{max_entries}"
        store.create_bank(bank, category="csam", actor=ADMIN)
        service = make_service(store, clock, sleeps, exchange_batch_entries=max_entries)
        with FakeNcmec(page_size=2) as fake:
            for n in range(1, 7):
                fake.add(T0 + n, f"img{n}", md5=md5(n))
            fake.add(T0 + 7, "img2", deleted=True)  # page 4 retracts what page 1 added
            fake.add(T0 + 8, "img3", md5=md5(33))  # and changes what page 2 added
            service.add(
                {
                    "name": bank,
                    "type": "ncmec",
                    "bank": bank,
                    "config": {"base_url": fake.url},
                    "credentials": {"username": "esp", "password": "secret"},
                },
                ADMIN,
            )
            result = service.sync(bank, "w")
        assert result.ok and result.pages == 4 and service.show(bank)["totals"]["pages"] == 4
        states.append(bank_state(store, bank))
    assert states[0] == states[1]
    assert states[1]["42-img2"][0] == "disabled" and states[1]["42-img3"][1] == (f"md5:{md5(33)}",)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_first_sync_that_grows_a_bank_refreshes_postgresql_statistics(
    store: Store, clock: Clock, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without fresh statistics the planner reads the whole bank for every lookup of a page's ids (quadratic)."""
    monkeypatch.setattr(exchange_service, "ANALYZE_FROM", 40)
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    service = make_service(store, clock, sleeps, exchange_batch_entries=20)
    query = sa.text(
        "SELECT count(last_analyze) FROM pg_stat_user_tables WHERE relname = 'items' AND schemaname = current_schema()"
    )
    with FakeNcmec(page_size=20) as fake:
        for n in range(60):
            fake.add(T0 + n, f"img{n}", md5=md5(n))
        add_ncmec(service, fake)
        with store.engine.connect() as conn:
            assert conn.execute(query).scalar_one() == 0
        assert service.sync("ncmec-feed", "w").counts["added"] == 60
    with store.engine.connect() as conn:
        assert conn.execute(query).scalar_one() == 1


def test_batches_end_at_the_last_page_at_the_size_limit_and_before_a_repeated_entry() -> None:
    def page(*ids: str, checkpoint: int | None = None, done: bool = False) -> Page:
        return Page([Entry(i) for i in ids], None if checkpoint is None else {"n": checkpoint}, done)

    pages = [page("a", "b", checkpoint=1), page("c", checkpoint=2), page("d"), page("a", checkpoint=4), page(done=True)]
    merged = [([e.entry_id for e in p.entries], p.checkpoint, p.done, n) for p, n in batched(pages, max_entries=4)]
    assert merged == [
        (["a", "b", "c", "d"], {"n": 2}, False, 3),  # size limit; the last checkpoint given
        (["a"], {"n": 4}, True, 2),  # "a" again starts a new batch, which the last page ends
    ]


def test_a_partner_failure_mid_batch_writes_the_pages_read_before_it() -> None:
    def failing() -> Iterator[Page]:
        yield Page([Entry("a")], {"n": 1}, False)
        yield Page([Entry("b")], {"n": 2}, False)
        raise TransientFeedError("GET /v2/entries: 500 from the partner")

    batches = batched(failing(), max_entries=100)
    page, read = next(batches)
    assert ([e.entry_id for e in page.entries], page.checkpoint, read) == (["a", "b"], {"n": 2}, 2)
    with pytest.raises(TransientFeedError):
        next(batches)


def test_a_sync_with_no_changes_asks_once_and_changes_nothing(
    service: ExchangeService, ncmec: FakeNcmec, store: Store, clock: Clock
) -> None:
    for n in range(1, 4):
        ncmec.add(T0 + n, f"img{n}", md5=md5(n))
    add_ncmec(service, ncmec)
    service.sync("ncmec-feed", "w")
    before, sequence = bank_state(store), store.max_sequence()
    requests = len(ncmec.requests)
    clock.now += 3600
    result = service.sync("ncmec-feed", "w")
    assert result.ok and result.pages == 1 and result.counts["fetched"] == 0
    assert len(ncmec.requests) == requests + 1
    assert bank_state(store) == before and store.max_sequence() == sequence


def test_429_with_a_short_retry_after_is_waited_out_within_the_sync(
    service: ExchangeService, ncmec: FakeNcmec, store: Store, sleeps: list[float]
) -> None:
    for n in range(1, 6):
        ncmec.add(T0 + n, f"img{n}", md5=md5(n))
    add_ncmec(service, ncmec)
    ncmec.fail(Fault(429, {"Retry-After": "7"}))
    result = service.sync("ncmec-feed", "w")
    assert result.ok and sleeps == [7.0] and len(bank_state(store)) == 5


def test_429_with_a_long_retry_after_ends_the_sync_and_reschedules_it(
    service: ExchangeService, ncmec: FakeNcmec, store: Store, sleeps: list[float]
) -> None:
    for n in range(1, 6):
        ncmec.add(T0 + n, f"img{n}", md5=md5(n))
    add_ncmec(service, ncmec)
    ncmec.fail(Fault(429, {"Retry-After": "3600"}), after=1)  # the first page, then an hour's wait
    result = service.sync("ncmec-feed", "w")
    assert not result.ok and "429" in (result.error or "") and sleeps == []
    assert result.next_run_at is not None
    assert 3500 < (result.next_run_at - datetime.now(UTC)).total_seconds() <= 3600
    assert len(bank_state(store)) == 2  # the first page committed, with its checkpoint
    shown = service.show("ncmec-feed")
    assert shown["status"]["state"] == "failing" and shown["status"]["failures"] == 1
    assert feeds.get_exchange(store, "ncmec-feed").checkpoint["next"]


def test_5xx_timeouts_and_garbage_are_retried_then_the_next_sync_resumes_from_the_checkpoint(
    store: Store, clock: Clock, sleeps: list[float], ncmec: FakeNcmec
) -> None:
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    service = make_service(store, clock, sleeps, exchange_timeout_s=0.3)
    for n in range(1, 8):
        ncmec.add(T0 + n, f"img{n}", md5=md5(n))
    add_ncmec(service, ncmec)
    # within one sync: a 503, a stall past the timeout and a garbage page, each retried
    ncmec.fail(Fault(503), Fault(stall_s=1.0), Fault(garbage=True))
    first = service.sync("ncmec-feed", "w")
    assert first.ok and len(sleeps) == 3 and len(bank_state(store)) == 7

    # a partner that keeps failing: the sync gives up after its retries, with backoff
    later = int(clock.now)
    for n in range(8, 14):
        ncmec.add(later, f"img{n}", md5=md5(n))
    clock.now += 3600
    ncmec.fail(*[Fault(500)] * 4, after=1)  # one page, then more 500s than a sync retries
    failed = service.sync("ncmec-feed", "w")
    assert not failed.ok and "500" in (failed.error or "") and failed.pages == 1
    assert service.show("ncmec-feed")["status"]["last_error"] == failed.error
    resumed = service.sync("ncmec-feed", "w")
    assert resumed.ok and resumed.counts["added"] == 4  # the 2 of the committed page are not repeated
    assert len(bank_state(store)) == 13


def test_wrong_credentials_fail_without_retrying(service: ExchangeService, ncmec: FakeNcmec) -> None:
    add_ncmec(service, ncmec, credentials={"username": "esp", "password": "wrong"})
    result = service.sync("ncmec-feed", "w")
    assert not result.ok and "401" in (result.error or "") and len(ncmec.requests) == 1


def test_feedback_is_off_by_default_and_reports_a_false_positive_when_on(
    service: ExchangeService, ncmec: FakeNcmec, store: Store
) -> None:
    ncmec.add(T0 + 1, "img1", md5=md5(1))
    add_ncmec(service, ncmec)
    service.sync("ncmec-feed", "w")
    item = store.find_item("ncmec", "42-img1")
    off = service.report_false_positive(item.id, ADMIN)
    assert off == {"reported": False, "exchange": "ncmec-feed", "reason": "feedback is off for this exchange"}
    assert ncmec.feedback == []
    service.update("ncmec-feed", {"feedback": True}, ADMIN)
    on = service.report_false_positive(item.id, ADMIN)
    assert on["reported"] is True
    [(path, body)] = ncmec.feedback
    assert path == "/v2/entries/42/img1/MD5/feedback"
    assert b"<negative>" in body and FakeNcmec.REASON.encode() in body


# ----------------------------------------------------------------------------------------- lease and security


def test_one_process_syncs_an_exchange_at_a_time(service: ExchangeService, ncmec: FakeNcmec, store: Store) -> None:
    ncmec.add(T0 + 1, "img1", md5=md5(1))
    add_ncmec(service, ncmec)
    assert feeds.acquire_lease(store, "ncmec-feed", "replica-a", 60)
    with pytest.raises(LeaseLostError):
        service.sync("ncmec-feed", "replica-b")
    assert service.show("ncmec-feed")["status"]["state"] == "syncing"
    # replica-a stalls past its lease; b takes over; a's late page must not land
    with store.engine.begin() as conn:
        conn.execute(sa.update(feeds.exchanges).values(lease_until=datetime(2000, 1, 1, tzinfo=UTC)))
    assert service.sync("ncmec-feed", "replica-b").ok
    assert feeds.acquire_lease(store, "ncmec-feed", "replica-b", 60)
    record = feeds.get_exchange(store, "ncmec-feed")
    with pytest.raises(LeaseLostError):
        feeds.apply_page(store, record, "replica-a", [FeedEntry("42-late", (("md5", md5(9)),))], None, lease_ttl_s=60)
    assert "42-late" not in bank_state(store)


def test_credentials_are_encrypted_never_shown_and_can_be_rotated(
    store: Store, clock: Clock, sleeps: list[float], ncmec: FakeNcmec
) -> None:
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    old_key = Fernet.generate_key().decode()
    service = make_service(store, clock, sleeps, exchange_key=old_key)
    shown = add_ncmec(service, ncmec)
    assert shown["credentials"] == "set" and "secret" not in repr(shown) and "esp" not in repr(shown)
    token = feeds.get_exchange(store, "ncmec-feed").credentials
    assert token is not None and "secret" not in token
    with store.engine.connect() as conn:
        assert "secret" not in repr(conn.execute(sa.select(audit_log)).all())

    new_key = Fernet.generate_key().decode()
    both = make_service(store, clock, sleeps, exchange_key=f"{new_key},{old_key}")
    assert both.rotate_credentials(ADMIN) == 1
    only_new = make_service(store, clock, sleeps, exchange_key=new_key)
    assert only_new.vault.decrypt(feeds.get_exchange(store, "ncmec-feed").credentials)["password"] == "secret"
    only_old = make_service(store, clock, sleeps, exchange_key=old_key)
    with pytest.raises(CredentialsKeyError):
        only_old.vault.decrypt(feeds.get_exchange(store, "ncmec-feed").credentials)


def test_bad_configurations_are_refused(service: ExchangeService, ncmec: FakeNcmec) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "gopher"}, "type must be one of"),
        ({"credentials": {"username": "esp"}}, "needs credential"),
        ({"credentials": {"username": "a", "password": "b", "token": "c"}}, "unknown credential"),
        ({"config": {"base_url": "file:///etc/passwd"}}, "http"),
        ({"every": "5s"}, "every must be from"),
        ({"bank": "nope"}, "no bank"),
    ]
    for override, message in cases:
        with pytest.raises(Exception, match=message):
            add_ncmec(service, ncmec, **override)
    with pytest.raises(ValidationError, match="takes no feedback"):
        service.add(
            {
                "name": "t",
                "type": "tat",
                "bank": "ncmec",
                "feedback": True,
                "credentials": {"username": "u", "password": "p"},
            },
            ADMIN,
        )


# ------------------------------------------------------------------------------- the address guard (SSRF)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080",
        "http://localhost:9",
        "https://hashes.partner.internal/v2",  # a name that resolves to a private address
    ],
)
def test_partner_urls_at_loopback_metadata_or_private_addresses_are_refused_unless_allowed(
    store: Store, clock: Clock, sleeps: list[float], monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    answer(monkeypatch, {"hashes.partner.internal": ["10.20.30.40"], "partner.example": ["93.184.215.14"]})
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    store.create_bank("list", category="csam", actor=ADMIN)
    service = make_service(store, clock, sleeps, exchange_allowed_networks="")
    ncmec = {
        "name": "ncmec-feed",
        "type": "ncmec",
        "bank": "ncmec",
        "credentials": {"username": "esp", "password": "secret"},
    }
    with pytest.raises(TargetRefused, match=r"metadata|HASHSVC_EXCHANGE_ALLOWED_NETWORKS"):
        service.add({**ncmec, "config": {"base_url": base_url}}, ADMIN)
    with pytest.raises(TargetRefused):
        service.add({"name": "list", "type": "url", "bank": "list", "config": {"url": base_url + "/l.csv"}}, ADMIN)
    assert service.list() == []
    # A feed added at a public address cannot be moved to a refused one either.
    service.add({**ncmec, "config": {"base_url": "https://partner.example/hashsharing"}}, ADMIN)
    with pytest.raises(TargetRefused):
        service.update("ncmec-feed", {"config": {"base_url": base_url}}, ADMIN)
    assert service.show("ncmec-feed")["config"]["base_url"] == "https://partner.example/hashsharing"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_partner_name_that_resolves_to_loopback_at_sync_time_is_refused_dns_rebinding(
    store: Store, clock: Clock, sleeps: list[float], monkeypatch: pytest.MonkeyPatch, ncmec: FakeNcmec
) -> None:
    """The name answered a public address when the feed was added, then loopback (where the fake listens): the
    connection is refused, nothing reaches the server, and the error says why (not retried: it is permanent)."""
    ncmec.add(T0, "img1", md5=md5(1))
    answer(monkeypatch, {"partner.example": ["93.184.215.14", "127.0.0.1"]})
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    service = make_service(store, clock, sleeps, exchange_allowed_networks="")
    port = ncmec.url.rsplit(":", 1)[1]
    add_ncmec(service, ncmec, config={"base_url": f"http://partner.example:{port}"})
    result = service.sync("ncmec-feed", "me")
    assert not result.ok and result.error is not None
    assert "refused to connect" in result.error and "127.0.0.1" in result.error
    assert ncmec.requests == [] and sleeps == [] and store.count_items("ncmec") == 0
    assert service.show("ncmec-feed")["status"]["state"] == "failing"


def test_a_redirect_from_the_partner_is_refused_not_followed(service: ExchangeService, ncmec: FakeNcmec) -> None:
    ncmec.add(T0, "img1", md5=md5(1))
    add_ncmec(service, ncmec)
    ncmec.fail(Fault(302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    result = service.sync("ncmec-feed", "me")
    assert not result.ok and result.error is not None and "redirect" in result.error
    assert len(ncmec.requests) == 1 and service.store.count_items("ncmec") == 0


# ---------------------------------------------------------------------------------- the other partner types


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_stopncii_pages_withdrawals_and_feedback(store: Store, clock: Clock, sleeps: list[float]) -> None:
    store.create_bank("ncii", category="ncii", actor=ADMIN)
    service = make_service(store, clock, sleeps)
    with FakeStopNcii(page_size=2) as fake:
        for n in range(5):
            fake.put(T0 + n, pdq(n))
        fake.put(T0 + 5, "d41d8cd98f00b204e9800998ecf8427e", signal="VideoMD5")  # kept aside
        service.add(
            {
                "name": "stopncii",
                "type": "stopncii",
                "bank": "ncii",
                "config": {"base_url": fake.url},
                "feedback": True,
                "credentials": {
                    "subscription_key": "sub",
                    "fetch_function_key": "fetch",
                    "feedback_function_key": "fb",
                },
            },
            ADMIN,
        )
        first = service.sync("stopncii", "w")
        assert first.ok and first.pages == 3 and first.counts["added"] == 5 and first.counts["unknown"] == 1
        fake.put(T0 + 10, pdq(1), status="Withdrawn")
        second = service.sync("stopncii", "w")
        assert second.counts["retracted"] == 1 and second.counts["fetched"] == 1
        assert store.find_item("ncii", f"ImagePDQ:{pdq(1)}").status == "disabled"
        item = store.find_item("ncii", f"ImagePDQ:{pdq(2)}")
        assert item.metadata["labels"] == ["ncii"]
        assert service.report_false_positive(item.id, ADMIN)["reported"] is True
        assert fake.feedback[0]["hashFeedbacks"][0] == {
            "hashValue": pdq(2),
            "feedbackValue": "NotBlocked",
            "tags": ["false_positive"],
        }


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_tat_resumes_after_its_checkpoint_and_applies_deletions(
    store: Store, clock: Clock, sleeps: list[float]
) -> None:
    store.create_bank("tat", category="terror", actor=ADMIN)
    service = make_service(store, clock, sleeps)
    with FakeTat(page_size=2) as fake:
        for n in range(1, 6):
            fake.put(n, T0 + n, pdq(n), ideology="far-right" if n % 2 else "islamist")
        fake.put(6, T0 + 6, "0" * 40, algorithm="SHA1")
        service.add(
            {
                "name": "tat",
                "type": "tat",
                "bank": "tat",
                "config": {"base_url": fake.url},
                "credentials": {"username": "analyst", "password": "pw"},
            },
            ADMIN,
        )
        first = service.sync("tat", "w")
        assert first.ok and first.counts["added"] == 5 and first.counts["unknown"] == 1
        assert store.find_item("tat", "1").metadata["labels"] == ["far-right", "image"]
        assert feeds.get_exchange(store, "tat").checkpoint == {"after": f"{T0 + 6},6"}
        fake.put(2, T0 + 20, pdq(2), deleted=True)
        second = service.sync("tat", "w")
        assert second.counts == {**second.counts, "fetched": 1, "retracted": 1}
        assert store.find_item("tat", "2").status == "disabled"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_threatexchange_follows_paging_and_tombstones(store: Store, clock: Clock, sleeps: list[float]) -> None:
    store.create_bank("te", category="terror", actor=ADMIN)
    service = make_service(store, clock, sleeps)
    with FakeThreatExchange(page_size=2) as fake:
        for n in range(1, 5):
            fake.put(T0 + n, 1000 + n, pdq(n), tags=["gifct", "tvec"])
        fake.put(T0 + 5, 1005, "a" * 40, kind="HASH_SHA1")
        fake.put(T0 + 6, 1006, "not-a-pdq")  # malformed: counted as bad, the rest applied
        service.add(
            {
                "name": "te",
                "type": "threatexchange",
                "bank": "te",
                "config": {"base_url": fake.url, "privacy_group": fake.group},
                "credentials": {"access_token": fake.token},
            },
            ADMIN,
        )
        first = service.sync("te", "w")
        assert first.ok and first.pages == 3 and first.counts["added"] == 4 and first.counts["unknown"] == 1
        assert first.counts["bad"] == 1 and "1006" in first.problems[0]
        assert store.find_item("te", "1001").metadata["labels"] == ["gifct", "tvec"]
        fake.put(int(clock.now) + 1, 1002, pdq(2), delete=True)
        clock.now += 3600
        assert service.sync("te", "w").counts["retracted"] == 1
        assert store.find_item("te", "1002").status == "disabled"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_url_list_is_fetched_conditionally_and_lines_that_vanish_are_retracted(
    store: Store, clock: Clock, sleeps: list[float]
) -> None:
    store.create_bank("list", category="csam", actor=ADMIN)
    service = make_service(store, clock, sleeps)
    rows = [f"pdq,{pdq(n)},REF-{n},A1" for n in range(4)]
    with FakeHashList("algorithm,hash,reference,category\n" + "\n".join(rows) + "\npdq,123,REF-bad,A1\n") as fake:
        service.add({"name": "list", "type": "url", "bank": "list", "config": {"url": fake.url + "/list.csv"}}, ADMIN)
        first = service.sync("list", "w")
        assert first.ok and first.counts["added"] == 4 and first.counts["bad"] == 1
        assert store.find_item("list", "REF-0").metadata["labels"] == ["A1"]
        unchanged = service.sync("list", "w")
        assert unchanged.ok and unchanged.counts["fetched"] == 0  # 304 Not Modified
        fake.set("algorithm,hash,reference,category\n" + "\n".join(rows[1:]) + "\n")
        fake.fail(Fault(stall_s=3.0), Fault(500))  # a stalled download and a 500, each retried
        changed = service.sync("list", "w")
        assert sleeps == [1.0, 2.0]
        assert changed.counts["retracted"] == 1 and changed.counts["unchanged"] == 3
        assert store.find_item("list", "REF-0").status == "disabled"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_syncs_entries_and_errors_are_counted_in_metrics(service: ExchangeService, ncmec: FakeNcmec) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"exchange": "ncmec-feed", **labels}) or 0.0

    before = (
        sample("hashsvc_exchange_syncs_total", outcome="ok"),
        sample("hashsvc_exchange_entries_total", result="added"),
        sample("hashsvc_exchange_errors_total", kind="transient"),
    )
    for n in range(1, 4):
        ncmec.add(T0 + n, f"img{n}", md5=md5(n))
    add_ncmec(service, ncmec)
    ncmec.fail(Fault(502))
    assert service.sync("ncmec-feed", "w").ok
    assert sample("hashsvc_exchange_syncs_total", outcome="ok") == before[0] + 1
    assert sample("hashsvc_exchange_entries_total", result="added") == before[1] + 3
    assert sample("hashsvc_exchange_errors_total", kind="transient") == before[2] + 1
    assert sample("hashsvc_exchange_last_success_timestamp_seconds") > T0


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    from hashsvc.exchanges.base import parse_retry_after

    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("99999999") == 24 * 3600.0  # bounded: a partner cannot park a feed for years
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_doubles_with_each_failure_up_to_the_limit(store: Store, clock: Clock, sleeps: list[float]) -> None:
    service = make_service(store, clock, sleeps, exchange_max_backoff_s=600)
    assert 54 <= service._backoff(1) <= 66
    assert 216 <= service._backoff(3) <= 264
    assert 540 <= service._backoff(30) <= 660  # capped (with jitter) at HASHSVC_EXCHANGE_MAX_BACKOFF_S
