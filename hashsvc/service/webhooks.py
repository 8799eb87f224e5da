"""Signed webhooks: subscriptions, target checks, signatures, and the one deliverer across replicas.

A delivery is an outbox row written in the same transaction as its event (hashsvc.store.aftermatch), so a restart
or a SIGKILL loses none. Exactly one process across every replica delivers at a time (the `webhook-deliverer`
lease, see hashsvc.store.leases); delivery is at least once, each POST carrying the same `Idempotency-Key` on
every retry, so a receiver that remembers the keys it has processed sees every event exactly once.

Signature: `X-Hashsvc-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`. A receiver
recomputes it, compares in constant time, and rejects old timestamps (replays). The secret is shown once, when
the webhook is created.

Targets: the URL's host is resolved when the webhook is created and again before every delivery, and the request
goes to the very address that was checked (no second lookup a DNS rebinding could answer differently). Loopback,
private, link-local, cloud metadata and other non-public addresses are refused unless they fall inside
HASHSVC_WEBHOOK_ALLOWED_NETWORKS (the guard is hashsvc.netguard, shared with partner feeds). Redirects are not
followed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hashsvc.errors import HashsvcError, ValidationError
from hashsvc.netguard import Guard
from hashsvc.store import Actor, Store, validation
from hashsvc.store import webhooks as table
from hashsvc.store.aftermatch import WEBHOOK_TYPES
from hashsvc.store.transactions import utcnow

SIGNATURE_HEADER = "X-Hashsvc-Signature"
MAX_BACKOFF_S = 3600.0
BATCH = 200
# Deliveries on the wire at once, and rows per round (claimed and settled in one transaction each). At 8, a pass
# of the deliverer ran ~17 deliveries/s against 115 events/s (a loaded server, a receiver answering in ~45 ms):
# every round paid two commits and waited for its slowest receiver. A round is still one wave of attempts, so it
# lasts at most one attempt's longest duration, well inside a third of the delivery lease.
CONCURRENCY = 32
ALLOWED_SETTING = "HASHSVC_WEBHOOK_ALLOWED_NETWORKS"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: float = 300, now: float | None = None) -> bool:
    """What a receiver does: the signature matches and its timestamp is recent."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, t, body), parts.get("v1", ""))


def delivery_body(idempotency_key: str, event_type: str, payload: Mapping[str, Any]) -> bytes:
    return json.dumps({"id": idempotency_key, "type": event_type, "event": payload}, separators=(",", ":")).encode()


def delivery_headers(secret: str, idempotency_key: str, event_type: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "hashsvc-webhook",
        "Idempotency-Key": idempotency_key,
        "X-Hashsvc-Event": event_type,
        SIGNATURE_HEADER: signature_header(secret, body),
    }


