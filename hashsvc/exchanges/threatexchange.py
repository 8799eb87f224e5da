"""Meta ThreatExchange `/threat_updates` (Graph API JSON), read incrementally by time range.

Source: Meta's documentation (https://developers.facebook.com/docs/threat-exchange/reference/apis/threat-updates)
as implemented by python-threatexchange's `exchanges/clients/fb_threatexchange/api.py` (`get_threat_updates`,
`_CursoredResponse`) and `threat_updates.py`: `GET {base}/{privacy_group}/threat_updates/?access_token=..
&start_time=..&stop_time=..&limit=..&fields=id,indicator,type,creation_time,last_updated,should_delete,tags`
answers `{"data": [...], "paging": {"next": <url>}}`; a record with `should_delete` true is a tombstone. The
checkpoint is the range's `stop_time` once the range is read, and the `next` link in between.
Reactions (opinions) go to a descriptor id, which `/threat_updates` does not return; feedback is not sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from hashsvc.exchanges.base import (
    Entry,
    Http,
    MalformedFeedError,
    Page,
    PermanentFeedError,
    split_signals,
    time_range_pages,
)
from hashsvc.netguard import Guard

DEFAULT_BASE_URL = "https://graph.facebook.com/v21.0"
FIELDS = "id,indicator,type,creation_time,last_updated,should_delete,tags"
PAGE_SIZE = 500
SIGNALS = {"hash_pdq": "pdq", "hash_md5": "md5"}


def _tags(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, dict):  # {"data": [{"text": ...}]} as the Graph API expands them
        raw = [t.get("text") for t in raw.get("data", []) if isinstance(t, dict)]
    if not isinstance(raw, list):
        return ()
    return tuple(str(t)[:64] for t in raw if t)


def _entry(record: Any) -> Entry:
    if not isinstance(record, dict) or not str(record.get("id", "")).isdigit():
        return Entry("?", problem="record without a numeric id")
    entry_id = str(record["id"])
    labels = _tags(record.get("tags"))
    metadata = {"type": str(record.get("type", ""))[:32], "tags": list(labels)}
    if record.get("should_delete"):
        return Entry(entry_id, deleted=True, metadata=metadata)
    kind, indicator = record.get("type"), record.get("indicator")
    if not isinstance(kind, str) or not isinstance(indicator, str):
        return Entry(entry_id, problem="record without type/indicator")
    hashes, unknown, problem = split_signals({kind: indicator}, SIGNALS)
    return Entry(entry_id, hashes, labels=labels, metadata=metadata, unknown=unknown, problem=problem)


class ThreatExchangeClient:
    """Credentials: `access_token` (an app token `<app id>|<secret>`). Config: `privacy_group`, `base_url`."""

    def __init__(
        self,
        config: Mapping[str, Any],
        credentials: Mapping[str, str],
        *,
        timeout_s: float,
        guard: Guard,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        if not credentials.get("access_token"):
            raise PermanentFeedError("the threatexchange exchange needs credential access_token")
        if not str(config.get("privacy_group", "")).isdigit():
            raise PermanentFeedError("the threatexchange exchange needs a numeric privacy_group")
        self.token = credentials["access_token"]
        self.group = str(config["privacy_group"])
        self.http = Http(config.get("base_url") or DEFAULT_BASE_URL, timeout_s=timeout_s, guard=guard)

    def close(self) -> None:
        self.http.close()

    def pages(self, checkpoint: Mapping[str, Any] | None) -> Iterator[Page]:
        return time_range_pages(
            checkpoint, self.clock, ("start", "stop"), self._first, self._follow, end_on_empty_page=True
        )

    def _first(self, start: int, stop: int) -> tuple[list[Entry], str]:
        params = {
            "access_token": self.token,
            "start_time": start,
            "stop_time": stop,
            "limit": PAGE_SIZE,
            "fields": FIELDS,
        }
        return self._parsed(self.http.json("GET", f"{self.group}/threat_updates/", params=params))

    def _follow(self, link: str) -> tuple[list[Entry], str]:
        # The Graph API's next link carries the token and the cursor; Http.url refuses another host.
        if urlsplit(link).path.rstrip("/").split("/")[-1] != "threat_updates":
            raise MalformedFeedError("ThreatExchange next link does not point at threat_updates")
        return self._parsed(self.http.json("GET", link))

    @staticmethod
    def _parsed(body: Any) -> tuple[list[Entry], str]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise MalformedFeedError("ThreatExchange threat_updates answer has no data list")
        paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
        return [_entry(r) for r in body["data"]], str(paging.get("next") or "")

    def report_false_positive(self, entry_id: str, metadata: Mapping[str, Any]) -> bool:
        return False
