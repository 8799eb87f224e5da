"""hashsvc.client against the real app (Flask's test client behind a transport shim), plus its retry and error
rules against scripted transports. The real-HTTP path is exercised by tests/test_cli_remote.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

import pytest
from api_fixtures import Api
from images import encode, photo

from hashsvc.client import ApiError, Client, Response, Transport

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def flask_transport(api: Api) -> Transport:
    def send(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Response:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = api.client.open(path, method=method, headers=dict(headers), data=body)
        return Response(answer.status_code, dict(answer.headers), answer.get_data())

    return send


def client_for(api: Api, scope: str) -> Client:
    return Client("http://hashsvc.test", api.keys[scope], transport=flask_transport(api))


def test_banks_items_search_and_match(api: Api) -> None:
    curate, match = client_for(api, "curate"), client_for(api, "match")
    assert curate.create_bank("ncmec", "csam", description="industry list")["name"] == "ncmec"
    assert [b["name"] for b in curate.list_banks()] == ["ncmec"]
    item = curate.add_item("ncmec", {"pdq": PDQ}, reference="N-1", note="from the list")
    image_item = curate.add_image("ncmec", encode(photo(seed=3)), reference="N-2", note="seized")
    assert image_item["reference"] == "N-2" and {h["algorithm"] for h in image_item["hashes"]} >= {"pdq", "sha256"}
    api.sync()
    near = PDQ[:-1] + ("3" if PDQ[-1] != "3" else "2")
    found = curate.search(near, max_distance=4)
    assert [(m["item_id"], m["distance"]) for m in found["matches"]] == [(item["id"], 1)]
    assert match.match_hashes({"pdq": near})["decision"] == "block"
    assert match.match_hashes([{"pdq": near}, {"md5": "0" * 32}])["results"][1]["decision"] == "allow"
    assert match.match_image(encode(photo(seed=3)))["matches"][0]["item_id"] == image_item["id"]
    assert curate.disable_item(item["id"], "false positive")["status"] == "disabled"
    api.sync()
    assert match.match_hashes({"pdq": near})["decision"] == "allow"
    assert curate.enable_item(item["id"])["status"] == "active"
    assert [i["id"] for i in curate.iter_items("ncmec")] == [item["id"], image_item["id"]]
    curate.delete_item(item["id"])
    with pytest.raises(ApiError) as missing:
        curate.get_item(item["id"])
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert curate.update_bank("ncmec", action="review")["action"] == "review"
    curate.delete_bank("ncmec")
    assert curate.list_banks() == []


def test_import_lines_is_idempotent_and_reports_bad_lines(api: Api) -> None:
    curate = client_for(api, "curate")
    curate.create_bank("gifct", "terror")
    lines = [json.dumps({"hashes": {"pdq": PDQ}, "reference": "G1"}), '{"hashes": {"pdq": "zz"}}']
    assert curate.import_lines("gifct", lines, dry_run=True)["added"] == 1
    first = curate.import_lines("gifct", lines)
    assert (first["added"], first["bad"], first["bad_lines"][0]["line"]) == (1, 1, 2)
    assert curate.import_lines("gifct", lines)["present"] == 1
    with pytest.raises(ApiError) as unknown:
        curate.import_lines("nope", lines)
    assert unknown.value.code == "not_found"


def test_errors_carry_the_servers_code_and_message(api: Api) -> None:
    with pytest.raises(ApiError) as wrong_key:
        Client("http://hashsvc.test", "hsk_wrong", transport=flask_transport(api)).list_banks()
    assert (wrong_key.value.status, wrong_key.value.code) == (401, "unauthorized")
    with pytest.raises(ApiError) as wrong_scope:
        client_for(api, "match").list_banks()
    assert (wrong_scope.value.status, wrong_scope.value.code) == (403, "forbidden")
    with pytest.raises(ApiError) as bad_hash:
        client_for(api, "curate").search("abc")
    assert bad_hash.value.code == "invalid_hash" and "64 hex digits" in bad_hash.value.message


def test_keys(api: Api) -> None:
    admin = client_for(api, "admin")
    created = admin.create_key("pipeline", ["match"])
    assert created["key"].startswith("hsk_")
    assert admin.revoke_key(created["id"])["revoked"] is True
    assert {k["name"] for k in admin.list_keys()} >= {"pipeline", "admin-key"}


class Scripted:
    """A transport that answers from a script and records the calls."""

    def __init__(self, *answers: Response) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float):
        self.calls.append((method, url))
        return self.answers.pop(0)


BUSY = Response(503, {"Retry-After": "0"}, b'{"error": {"code": "overloaded", "message": "at capacity"}}')
OK = Response(200, {}, b'{"banks": []}')


def test_503_is_retried_after_retry_after_then_succeeds() -> None:
    transport = Scripted(BUSY, BUSY, OK)
    assert Client("http://x", "k", transport=transport).list_banks() == []
    assert len(transport.calls) == 3


def test_retries_are_bounded_and_the_last_error_surfaces() -> None:
    transport = Scripted(BUSY, BUSY, BUSY)
    with pytest.raises(ApiError) as busy:
        Client("http://x", "k", retries=2, transport=transport).list_banks()
    assert (busy.value.status, busy.value.code, len(transport.calls)) == (503, "overloaded", 3)


def test_a_non_json_error_body_still_raises_api_error() -> None:
    transport = Scripted(Response(502, {}, b"<html>bad gateway</html>"))
    with pytest.raises(ApiError) as gateway:
        Client("http://x", transport=transport).list_banks()
    assert (gateway.value.status, gateway.value.code) == (502, "http_error")


def test_unreachable_service_and_timeouts() -> None:
    with pytest.raises(ApiError) as down:
        Client("http://127.0.0.1:9", timeout_s=2).list_banks()  # port 9 (discard) is closed here
    assert (down.value.status, down.value.code) == (0, "unreachable")
    with pytest.raises(ValueError):
        Client("127.0.0.1:8080")