class Webhooks:
    """Subscriptions (scope admin), what the API shows of deliveries, and test deliveries."""

    def __init__(self, store: Store, allowed_networks: str, timeout_s: float = 5.0) -> None:
        self.store = store
        self.guard = Guard.from_setting(allowed_networks, ALLOWED_SETTING)
        self.timeout_s = timeout_s

    def create(self, body: Any, actor: Actor) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise ValidationError('send {"url": "https://...", "events": [...], "banks": [...] (optional)}')
        unknown = sorted(str(k) for k in set(body) - {"url", "events", "banks"})
        if unknown:
            raise ValidationError(f"unknown webhook field(s): {', '.join(unknown)}")
        self.guard.check_url(body.get("url"))
        types = body.get("events")
        if not isinstance(types, list) or not types or not set(types) <= set(WEBHOOK_TYPES) or len(types) > 10:
            raise ValidationError(f"events must be a non-empty list of {', '.join(WEBHOOK_TYPES)}")
        banks = body.get("banks")
        if banks is not None:
            if not isinstance(banks, list) or not banks or len(banks) > 100:
                raise ValidationError("banks must be a non-empty list of bank names (at most 100), or absent")
            for name in banks:
                self.store.get_bank(validation.lookup("bank", name))
        secret = "whsec_" + secrets.token_urlsafe(32)
        webhook_id = table.create(self.store.engine, body["url"], secret, sorted(set(types)), banks, actor.name)
        self.store.record_audit(actor, "webhook.create", details={"webhook_id": webhook_id, "url": body["url"]})
        return {**table.get(self.store.engine, webhook_id), "secret": secret}

    def list(self) -> list[dict[str, Any]]:
        return table.list_all(self.store.engine)

    def get(self, webhook_id: int) -> dict[str, Any]:
        return table.get(self.store.engine, webhook_id)

    def delete(self, webhook_id: int, actor: Actor) -> None:
        table.delete(self.store.engine, webhook_id)
        self.store.record_audit(actor, "webhook.delete", details={"webhook_id": webhook_id})

    def deliveries(self, webhook_id: int, limit: int, before_id: int | None) -> dict[str, Any]:
        found = table.deliveries(self.store.engine, webhook_id, limit, before_id)
        return {"deliveries": found, "next_before_id": found[-1]["id"] if len(found) == limit else None}

    def test(self, webhook_id: int, actor: Actor) -> dict[str, Any]:
        """Send one signed `test` request to the webhook now and say how the receiver answered.

        It bypasses the outbox (nothing is retried or recorded as a delivery) so that an operator can check a
        receiver's URL, network path and signature check before real events flow; the same target checks and
        headers as a delivery apply. Audited as `webhook.test`.
        """
        url, secret = table.target(self.store.engine, webhook_id)
        key = f"test-{webhook_id}-{secrets.token_hex(8)}"
        payload = {"webhook_id": webhook_id, "at": utcnow().isoformat(), "requested_by": actor.name}
        body = delivery_body(key, "test", payload)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            parts, address = self.guard.check_url(url)
            assert parts.hostname is not None
            port = parts.port or (443 if parts.scheme == "https" else 80)
            kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
            conn = kind(parts.hostname, port, str(address), self.timeout_s)
            try:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                headers = delivery_headers(secret, key, "test", body)
                status = int(_exchange(conn, path, body, headers, self.timeout_s).status)
            finally:
                conn.close()
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (HashsvcError, OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        outcome = {
            "webhook_id": webhook_id,
            "idempotency_key": key,
            "delivered": error is None,
            "status": status,
            "error": error,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        self.store.record_audit(actor, "webhook.test", details=outcome)
        return outcome


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to the checked address, with the URL's host in the Host header.

    `expired` is set by `_Deadline` when the attempt's time is up: a connection made after that is refused.
    """

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self.expired = False

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        _refuse_if_expired(self)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to the checked address, verifying the certificate against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self.expired = False

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The handshake runs after `self.sock` is set, so that a deadline can cut a slow handshake off too.
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        _refuse_if_expired(self)
        self.sock.do_handshake()


def _refuse_if_expired(conn: _PinnedHTTP | _PinnedHTTPS) -> None:
    if conn.expired:
        conn.close()
        raise TimeoutError("the attempt's time ran out while connecting")


class _Deadline:
    """Cuts one request/answer exchange off `seconds` after it starts, whatever the receiver does.

    A socket timeout bounds each read, not their sum: a receiver answering a byte every few seconds would
    otherwise hold a delivery thread, and with it a whole round of deliveries and the lease, for as long as it
    likes. At the deadline the socket is shut down, which ends any blocked read or write at once.
    """

    def __init__(self, conn: _PinnedHTTP | _PinnedHTTPS, seconds: float) -> None:
        self.conn = conn
        self.seconds = seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self.conn.expired = False
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self._timer.cancel()
        # A cut-off socket reads as an end of file, which http.client may even take for a complete answer, or
        # raises a reset that would blame the receiver: either way the truth is that time ran out.
        if self.conn.expired and (kind is None or issubclass(kind, (OSError, http.client.HTTPException))):
            raise TimeoutError(f"no complete answer within {self.seconds:g} s") from exc

    def _expire(self) -> None:
        self.conn.expired = True
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


def _exchange(
    conn: _PinnedHTTP | _PinnedHTTPS, path: str, body: bytes, headers: Mapping[str, str], seconds: float
) -> http.client.HTTPResponse:
    """POST and read at most 64 KiB of the answer, all within `seconds`."""
    with _Deadline(conn, seconds):
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read(65536)
    return response


class Deliverer:
    """Delivers due outbox rows; `deliver_once` is one pass (the background loop calls it while holding the lease)."""

    def __init__(self, store: Store, *, allowed_networks: str, timeout_s: float, retry_for_s: float) -> None:
        self.store = store
        self.guard = Guard.from_setting(allowed_networks, ALLOWED_SETTING)
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self.claim_s = 2 * timeout_s + 5  # longer than any one attempt can take (two tries of the connection)
        self.listeners: list[Callable[[list[table.Outcome], list[float]], None]] = []
        # Set by the background runner to renew the delivery lease between rounds; always true when called directly.
        self.still_mine: Callable[[], bool] = lambda: True
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="hashsvc-webhook")
        self._local = threading.local()  # each delivery thread keeps its own kept-alive connections...
        self._open: set[http.client.HTTPConnection] = set()  # ...and close() closes them all
        self._open_lock = threading.Lock()
        self._lock = threading.Lock()

    def deliver_once(self, limit: int = BATCH) -> int:
        """Deliver what is due now, CONCURRENCY at a time; return how many rows were tried.

        Between rounds `still_mine()` renews the lease (or says it is lost, and the pass stops), and each round's
        outcomes are committed before the next starts: a round lasts at most one delivery timeout, well inside a
        third of the lease, so no other process can take the lease over while a delivery is on the wire."""
        with self._lock:
            due = table.due(self.store.engine, limit)
            tried = 0
            for start in range(0, len(due), CONCURRENCY):
                if not self.still_mine():
                    break
                rows = due[start : start + CONCURRENCY]
                cancelled = [row.id for row in rows if row.url is None or row.secret is None]
                # Each row is also claimed for the attempt: even if this process stalls past its lease and
                # another takes over, the other will not send these rows until the claim has run out.
                taken = table.claim(self.store.engine, [r.id for r in rows if r.id not in cancelled], self.claim_s)
                live = [row for row in rows if row.id in taken]
                outcomes = list(self._pool.map(self._attempt, live)) if len(live) > 1 else [*map(self._attempt, live)]
                lags = [
                    (o.at - row.created_at).total_seconds()
                    for o, row in zip(outcomes, live, strict=True)
                    if o.delivered
                ]
                table.settle(self.store.engine, outcomes)
                table.cancel(self.store.engine, cancelled)
                for listener in self.listeners:
                    listener(outcomes, lags)
                tried += len(rows)
            return tried

    def close(self) -> None:
        """Stop the delivery threads (their kept-alive connections close with them)."""
        with self._lock:
            self._pool.shutdown(wait=True)
            with self._open_lock:
                for conn in self._open:
                    conn.close()
                self._open.clear()

    def _attempt(self, row: table.Due) -> table.Outcome:
        started = time.perf_counter()
        body = delivery_body(row.idempotency_key, row.event_type, row.payload)
        status: int | None = None
        error: str | None = None
        try:
            assert row.url is not None and row.secret is not None
            parts, address = self.guard.check_url(row.url)
            headers = delivery_headers(row.secret, row.idempotency_key, row.event_type, body)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            status = self._post(parts, str(address), path, body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (HashsvcError, OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = utcnow()
        delivered = error is None
        retry_at = None
        if not delivered and (now - row.created_at).total_seconds() < self.retry_for_s:
            retry_at = now + dt.timedelta(seconds=min(2.0**row.attempts, MAX_BACKOFF_S))
        return table.Outcome(
            row.id, row.webhook_id, now, status, error, (time.perf_counter() - started) * 1000, delivered, retry_at
        )

    def _post(
        self, parts: urllib.parse.SplitResult, address: str, path: str, body: bytes, headers: dict[str, str]
    ) -> int:
        assert parts.hostname is not None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        slot = (parts.scheme, parts.hostname, port, address)
        if not hasattr(self._local, "connections"):
            self._local.connections = {}
        connections: dict[tuple[str, str, int, str], _PinnedHTTP | _PinnedHTTPS] = self._local.connections
        for attempt in (1, 2):  # a kept-alive connection the receiver closed meanwhile is retried once, fresh
            conn = connections.get(slot)
            if conn is None:
                kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
                conn = kind(parts.hostname, port, address, self.timeout_s)
                connections[slot] = conn
                with self._open_lock:
                    self._open.add(conn)
            try:
                response = _exchange(conn, path, body, headers, self.timeout_s)
                if response.will_close:
                    self._drop(connections, slot)
                return int(response.status)
            except (OSError, http.client.HTTPException):
                self._drop(connections, slot)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _drop(self, connections: dict[Any, _PinnedHTTP | _PinnedHTTPS], slot: Any) -> None:
        conn = connections.pop(slot, None)
        if conn is not None:
            conn.close()
            with self._open_lock:
                self._open.discard(conn)
