"""Partner feeds, the use cases: configure an exchange, sync it, report a false positive back to its partner.

A sync takes the exchange's lease in the store (one process at a time across replicas), reads the partner's
pages from the stored checkpoint, and writes each page with the checkpoint that follows it in one transaction
(`hashsvc.store.exchanges.apply_page`). Transient failures (5xx, timeouts, a 429 asking for a short wait) are
retried a few times within the sync from the last committed checkpoint; after that the sync ends with the
error recorded and the next attempt is scheduled with exponential backoff (or after the partner's
Retry-After). A successful sync schedules the next one `every_s` later, with +-10% jitter so that replicas and
exchanges do not all call out at the same second.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hashsvc.config import Settings
from hashsvc.errors import HashsvcError, InvalidHashError, NotFoundError, ValidationError
from hashsvc.exchanges import (
    TYPES,
    Client,
    Entry,
    FeedError,
    Page,
    PermanentFeedError,
    RateLimitedFeedError,
    TransientFeedError,
    make_client,
)
from hashsvc.hashes import get_algorithm
from hashsvc.netguard import Guard
from hashsvc.service import exchange_metrics as metrics
from hashsvc.service import transfer
from hashsvc.service.credentials import CredentialsKeyError, Vault
from hashsvc.service.gcpause import gc_paused
from hashsvc.service.prefetch import Prefetch
from hashsvc.store import Actor, Store, validation
from hashsvc.store import exchanges as feeds
from hashsvc.store.exchanges import ExchangeRecord, LeaseLostError, PageCounts

log = logging.getLogger(__name__)

MIN_EVERY_S = 60
MAX_EVERY_S = 30 * 86400
DEFAULT_EVERY_S = 3600
JITTER = 0.1
RETRIES_IN_SYNC = 3  # transient failures retried within one sync, from the last committed checkpoint
RETRY_BASE_S = 1.0
MAX_INLINE_WAIT_S = 60.0  # a Retry-After longer than this ends the sync and reschedules it instead
BACKOFF_BASE_S = 60.0
# Consecutive partner pages are written together, in one transaction, up to HASHSVC_EXCHANGE_BATCH_ENTRIES
# entries (50,000 by default) or once the first of them has waited BATCH_WAIT_S: a commit costs tens of
# milliseconds on SQLite (profiled: 1.9 s of 6.4 s for the 50 one-page commits of a 50k-entry first sync), and
# the checkpoint of the last page goes in the same transaction, so a SIGKILL still resumes after a whole batch.
# A commit writes every page of the store it changed; a batch's hashes land at random places of the
# (algorithm, code) index, so as the bank grows a commit rewrites nearly one index page per hash: fewer, larger
# batches write each page once for several hashes (the first 500k entries of a sync: 18% less write CPU with
# batches of 50,000 than of 10,000, docs/exchanges.md). BATCH_WAIT_S lets a batch of a fast feed fill up (about
# 5 s for 50,000 entries at full speed) while a slow partner's pages still wait at most that long, and at most a
# quarter of the lease (which only a write renews).
BATCH_WAIT_S = 10.0
PREFETCH_PAGES = 4  # at least this many pages read ahead while a batch is written, and up to a batch of entries
ANALYZE_FROM = 10_000  # a sync that has added this many items refreshes the planner's statistics, then at doublings
ALLOWED_SETTING = "HASHSVC_EXCHANGE_ALLOWED_NETWORKS"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
ClientFactory = Callable[..., Client]


def parse_every(value: Any) -> int:
    """A sync interval from seconds or a duration such as '15m', '6h', '1d'. Raises ValidationError."""
    if isinstance(value, bool):
        raise ValidationError("every must be a duration such as 15m, 6h or 1d")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValidationError(f"every must be a duration such as 15m, 6h or 1d; got {value!r:.40}")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise ValidationError(f"every must be from {MIN_EVERY_S} s to 30 days; got {seconds} s")
    return seconds


def _http_url(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value) > 2000:
        raise ValidationError(f"{field_name} must be an http(s) URL of at most 2000 characters")
    return value


def _name(name: Any) -> str:
    """An exchange name from a path: a string the store can look up (NUL would be a 500 on PostgreSQL)."""
    return validation.lookup("exchange name", name)


def check_config(kind: str, config: Any) -> dict[str, Any]:
    """An exchange type's config, validated. Raises ValidationError."""
    if not isinstance(config, Mapping):
        raise ValidationError("config must be a JSON object")
    allowed = TYPES[kind].config
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValidationError(f"unknown config field(s) for {kind}: {', '.join(unknown)}; known: {', '.join(allowed)}")
    result: dict[str, Any] = {}
    for name, value in config.items():
        if value is None or value == "":
            continue
        if name in ("base_url", "url"):
            result[name] = _http_url(name, value)
        elif name == "format":
            result[name] = validation.choice("format", value, transfer.FORMATS)
        elif name == "algorithm":
            try:
                result[name] = get_algorithm(value).name
            except InvalidHashError as exc:
                raise ValidationError(exc.message) from None
        elif name == "privacy_group":
            if not str(value).isdigit() or len(str(value)) > 30:
                raise ValidationError("privacy_group must be a ThreatExchange privacy group id (digits)")
            result[name] = str(value)
    if kind == "url":
        if "url" not in result:
            raise ValidationError("a url exchange needs --url")
        result.setdefault("format", "csv")
        transfer.check_format(result["format"], result.get("algorithm"))
    if kind == "threatexchange" and "privacy_group" not in result:
        raise ValidationError("a threatexchange exchange needs config privacy_group")
    return result


