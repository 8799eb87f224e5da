"""Tech Against Terrorism hash list API (JSON), read incrementally after a checkpoint.

Source: TAT's documentation (https://terrorismanalytics.org/docs/hash-list-v1) as implemented by
python-threatexchange's `exchanges/clients/techagainstterrorism/api.py` and its `tests/test_api.py`:
`POST {base}/token-auth/tcap/` with username and password answers `{"token": ...}`; `GET
{base}/api/hash-list/v2/all?order=asc&after=<checkpoint>` with `Authorization: Bearer <token>` answers
`{"count", "next", "previous", "checkpoint": "<updated_on>,<id>", "results": [{"hash_digest", "algorithm",
"ideology", "file_type", "deleted", "updated_on", "created_on", "id"}]}`; `next` is null on the last page.
Asking again with `after=<the page's checkpoint>` gives the records after that page, so the checkpoint alone
resumes a sync. The API has no feedback endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hashsvc.errors import InvalidHashError
from hashsvc.exchanges.base import Entry, Http, MalformedFeedError, Page, PermanentFeedError, hash_pair
from hashsvc.netguard import Guard

DEFAULT_BASE_URL = "https://app.terrorismanalytics.org"
SIGNALS = {"md5": "md5", "pdq": "pdq", "sha256": "sha256"}


def _entry(record: Any) -> Entry:
    if not isinstance(record, dict) or record.get("id") is None:
        return Entry("?", problem="record without id")
    entry_id = str(record["id"])[:255]
    labels = tuple(str(record[k])[:64] for k in ("ideology", "file_type") if record.get(k))
    metadata = {k: record[k] for k in ("ideology", "file_type", "algorithm") if isinstance(record.get(k), str)}
    if record.get("deleted") is True:
        return Entry(entry_id, deleted=True, metadata=metadata)
    algorithm, digest = record.get("algorithm"), record.get("hash_digest")
    if not isinstance(algorithm, str) or not isinstance(digest, str):
        return Entry(entry_id, problem="record without algorithm/hash_digest")
    ours = SIGNALS.get(algorithm.lower())
    if ours is None:
        return Entry(entry_id, unknown={algorithm[:32]: digest[:512]}, labels=labels, metadata=metadata)
    try:
        return Entry(entry_id, (hash_pair(ours, digest),), labels=labels, metadata=metadata)
    except InvalidHashError as exc:
        return Entry(entry_id, problem=exc.message)


class TatClient:
    """Credentials: `username`, `password`. Config: `base_url`."""

    def __init__(
        self, config: Mapping[str, Any], credentials: Mapping[str, str], *, timeout_s: float, guard: Guard
    ) -> None:
        if not credentials.get("username") or not credentials.get("password"):
            raise PermanentFeedError("the tat exchange needs credentials username and password")
        self.credentials = dict(credentials)
        self.http = Http(config.get("base_url") or DEFAULT_BASE_URL, timeout_s=timeout_s, guard=guard)

    def close(self) -> None:
        self.http.close()

    def _token(self) -> str:
        body = self.http.json(
            "POST",
            "token-auth/tcap/",
            data={"username": self.credentials["username"], "password": self.credentials["password"]},
        )
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise MalformedFeedError("TAT token-auth answer has no token")
        return body["token"]

    def pages(self, checkpoint: Mapping[str, Any] | None) -> Iterator[Page]:
        after = str((checkpoint or {}).get("after") or "")
        headers = {"Authorization": f"Bearer {self._token()}"}
        while True:
            body = self.http.json(
                "GET", "api/hash-list/v2/all", params={"order": "asc", "after": after}, headers=headers
            )
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise MalformedFeedError("TAT hash-list answer is not an object with results")
            entries = [_entry(r) for r in body["results"]]
            page_checkpoint = body.get("checkpoint")
            if entries and not isinstance(page_checkpoint, str):
                raise MalformedFeedError("TAT hash-list page has results but no checkpoint")
            after = page_checkpoint or after
            done = not body.get("next") or not entries
            yield Page(entries, {"after": after}, done=done)
            if done:
                return

    def report_false_positive(self, entry_id: str, metadata: Mapping[str, Any]) -> bool:
        return False  # the TAT hash list API takes no feedback
