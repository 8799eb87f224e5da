"""What every feed client returns, the errors it raises, and the one HTTP helper they share.

A client turns a partner's pages into `Page`s: the entries on the page and the checkpoint that resumes the feed
*after* this page. The sync writes a page's entries and its checkpoint in one transaction, so a crash between
pages loses nothing and repeats nothing.

Why our own clients rather than python-threatexchange's (read for every API here; see docs/exchanges.md):
its NCMEC client only talks to the fixed `NCMECEnvironment` URLs and its TAT client to a class-level base URL
(no way to point them at a test server or a proxy without patching), each request retries 429/5xx inside
`requests` with its own backoff and a 60 s timeout (our scheduler must see the 429 and its Retry-After to
reschedule, and must bound every request), and the package pulls in faiss, Pillow, pdqhash, dacite and
weighted-levenshtein at import time for what is, here, a page of XML or JSON.
"""

from __future__ import annotations

import email.utils
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from hashsvc.errors import InvalidHashError
from hashsvc.hashes import get_algorithm, normalize_hex
from hashsvc.netguard import Guard, TargetRefused

USER_AGENT = "hashsvc-exchange/1"
MAX_BODY = 64 * 1024 * 1024  # one page of a partner feed; a URL list is streamed instead
MAX_RETRY_AFTER_S = 24 * 3600.0
PAGE_DEADLINE_S = 300.0  # one page in all; a partner's 64 MB page needs only 1.7 Mbit/s to arrive within it