def check_credentials(kind: str, credentials: Any) -> dict[str, str]:
    spec = TYPES[kind]
    if not isinstance(credentials, Mapping):
        raise ValidationError("credentials must be a JSON object of strings")
    known = set(spec.credentials) | set(spec.optional_credentials)
    unknown = sorted(set(credentials) - known)
    if unknown:
        # Name the fields, never echo the values.
        raise ValidationError(f"unknown credential field(s) for {kind}: {', '.join(unknown)[:200]}")
    missing = [name for name in spec.credentials if not credentials.get(name)]
    if missing:
        raise ValidationError(f"the {kind} exchange needs credential(s): {', '.join(missing)}")
    for name, value in credentials.items():
        if not isinstance(value, str) or len(value) > 4096:
            raise ValidationError(f"credential {name} must be a string of at most 4096 characters")
    return dict(credentials)


@dataclass
class SyncResult:
    exchange: str
    ok: bool
    pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    retry_after_s: float | None = None
    next_run_at: datetime | None = None
    seconds: float = 0.0
    added_ids: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "ok": self.ok,
            "pages": self.pages,
            "counts": self.counts,
            "error": self.error,
            "next_run_at": _iso(self.next_run_at),
            "seconds": round(self.seconds, 3),
            "problems": self.problems[:20],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ExchangeService:
    """Configure and sync partner feeds. Thread-safe as long as the Store is (one instance per process)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        client_factory: ClientFactory = make_client,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.vault = Vault(settings)
        self.guard = Guard.from_setting(settings.exchange_allowed_networks, ALLOWED_SETTING)
        self.client_factory = client_factory
        self.sleep = sleep
        self.rng = rng or random.Random()

    # ------------------------------------------------------------------------------------------ configuring

    def add(self, fields: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Configure a feed into an existing bank. Fields: name, type, bank, config, credentials, every,
        feedback. Raises ValidationError, NotFoundError (bank), ConflictError, CredentialsKeyError."""
        if not isinstance(fields, Mapping):
            raise ValidationError("the body must be a JSON object")
        allowed = {"name", "type", "bank", "config", "credentials", "every", "feedback"}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValidationError(f"unknown field(s): {', '.join(unknown)[:200]}")
        name = validation.slug("exchange name", fields.get("name"))
        kind = validation.choice("type", fields.get("type"), tuple(TYPES))
        bank = validation.bank_name(fields.get("bank"))
        config = check_config(kind, fields.get("config") or {})
        self._check_addresses(config)
        credentials = check_credentials(kind, fields.get("credentials") or {})
        every_s = parse_every(fields.get("every", DEFAULT_EVERY_S))
        feedback = self._feedback_flag(kind, fields.get("feedback", False))
        token = self.vault.encrypt(credentials) if credentials else None
        record = feeds.create_exchange(
            self.store,
            name=name,
            type=kind,
            bank=bank,
            config=config,
            credentials=token,
            every_s=every_s,
            feedback=feedback,
            actor=actor,
        )
        return self.describe(record)

    def _check_addresses(self, config: Mapping[str, Any]) -> None:
        """Refuse a configured partner URL whose host is or resolves to a loopback, private, link-local or
        metadata address (unless allowed), now, with a clear error. Every connection is checked again (DNS
        can answer differently later); a type's built-in default URL is only checked then.
        Raises TargetRefused, ValidationError."""
        for name in ("base_url", "url"):
            if name in config:
                self.guard.check_url(config[name], name)

    @staticmethod
    def _feedback_flag(kind: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("feedback must be true or false")
        if value and not TYPES[kind].feedback:
            raise ValidationError(f"the {kind} API takes no feedback; it cannot be turned on")
        return value

    def update(self, name: str, fields: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Change every, feedback, paused, config or credentials. Raises ValidationError, NotFoundError."""
        if not isinstance(fields, Mapping):
            raise ValidationError("the body must be a JSON object")
        record = feeds.get_exchange(self.store, _name(name))
        unknown = sorted(set(fields) - {"every", "feedback", "paused", "config", "credentials"})
        if unknown:
            raise ValidationError(f"unknown field(s): {', '.join(unknown)[:200]}")
        values: dict[str, Any] = {}
        if "every" in fields:
            values["every_s"] = parse_every(fields["every"])
        if "feedback" in fields:
            values["feedback"] = self._feedback_flag(record.type, fields["feedback"])
        if "paused" in fields:
            if not isinstance(fields["paused"], bool):
                raise ValidationError("paused must be true or false")
            values["paused"] = fields["paused"]
            if not fields["paused"]:
                values["next_run_at"] = datetime.now(UTC)
        if "config" in fields:
            if not isinstance(fields["config"], Mapping):
                raise ValidationError("config must be a JSON object")
            values["config"] = check_config(record.type, {**record.config, **fields["config"]})
            self._check_addresses(values["config"])
        if "credentials" in fields:
            values["credentials"] = self.vault.encrypt(check_credentials(record.type, fields["credentials"] or {}))
        action = "exchange.pause" if values.get("paused") else "exchange.update"
        return self.describe(feeds.update_exchange(self.store, name, actor, action, **values))

    def pause(self, name: str, actor: Actor) -> dict[str, Any]:
        return self.update(name, {"paused": True}, actor)

    def resume(self, name: str, actor: Actor) -> dict[str, Any]:
        return self.update(name, {"paused": False}, actor)

    def request_sync(self, name: str, actor: Actor) -> dict[str, Any]:
        """Make an exchange due now: the scheduler syncs it within seconds (not while it is paused).

        Raises NotFoundError."""
        now = datetime.now(UTC)
        record = feeds.update_exchange(self.store, _name(name), actor, "exchange.sync_requested", next_run_at=now)
        return self.describe(record)

    def remove(self, name: str, actor: Actor) -> None:
        feeds.delete_exchange(self.store, _name(name), actor)

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(record) for record in feeds.list_exchanges(self.store)]

    def show(self, name: str) -> dict[str, Any]:
        return self.describe(feeds.get_exchange(self.store, _name(name)))

    def rotate_credentials(self, actor: Actor) -> int:
        """Re-encrypt every stored secret with the newest key; return how many. Raises CredentialsKeyError."""
        tokens = [(exchange_id, self.vault.rotate(token)) for exchange_id, token in feeds.credential_tokens(self.store)]
        return feeds.replace_credential_tokens(self.store, tokens, actor)

    def describe(self, record: ExchangeRecord) -> dict[str, Any]:
        """The API's view of an exchange: never the credentials, only whether there are some."""
        now = datetime.now(UTC)
        if record.paused:
            state = "paused"
        elif record.lease_until is not None and record.lease_until > now:
            state = "syncing"
        elif record.last_success_at is None and record.last_error_at is None:
            state = "new"
        elif record.failures:
            state = "failing"
        else:
            state = "ok"
        lag = (now - record.last_success_at).total_seconds() if record.last_success_at else None
        return {
            "name": record.name,
            "type": record.type,
            "bank": record.bank,
            "config": record.config,
            "credentials": "set" if record.credentials else "none",
            "every_s": record.every_s,
            "paused": record.paused,
            "feedback": record.feedback,
            "status": {
                "state": state,
                "last_success_at": _iso(record.last_success_at),
                "last_attempt_at": _iso(record.last_attempt_at),
                "last_error": record.last_error,
                "last_error_at": _iso(record.last_error_at),
                "failures": record.failures,
                "next_run_at": _iso(record.next_run_at),
                "lag_s": round(lag, 1) if lag is not None else None,
                "entries": self.store.count_items(record.bank, status="active"),
                "kept_aside": record.kept_aside,
            },
            "totals": record.stats,
        }

    # ----------------------------------------------------------------------------------------------- syncing

    def _client(self, record: ExchangeRecord) -> Client:
        credentials = self.vault.decrypt(record.credentials)
        return self.client_factory(
            record.type,
            record.config,
            credentials,
            timeout_s=self.settings.exchange_timeout_s,
            parse=transfer.read_records,
            guard=self.guard,
            parse_process=parse_process_wanted(
                self.settings.exchange_parse_process, self.store.engine.dialect.name, _usable_cores()
            ),
        )

    def sync(self, name: str, owner: str) -> SyncResult:
        """Sync one exchange now, as `owner` (a process id). Raises LeaseLostError if another process is syncing
        it, NotFoundError; every feed failure is recorded on the exchange and returned, not raised."""
        if not feeds.acquire_lease(self.store, name, owner, self.settings.exchange_lease_s):
            feeds.get_exchange(self.store, name)  # NotFoundError first
            raise LeaseLostError(f"exchange {name!r} is being synced by another process")
        record = feeds.get_exchange(self.store, name)
        started = time.monotonic()
        result = SyncResult(name, ok=False)
        totals = PageCounts()
        failures = record.failures
        try:
            self._sync_pages(record, owner, result, totals)
        except LeaseLostError:
            metrics.SYNCS.labels(name, "lease_lost").inc()
            raise
        except (FeedError, HashsvcError) as exc:
            failures += 1
            result.error = exc.message
            retry_after = exc.retry_after if isinstance(exc, RateLimitedFeedError) else None
            result.retry_after_s = retry_after
            outcome = "rate_limited" if retry_after is not None else "error"
            metrics.SYNCS.labels(name, outcome).inc()
            metrics.ERRORS.labels(name, _error_kind(exc)).inc()
            delay = max(retry_after or 0.0, self._backoff(failures))
            result.next_run_at = datetime.now(UTC) + timedelta(seconds=delay)
            log.warning("exchange %s: sync failed (%s); next attempt in %.0f s", name, exc.message, delay)
        else:
            failures = 0
            result.ok = True
            metrics.SYNCS.labels(name, "ok").inc()
            metrics.LAST_SUCCESS.labels(name).set(time.time())
            delay = record.every_s * (1 + self.rng.uniform(-JITTER, JITTER))
            result.next_run_at = datetime.now(UTC) + timedelta(seconds=delay)
        result.counts = totals.as_stats()
        result.added_ids = totals.added_ids
        result.seconds = time.monotonic() - started
        feeds.finish_sync(
            self.store,
            name,
            owner,
            error=result.error,
            failures=failures,
            next_run_at=result.next_run_at or datetime.now(UTC),
        )
        return result

    def _backoff(self, failures: int) -> float:
        base = min(self.settings.exchange_max_backoff_s, BACKOFF_BASE_S * 2 ** min(failures - 1, 20))
        return base * (1 + self.rng.uniform(-JITTER, JITTER))

    def _sync_pages(self, record: ExchangeRecord, owner: str, result: SyncResult, totals: PageCounts) -> None:
        checkpoint = record.checkpoint
        attempt = 0
        analyzed_at = ANALYZE_FROM // 2
        # Only a write renews the lease: a batch that waited for its pages past the lease would let another
        # process take the exchange over while this one still reads.
        max_wait_s = min(BATCH_WAIT_S, self.settings.exchange_lease_s / 4)
        client = self._client(record)
        try:
            while True:
                seen: set[str] = set()
                pages = Prefetch(
                    client.pages(checkpoint),
                    depth=PREFETCH_PAGES,
                    weight=_entry_count,
                    budget=self.settings.exchange_batch_entries,
                )
                try:
                    for page, read in batched(pages, self.settings.exchange_batch_entries, max_wait_s):
                        with gc_paused():  # see hashsvc.service.gcpause: a batch is freed by reference counting
                            counts = self._apply(record, owner, page, seen, read)
                        result.pages += read
                        _add(totals, counts)
                        if totals.added >= analyzed_at * 2:
                            feeds.refresh_statistics(self.store)
                            analyzed_at = totals.added
                        result.problems.extend(counts.problems[: 20 - len(result.problems)])
                        if page.checkpoint is not None:
                            checkpoint = page.checkpoint
                        attempt = 0  # progress made: the retry budget is per stuck page
                    return
                except TransientFeedError as exc:
                    attempt += 1
                    wait = RETRY_BASE_S * 2 ** (attempt - 1)
                    if isinstance(exc, RateLimitedFeedError) and exc.retry_after is not None:
                        wait = exc.retry_after
                    if attempt > RETRIES_IN_SYNC or wait > MAX_INLINE_WAIT_S:
                        raise
                    metrics.ERRORS.labels(record.name, _error_kind(exc)).inc()
                    log.info("exchange %s: %s; retrying in %.1f s", record.name, exc.message, wait)
                    self.sleep(wait)
                finally:
                    pages.close()
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def _apply(self, record: ExchangeRecord, owner: str, page: Page, seen: set[str], read: int = 1) -> PageCounts:
        entries = page.entries  # an Entry is a FeedRecord: the store reads it as it is
        if page.snapshot:
            seen.update(e.entry_id for e in entries if e.problem is None and not e.deleted)
        counts = feeds.apply_page(
            self.store,
            record,
            owner,
            entries,
            page.checkpoint,
            lease_ttl_s=self.settings.exchange_lease_s,
            retract_missing=seen if page.snapshot and page.done else None,
            success=page.done,
            pages=read,
        )
        for name, value in counts.as_stats().items():
            if value:
                metrics.ENTRIES.labels(record.name, name).inc(value)
        return counts

    def run_due(self, owner: str) -> list[SyncResult]:
        """One scheduler pass: sync every exchange that is due and not leased elsewhere."""
        results = []
        for name in feeds.due_exchanges(self.store):
            try:
                results.append(self.sync(name, owner))
            except (LeaseLostError, NotFoundError):
                continue  # another replica got there first, or it was removed meanwhile
        return results

    def run_scheduler(self, owner: str, stop: Any, poll_s: float = 5.0) -> None:
        """Sync due exchanges until `stop` (a threading.Event) is set."""
        while not stop.is_set():
            try:
                self.run_due(owner)
            except Exception:  # a store outage must not end the scheduler; it is logged and retried
                log.exception("exchange scheduler pass failed")
            stop.wait(poll_s * (1 + self.rng.uniform(-JITTER, JITTER)))

    # ---------------------------------------------------------------------------------------------- feedback

    def report_false_positive(self, item_id: int, actor: Actor) -> dict[str, Any]:
        """Tell the partner an item it shared is a false positive, if the item came from a feed whose
        feedback is on and whose API takes feedback. For the review queue's "false positive" resolution and
        for disables. Returns {"reported": bool, "exchange": name or None, "reason": why not}."""
        item = self.store.get_item(item_id)
        provenance = item.metadata.get("exchange") if item.source and item.source.startswith("exchange:") else None
        if not isinstance(provenance, str):
            return {"reported": False, "exchange": None, "reason": "the item did not come from a partner feed"}
        try:
            record = feeds.get_exchange(self.store, provenance)
        except NotFoundError:
            return {"reported": False, "exchange": provenance, "reason": "the exchange was removed"}
        if not record.feedback:
            return {"reported": False, "exchange": record.name, "reason": "feedback is off for this exchange"}
        client = self._client(record)
        partner = dict(item.metadata.get("partner") or {})
        partner["algorithms"] = sorted({h.algorithm for h in item.hashes})
        try:
            reported = client.report_false_positive(item.external_ref or "", partner)
        except FeedError as exc:
            metrics.ERRORS.labels(record.name, "feedback").inc()
            return {"reported": False, "exchange": record.name, "reason": f"the partner refused: {exc.message}"}
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        if reported:
            metrics.FEEDBACK.labels(record.name).inc()
            self.store.record_audit(
                actor,
                "exchange.feedback",
                bank=item.bank,
                item_id=item.id,
                details={"exchange": record.name, "entry_id": item.external_ref, "opinion": "false_positive"},
            )
        reason = None if reported else "the partner's API has no way to take this feedback"
        return {"reported": reported, "exchange": record.name, "reason": reason}


def batched(pages: Iterable[Page], max_entries: int, max_wait_s: float = BATCH_WAIT_S) -> Iterator[tuple[Page, int]]:
    """Consecutive pages merged into one (their entries in order, the last checkpoint any of them gave, the last
    one's `done`), with how many pages each holds. A batch ends at the feed's last page, at `max_entries`, or
    when a page arrives `max_wait_s` after the batch's first (a slow partner's pages are not held back).

    A page that mentions an entry the batch already holds starts a new batch: within one write the latest
    record of an entry wins, so an entry added on one page and retracted on the next must not meet in one
    write (the bank would then lack the disabled item that page-by-page writing leaves). Batches therefore
    leave the bank exactly as page-by-page writing does, wherever their boundaries fall."""
    entries: list[Entry] = []
    ids: set[str] = set()
    checkpoint: dict[str, Any] | None = None
    count = 0
    started = 0.0
    snapshot = False  # a full-snapshot feed's pages (a URL list) are all marked so
    source = iter(pages)
    while True:
        try:
            page = next(source)
        except StopIteration:
            break
        except Exception as exc:
            # The partner failed mid-batch (5xx, 429...): the pages read so far are written first, so that the
            # retry, or the next sync, resumes after them rather than fetching them again.
            if count:
                yield Page(entries, checkpoint, False, snapshot), count
            raise exc
        page_ids = {entry.entry_id for entry in page.entries}
        if count and not ids.isdisjoint(page_ids):
            yield Page(entries, checkpoint, False, snapshot), count
            entries, ids, checkpoint, count = [], set(), None, 0
        if not count:
            started = time.monotonic()
        snapshot = page.snapshot
        ids |= page_ids
        entries.extend(page.entries)
        checkpoint = page.checkpoint if page.checkpoint is not None else checkpoint
        count += 1
        if page.done or len(entries) >= max_entries or time.monotonic() - started >= max_wait_s:
            yield Page(entries, checkpoint, page.done, page.snapshot), count
            entries, ids, checkpoint, count = [], set(), None, 0
    if count:  # a client that stopped without a last page: write what it gave
        yield Page(entries, checkpoint, False, snapshot), count


def parse_process_wanted(setting: str, dialect: str, cores: int) -> bool:
    """Whether a large sync's pages are parsed in a child process (HASHSVC_EXCHANGE_PARSE_PROCESS).

    'auto': when the machine has a core for it that the sync's other busy processes leave free. On SQLite the
    syncing process does the parsing and the store's work, so a child moves the parsing to a second core. On
    PostgreSQL the store's work already runs in the server's backend, which keeps a second core busy; a child
    then needs a third, and on two cores it measured no better or worse in wall time (docs/exchanges.md,
    Benchmark) while it costs the pages' passing to and fro."""
    if setting in ("on", "off"):
        return setting == "on"
    busy = 1 if dialect == "sqlite" else 2  # the syncing process, and PostgreSQL's backend
    return cores > busy


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _entry_count(page: Page) -> int:
    return len(page.entries)


def _add(totals: PageCounts, counts: PageCounts) -> None:
    for name in counts.as_stats():
        setattr(totals, name, getattr(totals, name) + getattr(counts, name))
    totals.added_ids.extend(counts.added_ids)


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, RateLimitedFeedError):
        return "rate_limited"
    if isinstance(exc, TransientFeedError):
        return "transient"
    if isinstance(exc, PermanentFeedError):
        return "permanent"
    if isinstance(exc, CredentialsKeyError):
        return "credentials_key"
    return "other"
