"""Local fake partner servers for the exchange tests and the benchmark: real HTTP on 127.0.0.1, no network.

Each fake reproduces the requests and responses of one partner API as documented and as python-threatexchange's
client and tests use it (the source is named on each class). Every fake can be told to misbehave on its next
requests: answer a status (429 with Retry-After, 500, 401), stall past the client's timeout, or send garbage.
They record the requests they saw and the most requests they served at once (the replica test uses that).
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Fault:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0
    garbage: bool = False


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """A threaded HTTP server on a free local port; subclasses implement `handle(method, path, query, ...)`."""

    content_type = "application/json"

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.healthy = 0
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.most_at_once = 0
        self.request_delay_s = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = fake._dispatch(method, self.path, dict(self.headers.items()), body)
                if reply is None:  # stalled: the client has given up; just close
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.pop("Content-Type", fake.content_type))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(reply.body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, *faults: Fault, after: int = 0) -> None:
        """Misbehave on the next requests (after serving `after` more normally)."""
        self.healthy = after
        self.faults.extend(faults)

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append((method, raw_path))
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
            fault = None
            if self.healthy:
                self.healthy -= 1
            elif self.faults:
                fault = self.faults.popleft()
        try:
            if self.request_delay_s:
                time.sleep(self.request_delay_s)
            if fault is not None:
                if fault.stall_s:
                    time.sleep(fault.stall_s)
                    return None
                if fault.garbage:
                    return Reply(200, b"<<<\x00 not what you expected", {})
                return Reply(fault.status, b'{"error": "fault"}', dict(fault.headers))
            return self.handle(method, parts.path, query, {k.lower(): v for k, v in headers.items()}, body)
        finally:
            with self.lock:
                self.active -= 1

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        raise NotImplementedError


def _json(value: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(value).encode())


# ---------------------------------------------------------------------------------------------------- NCMEC


class FakeNcmec(FakeServer):
    """NCMEC hash sharing API v2.

    Source: NCMEC's documentation (https://report.cybertip.org/hashsharing/v2/documentation.pdf) as used by
    python-threatexchange `exchanges/clients/ncmec/hash_api.py` (GET /v2/entries?from=&to=, basic auth, paging
    by `<paging><next>` with start/size/max) and the XML of its `tests/data.py` (`queryResult`, `images` /
    `videos` with `maxTimestamp`, `image`, `deletedImage`, `member id=`, `classification`, `fingerprints`),
    plus the feedback endpoints (GET /v2/feedback/{TYPE}/reasons, PUT /v2/entries/{member}/{id}/{TYPE}/feedback).
    Entries are served in the order they were added, which is not time order, as NCMEC warns.
    """

    content_type = "application/xml"
    REASON = "01234567-abcd-0123-4567-012345678900"

    def __init__(self, username: str = "esp", password: str = "secret", page_size: int = 1000) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.page_size = page_size
        self.stamps: list[int] = []  # sorted timestamps, parallel to self.rendered
        self.rendered: list[tuple[str, str]] = []  # (section, xml)
        self.feedback: list[tuple[str, bytes]] = []

    def add(
        self,
        ts: int,
        entry_id: str,
        *,
        member: int = 42,
        md5: str | None = None,
        pdq: str | None = None,
        other: dict[str, str] | None = None,
        classification: str | None = "A1",
        video: bool = False,
        deleted: bool = False,
        raw: str | None = None,
    ) -> None:
        """Add (or, with a later timestamp, update or delete) an entry; timestamps must not go backwards."""
        assert not self.stamps or ts >= self.stamps[-1], "add entries in time order"
        kind = "video" if video else "image"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
        if raw is not None:
            xml = raw
        elif deleted:
            tag = "deletedVideo" if video else "deletedImage"
            xml = (
                f'<{tag}><member id="{member}">Member {member}</member><id>{entry_id}</id>'
                f"<timestamp>{stamp}</timestamp></{tag}>"
            )
        else:
            prints = "".join(f"<{k}>{v}</{k}>" for k, v in {"md5": md5, "pdq": pdq, **(other or {})}.items() if v)
            label = f"<classification>{classification}</classification>" if classification else ""
            xml = (
                f'<{kind}><member id="{member}">Member {member}</member><timestamp>{stamp}</timestamp>'
                f"<id>{entry_id}</id>{label}<fingerprints>{prints}</fingerprints></{kind}>"
            )
        self.stamps.append(ts)
        self.rendered.append(("videos" if video else "images", xml))

    @staticmethod
    def _ts(text: str) -> int:
        import calendar

        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        if headers.get("authorization") != self.auth:
            return Reply(401, b"<error>Unauthorized</error>")
        if method == "GET" and path.startswith("/v2/feedback/") and path.endswith("/reasons"):
            return Reply(
                200,
                (
                    '<?xml version="1.0"?><availableFeedbackReasons xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
                    f'<reason guid="{self.REASON}" name="Not CSAM" type="MD5"/></availableFeedbackReasons>'
                ).encode(),
            )
        if method == "PUT" and path.startswith("/v2/entries/") and path.endswith("/feedback"):
            self.feedback.append((path, body))
            return Reply(200, b"<submissionResult/>")
        if method != "GET" or path != "/v2/entries":
            return Reply(404, b"<error>not found</error>")
        start_ts, end_ts = self._ts(query["from"]), self._ts(query["to"])
        lo = bisect.bisect_left(self.stamps, start_ts)
        hi = bisect.bisect_left(self.stamps, end_ts)
        size = int(query.get("size", self.page_size))
        start = int(query.get("start", 1))
        first = lo + start - 1
        last = min(hi, first + size)
        sections: dict[str, list[str]] = {"images": [], "videos": []}
        for section, xml in self.rendered[first:last]:
            sections[section].append(xml)
        out = [
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        ]
        max_stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.stamps[last - 1] if last > first else 0))
        for section, parts in sections.items():
            if parts:
                out.append(f'<{section} count="{len(parts)}" maxTimestamp="{max_stamp}">{"".join(parts)}</{section}>')
        if last < hi:
            nxt = urlencode(
                {
                    "from": query["from"],
                    "to": query["to"],
                    "start": start + size,
                    "size": size,
                    "max": start + 2 * size - 1,
                }
            )
            out.append(f"<paging><next>/v2/entries?{nxt.replace('&', '&amp;')}</next></paging>")
        out.append("</queryResult>")
        return Reply(200, "".join(out).encode())


# ------------------------------------------------------------------------------------------------- StopNCII


class FakeStopNcii(FakeServer):
    """StopNCII.org hash exchange API.

    Source: python-threatexchange `exchanges/clients/stopncii/api.py` and `tests/test_api.py` (GET /FetchHashes
    with startTimestamp, pageSize, nextPageToken; headers Ocp-Apim-Subscription-Key and x-functions-key; the
    answer's count, nextPageToken, nextSetTimestamp, hasMoreRecords, hashRecords with lastModtimestamp,
    signalType, hashValue, hashStatus, caseNumbers, CSPFeedbacks; POST /SubmitFeedback with hashFeedbacks).
    """

    def __init__(
        self, subscription_key: str = "sub", fetch_key: str = "fetch", feedback_key: str = "fb", page_size: int = 2
    ) -> None:
        super().__init__()
        self.keys = (subscription_key, fetch_key, feedback_key)
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.page_size = page_size
        self.feedback: list[dict[str, Any]] = []

    def put(self, ts: int, value: str, *, signal: str = "ImagePDQ", status: str = "Active") -> None:
        self.records[(signal, value)] = {
            "lastModtimestamp": ts,
            "signalType": signal,
            "hashValue": value,
            "hashStatus": status,
            "caseNumbers": {"case-1": status},
            "CSPFeedbacks": [],
        }

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        if headers.get("ocp-apim-subscription-key") != self.keys[0]:
            return _json({"statusCode": 401, "message": "Access denied"}, 401)
        if method == "POST" and path == "/SubmitFeedback":
            if headers.get("x-functions-key") != self.keys[2]:
                return _json({"message": "bad function key"}, 401)
            self.feedback.append(json.loads(body))
            return _json({})
        if method != "GET" or path != "/FetchHashes" or headers.get("x-functions-key") != self.keys[1]:
            return _json({"message": "not found"}, 404)
        start = int(query["startTimestamp"])
        matching = sorted(
            (r for r in self.records.values() if r["lastModtimestamp"] >= start),
            key=lambda r: (r["lastModtimestamp"], r["hashValue"]),
        )
        offset = int(base64.b64decode(query["nextPageToken"]).decode()) if query.get("nextPageToken") else 0
        size = min(int(query.get("pageSize", 800)), self.page_size)
        page = matching[offset : offset + size]
        more = offset + size < len(matching)
        latest = max((r["lastModtimestamp"] for r in matching), default=start - 1)
        return _json(
            {
                "count": len(page),
                "nextPageToken": base64.b64encode(str(offset + size).encode()).decode() if more else None,
                "nextSetTimestamp": latest + 1,
                "hasMoreRecords": more,
                "hashRecords": page,
            }
        )


# ------------------------------------------------------------------------------------------------------ TAT


class FakeTat(FakeServer):
    """Tech Against Terrorism hash list API.

    Source: TAT's documentation (https://terrorismanalytics.org/docs/hash-list-v1) as used by python-threatexchange
    `exchanges/clients/techagainstterrorism/api.py` and `tests/test_api.py` (POST /token-auth/tcap/ -> token;
    GET /api/hash-list/v2/all?order=asc&after=<checkpoint> with a bearer token -> count, next, previous,
    checkpoint "<updated_on>,<id>", results with hash_digest, algorithm, ideology, file_type, deleted,
    updated_on, created_on, id).
    """

    def __init__(self, username: str = "analyst", password: str = "pw", page_size: int = 2) -> None:
        super().__init__()
        self.credentials = (username, password)
        self.token = "tat-token-1"
        self.page_size = page_size
        self.rows: dict[int, dict[str, Any]] = {}

    def put(
        self,
        entry_id: int,
        updated_on: float,
        digest: str,
        *,
        algorithm: str = "PDQ",
        ideology: str = "islamist",
        deleted: bool = False,
    ) -> None:
        self.rows[entry_id] = {
            "hash_digest": digest,
            "algorithm": algorithm,
            "ideology": ideology,
            "file_type": "image",
            "deleted": deleted,
            "updated_on": updated_on,
            "created_on": "2025-01-01T00:00:00Z",
            "id": entry_id,
        }

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        if method == "POST" and path == "/token-auth/tcap/":
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            if (form.get("username"), form.get("password")) != self.credentials:
                return _json({"error": "Invalid credentials"}, 401)
            return _json({"user": {"username": form["username"]}, "token": self.token})
        if headers.get("authorization") != f"Bearer {self.token}":
            return _json({"error": "Authentication credentials were not provided."}, 401)
        if method != "GET" or path != "/api/hash-list/v2/all":
            return _json({"error": "not found"}, 404)
        after: tuple[float, int] = (-1.0, -1)
        if query.get("after"):
            stamp, _, ident = query["after"].partition(",")
            after = (float(stamp), int(ident))
        ordered = sorted(self.rows.values(), key=lambda r: (r["updated_on"], r["id"]))
        rest = [r for r in ordered if (r["updated_on"], r["id"]) > after]
        page = rest[: self.page_size]
        checkpoint = f"{page[-1]['updated_on']},{page[-1]['id']}" if page else query.get("after", "")
        more = len(rest) > len(page)
        nxt = f"{self.url}/api/hash-list/v2/all?limit={self.page_size}&offset={self.page_size}" if more else None
        return _json({"count": len(rest), "next": nxt, "previous": None, "checkpoint": checkpoint, "results": page})


# -------------------------------------------------------------------------------------------- ThreatExchange


class FakeThreatExchange(FakeServer):
    """Meta ThreatExchange Graph API, /threat_updates.

    Source: Meta's documentation (developers.facebook.com/docs/threat-exchange/reference/apis/threat-updates) as
    used by python-threatexchange `exchanges/clients/fb_threatexchange/api.py` (get_threat_updates: access_token,
    start_time, stop_time, limit, fields; `_CursoredResponse` follows `paging.next`) and `threat_updates.py`
    (id, indicator, type, last_updated, should_delete, tags).
    """

    def __init__(self, token: str = "123|secret", group: str = "1012185296055235", page_size: int = 2) -> None:
        super().__init__()
        self.token = token
        self.group = group
        self.page_size = page_size
        self.updates: list[dict[str, Any]] = []

    def put(
        self,
        ts: int,
        entry_id: int,
        indicator: str,
        *,
        kind: str = "HASH_PDQ",
        tags: list[str] | None = None,
        delete: bool = False,
    ) -> None:
        self.updates = [u for u in self.updates if u["id"] != str(entry_id)]
        self.updates.append(
            {
                "id": str(entry_id),
                "indicator": indicator,
                "type": kind,
                "creation_time": ts,
                "last_updated": ts,
                "should_delete": delete,
                "tags": tags or [],
            }
        )

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        if query.get("access_token") != self.token:
            return _json(
                {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}, 400
            )
        if path.rstrip("/") != f"/{self.group}/threat_updates":
            return _json({"error": {"message": "Unknown path", "code": 803}}, 404)
        start, stop = int(query.get("start_time") or 0), int(query.get("stop_time") or 2**40)
        rows = sorted((u for u in self.updates if start <= u["last_updated"] < stop), key=lambda u: u["last_updated"])
        offset = int(query.get("after") or 0)
        page = rows[offset : offset + self.page_size]
        result: dict[str, Any] = {"data": page, "paging": {"cursors": {"after": str(offset + len(page))}}}
        if offset + len(page) < len(rows):
            nxt = dict(query, after=str(offset + len(page)))
            result["paging"]["next"] = f"{self.url}/{self.group}/threat_updates/?{urlencode(nxt)}"
        return _json(result)


# ------------------------------------------------------------------------------------------------------ URL


class FakeHashList(FakeServer):
    """A hash list file served over HTTP with validators.

    Source: RFC 9110 sections 8.8 (ETag, Last-Modified) and 13.1 (If-None-Match, If-Modified-Since -> 304).
    """

    content_type = "text/csv"

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.set(text)

    def set(self, text: str) -> None:
        self.text = text
        self.version = getattr(self, "version", 0) + 1
        self.modified = formatdate(1_700_000_000 + self.version, usegmt=True)

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        etag = f'"v{self.version}"'
        if headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, self.text.encode(), {"ETag": etag, "Last-Modified": self.modified})
