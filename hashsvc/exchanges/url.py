"""A hash list at an HTTP(S) URL, in any format `hashsvc import` reads, fetched with conditional requests.

Source: RFC 9110 conditional requests (`If-None-Match` with the last `ETag`, `If-Modified-Since` with the last
`Last-Modified`; `304 Not Modified` means nothing changed). The list is a full snapshot: an entry that was in
the previous copy and is gone from this one has been retracted. The body is streamed and parsed in pages, so
memory stays flat however long the list is; the validators are saved only after the whole list is applied,
so an interrupted sync fetches and re-applies the list (idempotently) rather than skipping its tail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from hashsvc.exchanges.base import Entry, Http, Page, PermanentFeedError, check, feed_errors
from hashsvc.netguard import Guard

PAGE_SIZE = 10_000
MAX_LIST_BYTES = 4 * 1024**3

# (lines, format, algorithm) -> records: the import formats' parser, passed in by the service layer (the
# formats live in hashsvc.service.transfer, above this package).
Parser = Callable[[Iterable[str], str, str | None], Iterator[Any]]


def record_entry(record: Any) -> Entry:
    """An import record (hashsvc.service.transfer.Record or BadLine) as a feed entry."""
    if not hasattr(record, "hashes"):  # a BadLine
        return Entry(f"line {record.line}", problem=f"line {record.line}: {record.code}: {record.message}")
    entry_id = record.reference or "+".join(f"{a}:{h}" for a, h in record.hashes)
    metadata = dict(record.metadata or {})
    for name in ("source", "note"):
        if getattr(record, name):
            metadata[name] = getattr(record, name)
    labels = tuple(str(metadata[k])[:64] for k in ("category", "label") if metadata.get(k))
    return Entry(entry_id[:255], record.hashes, deleted=record.disabled, labels=labels, metadata=metadata)


class UrlClient:
    """Config: `url`, `format` (csv, jsonl, hex, threatexchange), `algorithm`. Credentials: optional `bearer`."""

    def __init__(
        self,
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        *,
        timeout_s: float,
        parse: Parser,
        guard: Guard,
    ) -> None:
        url = str(config.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise PermanentFeedError("the url exchange needs an http(s) url")
        headers = {"Authorization": f"Bearer {credentials['bearer']}"} if credentials.get("bearer") else {}
        self.url = url
        self.format = str(config.get("format") or "csv")
        self.algorithm = config.get("algorithm")
        self.parse = parse
        self.http = Http(url, timeout_s=timeout_s, headers=headers, guard=guard)

    def close(self) -> None:
        self.http.close()

    def pages(self, checkpoint: Mapping[str, Any] | None) -> Iterator[Page]:
        checkpoint = dict(checkpoint or {})
        headers = {}
        if checkpoint.get("etag"):
            headers["If-None-Match"] = checkpoint["etag"]
        if checkpoint.get("last_modified"):
            headers["If-Modified-Since"] = checkpoint["last_modified"]
        with feed_errors("reading the list"), self.http.client.stream("GET", self.url, headers=headers) as response:
            check(response)
            if response.status_code == 304:
                yield Page([], None, done=True)
                return
            validators = {
                "etag": response.headers.get("etag"),
                "last_modified": response.headers.get("last-modified"),
            }
            entries: list[Entry] = []
            for record in self.parse(_bounded_lines(response.iter_lines()), self.format, self.algorithm):
                entries.append(record_entry(record))
                if len(entries) >= PAGE_SIZE:
                    yield Page(entries, None, done=False, snapshot=True)
                    entries = []
            yield Page(entries, validators, done=True, snapshot=True)

    def report_false_positive(self, entry_id: str, metadata: Mapping[str, Any]) -> bool:
        return False


def _bounded_lines(lines: Iterable[str]) -> Iterator[str]:
    total = 0
    for line in lines:
        total += len(line) + 1
        if total > MAX_LIST_BYTES:
            raise PermanentFeedError(f"the hash list is larger than {MAX_LIST_BYTES} bytes")
        yield line
