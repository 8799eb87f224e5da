"""A small typed client for the hashsvc HTTP API, on the standard library only (no new dependency).

    from hashsvc.client import Client, ApiError
    client = Client("http://127.0.0.1:8080", key="hsk_...")
    result = client.match_image(Path("upload.jpg").read_bytes())
    if result["decision"] == "block": ...

Every failure the server reports becomes `ApiError` with its `status`, `code` and `message` (the API's error
shape); network failures become `ApiError` with status 0 and code `unreachable`. A 503 (overloaded, index not
ready) or 429 is retried after the server's `Retry-After` (or a short exponential backoff), a bounded number of
times: the server refuses such requests before doing any work, so retrying a POST is safe.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

RETRY_STATUSES = (429, 503)
MAX_RETRY_AFTER_S = 30.0


class ApiError(Exception):
    """The server (or the network) said no."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


# (method, url, headers, body, timeout_s) -> Response; the default speaks HTTP with urllib. Tests may pass
# another one (say over Flask's test client).
Transport = Callable[[str, str, Mapping[str, str], bytes | None, float], Response]


def urllib_transport(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, dict(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers.items()), error.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(0, "unreachable", f"{url}: {reason}") from None


class Client:
    """The hashsvc API. Methods return the server's JSON (dicts and lists) and raise ApiError."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.25,
        transport: Transport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the service URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.transport = transport or urllib_transport

    # ------------------------------------------------------------------------------------------ plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request (retrying 429/503), return its decoded JSON (None for an empty body)."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            response = self.transport(method, url, headers, data, self.timeout_s)
            if response.status not in RETRY_STATUSES or attempt >= self.retries:
                break
            time.sleep(self._delay(response, attempt))
            attempt += 1
        return self._decode(response)

    def _delay(self, response: Response, attempt: int) -> float:
        retry_after = {k.lower(): v for k, v in response.headers.items()}.get("retry-after", "")
        try:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(retry_after)))
        except ValueError:
            return self.backoff_s * 2**attempt

    @staticmethod
    def _decode(response: Response) -> Any:
        try:
            body = json.loads(response.body) if response.body else None
        except ValueError:
            body = None
        if response.status >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and "code" in error:
                raise ApiError(response.status, str(error["code"]), str(error.get("message", "")))
            text = response.body[:200].decode(errors="replace")
            raise ApiError(response.status, "http_error", text or f"HTTP {response.status}")
        return body

    def _upload(self, path: str, image: bytes, fields: Mapping[str, str | None] | None = None) -> Any:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (fields or {}).items():
            if value is not None:
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="image"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.request(
            "POST", path, data=b"".join(parts), content_type=f"multipart/form-data; boundary={boundary}"
        )

    # ------------------------------------------------------------------------------------------ matching

    def match_image(self, image: bytes) -> dict[str, Any]:
        """What the service decides about an image (block / review / allow) and why."""
        return self._upload("/v1/match", image)  # type: ignore[no-any-return]

    def match_hashes(self, hashes: Mapping[str, Any] | list[Mapping[str, Any]]) -> dict[str, Any]:
        """One hash set `{"pdq": "...", "md5": "..."}`, or a list of up to 1000 (answered under 'results')."""
        body = {"items": list(hashes)} if isinstance(hashes, list) else dict(hashes)
        return self.request("POST", "/v1/match/hashes", json_body=body)  # type: ignore[no-any-return]

    def hash_image(self, image: bytes) -> dict[str, Any]:
        return self._upload("/v1/hash", image)  # type: ignore[no-any-return]

    # --------------------------------------------------------------------------------------------- banks

    def list_banks(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/banks")["banks"]  # type: ignore[no-any-return]

    def get_bank(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/banks/{_quote(name)}")  # type: ignore[no-any-return]

    def create_bank(self, name: str, category: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "category": category, **{k: v for k, v in fields.items() if v is not None}}
        return self.request("POST", "/v1/banks", json_body=body)  # type: ignore[no-any-return]

    def update_bank(self, name: str, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        return self.request("PATCH", f"/v1/banks/{_quote(name)}", json_body=body)  # type: ignore[no-any-return]

    def delete_bank(self, name: str) -> None:
        self.request("DELETE", f"/v1/banks/{_quote(name)}")

    # --------------------------------------------------------------------------------------------- items

    def add_item(
        self,
        bank: str,
        hashes: Mapping[str, Any],
        *,
        reference: str | None = None,
        source: str | None = None,
        note: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"hashes": dict(hashes), "reference": reference, "source": source, "note": note, "metadata": metadata}
        body = {k: v for k, v in body.items() if v is not None}
        return self.request("POST", f"/v1/banks/{_quote(bank)}/items", json_body=body)  # type: ignore[no-any-return]

    def add_image(
        self,
        bank: str,
        image: bytes,
        *,
        reference: str | None = None,
        source: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Hash an image on the server and add it (the image is not stored)."""
        fields = {"reference": reference, "source": source, "note": note}
        return self._upload(f"/v1/banks/{_quote(bank)}/items", image, fields)  # type: ignore[no-any-return]

    def bulk_add(self, bank: str, lines: Iterable[str]) -> dict[str, Any]:
        """The plain bulk endpoint: JSON lines, all good lines in one transaction (not idempotent)."""
        data = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode()
        path = f"/v1/banks/{_quote(bank)}/items:bulk"
        return self.request("POST", path, data=data, content_type="application/x-ndjson")  # type: ignore[no-any-return]

    def import_lines(self, bank: str, lines: Iterable[str], *, dry_run: bool = False) -> dict[str, Any]:
        """The idempotent import: JSON lines; items already in the bank are skipped. Send batches of ~10k lines."""
        data = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode()
        return self.request(  # type: ignore[no-any-return]
            "POST",
            f"/v1/banks/{_quote(bank)}/items:import",
            data=data,
            content_type="application/x-ndjson",
            params={"dry_run": "true" if dry_run else "false"},
        )

    def get_item(self, item_id: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/items/{int(item_id)}")  # type: ignore[no-any-return]

    def list_items(
        self, bank: str, *, after_id: int = 0, limit: int = 1000, status: str | None = None
    ) -> dict[str, Any]:
        params = {"after_id": after_id, "limit": limit, "status": status}
        return self.request("GET", f"/v1/banks/{_quote(bank)}/items", params=params)  # type: ignore[no-any-return]

    def iter_items(self, bank: str, *, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a bank, page by page."""
        after = 0
        while True:
            page = self.list_items(bank, after_id=after, status=status)
            yield from page["items"]
            if page.get("next_after_id") is None:
                return
            after = page["next_after_id"]

    def update_item(self, item_id: int, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        return self.request("PATCH", f"/v1/items/{int(item_id)}", json_body=body)  # type: ignore[no-any-return]

    def disable_item(self, item_id: int, reason: str) -> dict[str, Any]:
        return self.update_item(item_id, status="disabled", reason=reason)

    def enable_item(self, item_id: int, reason: str | None = None) -> dict[str, Any]:
        return self.update_item(item_id, status="active", reason=reason)

    def delete_item(self, item_id: int) -> None:
        self.request("DELETE", f"/v1/items/{int(item_id)}")

    def search(
        self, hash_value: str, *, algorithm: str = "pdq", max_distance: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Items holding this hash or one within max_distance of it, nearest first."""
        params = {"algorithm": algorithm, "hash": hash_value, "max_distance": max_distance, "limit": limit}
        return self.request("GET", "/v1/search", params=params)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------------------------------------- keys

    def audit_page(self, **filters: Any) -> dict[str, Any]:
        """One page of the audit log (scope admin): actor, action, bank, item_id, since, until, before, limit."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self.request("GET", "/v1/audit", params=params)  # type: ignore[no-any-return]

    def list_keys(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/keys")["keys"]  # type: ignore[no-any-return]

    def create_key(self, name: str, scopes: Iterable[str], **options: Any) -> dict[str, Any]:
        """`options`: disclosure ('full' | 'decision'), rate_per_s, burst, max_inflight (omitted: server default)."""
        body = {"name": name, "scopes": list(scopes), **options}
        return self.request("POST", "/v1/keys", json_body=body)  # type: ignore[no-any-return]

    def update_key(self, key_id: int, **options: Any) -> dict[str, Any]:
        """Change a key's disclosure or limits; None puts a limit back to the server's setting."""
        return self.request("PATCH", f"/v1/keys/{int(key_id)}", json_body=options)  # type: ignore[no-any-return]

    def rotate_key(self, key_id: int, grace_s: int | None = None) -> dict[str, Any]:
        """A new secret (in "key", once); the old one keeps working for grace_s seconds (server default: a day)."""
        body = {} if grace_s is None else {"grace_s": grace_s}
        return self.request("POST", f"/v1/keys/{int(key_id)}/rotate", json_body=body)  # type: ignore[no-any-return]

    def revoke_key(self, key_id: int) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/keys/{int(key_id)}")  # type: ignore[no-any-return]

    # ----------------------------------------------------------------------------------------------- ops

    def ready(self) -> bool:
        """Whether the service has loaded its index (one try: no retries on the 503 that means 'not yet')."""
        try:
            return self.transport("GET", self.url + "/readyz", {}, None, self.timeout_s).status == 200
        except ApiError:
            return False


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