class FeedError(Exception):
    """A feed could not be read; `retryable` says whether trying later may help."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientFeedError(FeedError):
    """5xx, timeouts, connection errors: back off and try again."""


class RateLimitedFeedError(TransientFeedError):
    """429 (or 503 with Retry-After): the partner asked us to wait `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFeedError(FeedError):
    """4xx other than 429 (bad credentials, unknown collaboration): retrying will not help until reconfigured."""

    retryable = False


class MalformedFeedError(TransientFeedError):
    """A page that cannot be parsed at all (one bad entry is a bad entry, not this)."""


@dataclass(frozen=True)
class Entry:
    """One partner record: its id, the hashes we can store, what we cannot, and its labels.

    `deleted` marks a retraction. `unknown` holds signal types we do not store (PhotoDNA, SHA-1, video TMK...),
    with their values, so an entry made only of those is kept aside and counted rather than dropped.
    `problem` is set for a malformed entry (a hash that does not parse): it is counted and skipped.
    """

    entry_id: str
    hashes: tuple[tuple[str, str], ...] = ()
    deleted: bool = False
    labels: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unknown: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


@dataclass
class Page:
    entries: list[Entry]
    checkpoint: dict[str, Any] | None  # resumes after this page; None: unchanged
    done: bool  # the last page of this sync
    # For full-snapshot feeds (a hash list at a URL): after the last page, every entry not seen is retracted.
    snapshot: bool = False


class Client(Protocol):
    """A feed client. `pages(checkpoint)` yields pages until the feed is caught up."""

    def pages(self, checkpoint: Mapping[str, Any] | None) -> Iterator[Page]: ...

    def report_false_positive(self, entry_id: str, metadata: Mapping[str, Any]) -> bool:
        """Tell the partner we disagree with an entry; False if its API has no way to say so."""
        ...


def time_range_pages(
    checkpoint: Mapping[str, Any] | None,
    clock: Callable[[], float],
    keys: tuple[str, str],
    first: Callable[[int, int], tuple[list[Entry], str]],
    follow: Callable[[str], tuple[list[Entry], str]],
    *,
    end_on_empty_page: bool = False,
) -> Iterator[Page]:
    """The pages of a feed read by time range, then by the range's `next` links (NCMEC, ThreatExchange).

    `first(start, end)` fetches the range's first page and `follow(link)` a next link; each returns the page's
    entries and its next link ('' on the last). The checkpoint is `{keys[0]: start, keys[1]: end, "next": link}`
    while a range is read (resuming keeps its end, so its links stay valid), then `{keys[0]: end}` once it is
    whole: the partners do not return a range in time order, so only a whole range moves the time forward.
    `end_on_empty_page` ends the range at a page with no entries even if it has a next link."""
    begin, stop = keys
    checkpoint = dict(checkpoint or {})
    start = int(checkpoint.get(begin, 0))
    end = int(checkpoint.get(stop) or clock())
    link = str(checkpoint.get("next") or "")
    while True:
        entries, link = follow(link) if link else first(start, end)
        if link and (entries or not end_on_empty_page):
            yield Page(entries, {begin: start, stop: end, "next": link}, done=False)
        else:
            yield Page(entries, {begin: end, stop: None, "next": None}, done=True)
            return


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), bounded to a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER_S)


def hash_pair(signal_type: str, value: str) -> tuple[str, str]:
    """Our (algorithm, normalized hex) for a partner signal. Raises InvalidHashError."""
    name = get_algorithm(signal_type).name
    return name, normalize_hex(name, value)


def split_signals(
    signals: Mapping[str, str], names: Mapping[str, str]
) -> tuple[tuple[tuple[str, str], ...], dict[str, str], str | None]:
    """Split a partner's {signal type: value} into hashes we store (by `names`), the rest, and a problem."""
    hashes: list[tuple[str, str]] = []
    unknown: dict[str, str] = {}
    problem = None
    for kind, value in signals.items():
        ours = names.get(kind.lower())
        if ours is None:
            unknown[kind] = str(value)[:512]
            continue
        try:
            hashes.append(hash_pair(ours, str(value)))
        except InvalidHashError as exc:
            problem = f"{kind}: {exc.message}"
    return tuple(dict.fromkeys(hashes)), unknown, problem


@contextmanager
def feed_errors(doing: str) -> Iterator[None]:
    """Turn what an HTTP exchange with a partner can raise into FeedErrors; `doing` says what failed.

    A refused address (hashsvc.netguard) is permanent: retrying will not change the address, the admin must fix
    the URL or allow its network. Timeouts and connection errors are transient."""
    try:
        yield
    except TargetRefused as exc:
        raise PermanentFeedError(f"refused to connect: {exc.message}") from None
    except httpx.TimeoutException as exc:
        raise TransientFeedError(f"{doing} timed out: {type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise TransientFeedError(f"{doing} failed: {type(exc).__name__}: {exc}"[:300]) from None


class Http:
    """An httpx client with bounded timeouts that turns HTTP failures into FeedErrors.

    Every connection goes through `guard` (hashsvc.netguard): the partner's host is resolved, each address
    checked (no loopback, private, link-local or metadata address unless HASHSVC_EXCHANGE_ALLOWED_NETWORKS
    allows it), and the connection made to a checked address. Redirects are not followed: credentials go only
    to the configured host, and a redirect could point anywhere.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        guard: Guard,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            # Only what _bounded_body can unpack within its limit (httpx would also offer br and zstd).
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", **(headers or {})},
            auth=auth,
            follow_redirects=False,
            transport=guard.transport(),
            trust_env=False,
        )

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        """An absolute URL for `path`; absolute links from a response must stay on the configured host."""
        if not path.startswith(("http://", "https://")):
            return self.base_url + "/" + path.lstrip("/")
        if urlsplit(path)[:2] != urlsplit(self.base_url)[:2]:
            raise MalformedFeedError("a paging link points at another host; not followed (credentials stay home)")
        return path

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, its body read in full: at most MAX_BODY bytes (unpacked) within PAGE_DEADLINE_S.

        The body is streamed and counted as it arrives: reading it whole first let a hostile or broken server
        fill memory, and httpx's timeout bounds each read, not the page, so a server sending a byte every few
        seconds held the sync (and its lease) for as long as it liked.
        """
        doing = f"{method} {path.split('?')[0][:100]}"
        deadline = time.monotonic() + PAGE_DEADLINE_S
        with feed_errors(doing), self.client.stream(method, self.url(path), **kwargs) as response:
            check(response)
            body = _bounded_body(response, doing, deadline)
        # The body is unpacked already: the copy must not claim an encoding, or httpx would unpack it again.
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("content-encoding", "content-length")]
        return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise MalformedFeedError(f"{method} {path.split('?')[0]}: response is not JSON") from None


def _bounded_body(response: httpx.Response, doing: str, deadline: float) -> bytes:
    """The body, unpacked here rather than by httpx, whose decoder unpacks a whole network chunk at once: 60 KB
    of gzip is 64 MiB of output before any count could stop it. Only gzip and deflate are asked for."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise MalformedFeedError(f"{doing}: unsupported Content-Encoding {encoding[:40]!r}")
    unpack = None if encoding in ("identity", "") else zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib
    body = bytearray()
    for chunk in response.iter_raw():
        data = chunk
        while data:
            if unpack is None:
                body += data
                data = b""
            else:
                body += unpack.decompress(data, MAX_BODY + 1 - len(body))
                data = unpack.unconsumed_tail
            if len(body) > MAX_BODY:
                raise MalformedFeedError(f"{doing}: response larger than {MAX_BODY} bytes")
        if time.monotonic() > deadline:
            raise TransientFeedError(f"{doing}: response not complete within {PAGE_DEADLINE_S:g} s")
    if unpack is not None:
        body += unpack.flush()
    return bytes(body)


def check(response: httpx.Response) -> None:
    """Raise the FeedError a non-2xx response means."""
    status = response.status_code
    if status < 300 or status == 304:
        return
    where = f"{response.request.method} {response.request.url.path}"
    if status == 429 or (status == 503 and "retry-after" in response.headers):
        raise RateLimitedFeedError(
            f"{where}: {status} rate limited", parse_retry_after(response.headers.get("retry-after"))
        )
    if status >= 500:
        raise TransientFeedError(f"{where}: {status} from the partner")
    if 300 <= status < 400:
        message = f"{where}: {status} redirect (not followed: credentials stay with the configured host)"
        raise PermanentFeedError(message)
    raise PermanentFeedError(f"{where}: {status} {response.reason_phrase}")
