"""StopNCII.org hash exchange API (JSON), read incrementally by timestamp and page token.

Source: python-threatexchange's `exchanges/clients/stopncii/api.py` and `tests/test_api.py` (StopNCII publishes
its API to members only): `GET {base}/FetchHashes?startTimestamp=..&pageSize=..[&nextPageToken=..]` with headers
`Ocp-Apim-Subscription-Key` and `x-functions-key` answers `{"count", "nextPageToken", "nextSetTimestamp",
"hasMoreRecords", "hashRecords": [{"lastModtimestamp", "signalType", "hashValue", "hashStatus", "caseNumbers",
"CSPFeedbacks"}]}`. A record is the current state of one (signalType, hashValue); `hashStatus` Withdrawn or
Deleted means the person withdrew it. `nextSetTimestamp` is the checkpoint once `hasMoreRecords` is false.
Feedback: `POST {base}/SubmitFeedback` `{"count": 1, "hashFeedbacks": [{"hashValue", "feedbackValue", "tags"}]}`
with that endpoint's own function key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hashsvc.errors import InvalidHashError
from hashsvc.exchanges.base import Entry, Http, MalformedFeedError, Page, PermanentFeedError, hash_pair
from hashsvc.netguard import Guard

DEFAULT_BASE_URL = "https://api.stopncii.org/v1"
PAGE_SIZE = 800
SIGNALS = {"ImagePDQ": "pdq"}
RETRACTED = {"Withdrawn", "Deleted"}


def _entry(record: Any) -> Entry:
    if not isinstance(record, dict):
        return Entry("?", problem="record is not an object")
    signal, value = record.get("signalType"), record.get("hashValue")
    if not isinstance(signal, str) or not isinstance(value, str) or not value:
        return Entry(f"{signal}:{value}"[:200], problem="record without signalType/hashValue")
    entry_id = f"{signal}:{value}"[:255]
    status = record.get("hashStatus")
    cases = record.get("caseNumbers") if isinstance(record.get("caseNumbers"), dict) else {}
    metadata = {"signal_type": signal, "hash_status": status, "cases": len(cases)}
    if status in RETRACTED:
        return Entry(entry_id, deleted=True, metadata=metadata)
    if signal not in SIGNALS:
        return Entry(entry_id, unknown={signal: value[:512]}, metadata=metadata)
    try:
        hashes = (hash_pair(SIGNALS[signal], value),)
    except InvalidHashError as exc:
        return Entry(entry_id, problem=exc.message)
    return Entry(entry_id, hashes, labels=("ncii",), metadata=metadata)


class StopNciiClient:
    """Credentials: `subscription_key`, `fetch_function_key`, optional `feedback_function_key`."""

    def __init__(
        self, config: Mapping[str, Any], credentials: Mapping[str, str], *, timeout_s: float, guard: Guard
    ) -> None:
        if not credentials.get("subscription_key") or not credentials.get("fetch_function_key"):
            raise PermanentFeedError("the stopncii exchange needs credentials subscription_key and fetch_function_key")
        self.credentials = dict(credentials)
        self.http = Http(
            config.get("base_url") or DEFAULT_BASE_URL,
            timeout_s=timeout_s,
            guard=guard,
            headers={"Ocp-Apim-Subscription-Key": credentials["subscription_key"]},
        )

    def close(self) -> None:
        self.http.close()

    def pages(self, checkpoint: Mapping[str, Any] | None) -> Iterator[Page]:
        checkpoint = dict(checkpoint or {})
        start = int(checkpoint.get("start", 10))  # python-threatexchange's DEFAULT_START_TIME
        token = checkpoint.get("token") or ""
        headers = {"x-functions-key": self.credentials["fetch_function_key"]}
        while True:
            params: dict[str, Any] = {"startTimestamp": start, "pageSize": PAGE_SIZE}
            if token:
                params["nextPageToken"] = token
            body = self.http.json("GET", "FetchHashes", params=params, headers=headers)
            if not isinstance(body, dict) or not isinstance(body.get("hashRecords", []), list):
                raise MalformedFeedError("StopNCII FetchHashes answer is not an object with hashRecords")
            entries = [_entry(r) for r in body.get("hashRecords", [])]
            more = bool(body.get("hasMoreRecords"))
            token = body.get("nextPageToken") or ""
            if more and token:
                yield Page(entries, {"start": start, "token": token}, done=False)
                continue
            next_start = body.get("nextSetTimestamp")
            if not isinstance(next_start, int):
                raise MalformedFeedError("StopNCII FetchHashes answer has no integer nextSetTimestamp")
            yield Page(entries, {"start": max(next_start, start), "token": None}, done=True)
            return

    def report_false_positive(self, entry_id: str, metadata: Mapping[str, Any]) -> bool:
        key = self.credentials.get("feedback_function_key")
        _, _, value = entry_id.partition(":")
        if not key or not value:
            return False
        feedback = {"hashValue": value, "feedbackValue": "NotBlocked", "tags": ["false_positive"]}
        self.http.request(
            "POST", "SubmitFeedback", json={"count": 1, "hashFeedbacks": [feedback]}, headers={"x-functions-key": key}
        )
        return True
