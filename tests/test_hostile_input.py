"""Hostile clients: every odd JSON input gets a 4xx in the one error shape, never a 500 or a traceback.

Covers deep nesting and malformed numbers (one JSON reader for bodies, bulk lines and import lines), text the
store back ends cannot hold alike (NUL, lone surrogates; checked in the store's validation, on SQLite and
PostgreSQL), values of the wrong type in every field of every JSON endpoint, PDQ quality, and bank thresholds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Api
from cli_helpers import Cli

from hashsvc.errors import ValidationError
from hashsvc.json_input import MAX_JSON_DEPTH
from hashsvc.store import Store, upgrade
from hashsvc.store.validation import MAX_THRESHOLDS

PDQ = "ab" * 32
MD5 = "0" * 32


def deep(levels: int) -> str:
    """A JSON array nested `levels` deep, as text (json.dumps itself would recurse too far to build it)."""
    return "[" * levels + "]" * levels


def nested_object(levels: int) -> dict[str, Any]:
    """{"a": {"a": ... {}}}: an object `levels` deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def new_item(**fields: Any) -> dict[str, Any]:
    return {"hashes": {"md5": "e" * 32}, **fields}


def new_bank(**fields: Any) -> dict[str, Any]:
    return {"name": "n", "category": "csam", **fields}


def send(api: Api, method: str, path: str, body: str, scope: str, content_type: str = "application/json") -> Any:
    return api.client.open(path, method=method, data=body, headers=api.headers(scope), content_type=content_type)


def assert_error(response: Any, status: int, code: str, *words: str) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.is_json, text
    error = response.json["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == code, text
    for word in words:
        assert word in error["message"], text


def add_bank(api: Api, name: str = "hostile") -> None:
    assert api.post_json("/v1/banks", {"name": name, "category": "csam"}).status_code == 201


def add_item(api: Api, bank: str = "hostile", **fields: Any) -> int:
    response = api.post_json(f"/v1/banks/{bank}/items", {"hashes": {"md5": MD5}, **fields})
    assert response.status_code == 201, response.json
    return int(response.json["id"])


# Every endpoint that reads a JSON body: (method, path, scope). The setup fixture creates bank "hostile" and
# item 1 so that each path exists and only the body can be at fault.
JSON_ENDPOINTS = [
    ("POST", "/v1/match/hashes", "match"),
    ("POST", "/v1/banks", "curate"),
    ("PATCH", "/v1/banks/hostile", "curate"),
    ("POST", "/v1/banks/hostile/items", "curate"),
    ("PATCH", "/v1/items/1", "curate"),
    ("POST", "/v1/keys", "admin"),
    ("PATCH", "/v1/keys/1", "admin"),
]


@pytest.fixture
def ready(api: Api) -> Api:
    add_bank(api)
    assert add_item(api) == 1
    api.sync()
    return api


# ----------------------------------------------------------------------------------- nesting, bad JSON


@pytest.mark.parametrize(("method", "path", "scope"), JSON_ENDPOINTS)
def test_a_body_nested_1000_deep_is_400_on_every_json_endpoint(ready: Api, method: str, path: str, scope: str) -> None:
    for body in (deep(1000), '{"match": ' + deep(1000) + "}", '{"a": ' * 100_000):
        assert_error(send(ready, method, path, body, scope), 400, "invalid_request", "nested", str(MAX_JSON_DEPTH))


@pytest.mark.parametrize(("method", "path", "scope"), JSON_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"a": NaN}', "NaN"),
        ('{"a": -Infinity}', "Infinity"),
        ('{"a": 1e400}', "out of range"),
        ('{"a": ' + "9" * 5000 + "}", "digits"),
        (b'{"a": "\xff\xfe"}', "UTF-8"),
    ],
)
def test_invalid_json_is_400_on_every_json_endpoint(
    ready: Api, method: str, path: str, scope: str, body: str | bytes, reason: str
) -> None:
    assert_error(send(ready, method, path, body, scope), 400, "invalid_request", reason)  # type: ignore[arg-type]


def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_is_not(ready: Api) -> None:
    # The body is one level, "metadata" the next: metadata itself may be MAX_JSON_DEPTH - 1 deep.
    at_limit = {"hashes": {"md5": "1" * 32}, "metadata": nested_object(MAX_JSON_DEPTH - 1)}
    assert ready.post_json("/v1/banks/hostile/items", at_limit).status_code == 201
    beyond = {"hashes": {"md5": "2" * 32}, "metadata": nested_object(MAX_JSON_DEPTH)}
    assert_error(ready.post_json("/v1/banks/hostile/items", beyond), 400, "invalid_request", "nested")


def test_bulk_lines_report_deep_and_malformed_json_by_line_number(ready: Api) -> None:
    lines = [
        json.dumps({"hashes": {"md5": "3" * 32}}),
        deep(1000),
        '{"hashes": {"md5": "' + "4" * 32 + '"}, "metadata": {"x": NaN}}',
        json.dumps({"hashes": {"md5": "5" * 32}, "metadata": nested_object(MAX_JSON_DEPTH)}),
        json.dumps({"hashes": {"md5": "6" * 32}}),
    ]
    response = send(ready, "POST", "/v1/banks/hostile/items:bulk", "\n".join(lines), "curate", "application/x-ndjson")
    assert response.status_code == 200
    assert [a["line"] for a in response.json["accepted"]] == [1, 5]
    assert [(r["line"], r["code"]) for r in response.json["rejected"]] == [
        (2, "invalid_json"),
        (3, "invalid_json"),
        (4, "invalid_json"),
    ]
    assert "nested" in response.json["rejected"][0]["message"]


def test_import_lines_report_deep_json_by_line_number(ready: Api) -> None:
    lines = [json.dumps({"hashes": {"md5": "7" * 32}}), deep(5000), "[" * 40 + "]" * 40]
    response = send(ready, "POST", "/v1/banks/hostile/items:import", "\n".join(lines), "curate", "application/x-ndjson")
    assert response.status_code == 200
    summary = response.json
    assert (summary["added"], summary["bad"]) == (1, 2)
    assert [(b["line"], b["code"]) for b in summary["bad_lines"]] == [(2, "invalid_json"), (3, "invalid_json")]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    return Cli({"HASHSVC_DATA_DIR": str(tmp_path / "data")}, ["--database-url", url])


def test_cli_import_reports_bad_lines_with_numbers_and_no_traceback(cli: Cli, tmp_path: Path) -> None:
    cli("bank", "create", "partner", "--category", "csam")
    lines = [
        json.dumps({"hashes": {"md5": "8" * 32}, "reference": "ok"}),
        deep(3000),
        json.dumps({"hashes": {"md5": "9" * 32}, "note": "nul \u0000 inside"}),
        json.dumps({"hashes": {"md5": "a" * 32}, "reference": "lone \ud800"}),
        json.dumps({"hashes": {"md5": "b" * 32}, "metadata": {"k\ud800": 1}}),
    ]
    path = tmp_path / "partner.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("import", "--bank", "partner", "--format", "jsonl", str(path), code=1)
    assert "Traceback" not in result.output
    assert "line 2: invalid_json:" in result.stderr
    assert "line 3: invalid_request: note must not contain NUL" in result.stderr
    assert "line 4: invalid_request: reference must be valid Unicode" in result.stderr
    assert "line 5: invalid_request: metadata key" in result.stderr
    assert "added 1," in result.stdout


def test_csv_metadata_cells_are_read_with_the_same_limits(cli: Cli, tmp_path: Path) -> None:
    cli("bank", "create", "partner", "--category", "csam")
    path = tmp_path / "partner.csv"
    rows = ["algorithm,hash,reference,metadata", f"md5,{'c' * 32},a,", f'md5,{"d" * 32},b,"{deep(2000)}"']
    path.write_text("\n".join(rows) + "\n")
    result = cli("import", "--bank", "partner", "--format", "csv", str(path), code=1)
    assert "line 3: invalid_request: the 'metadata' column is nested" in result.stderr
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------ NUL and lone surrogates, both stores


@pytest.fixture
def backend_api(make_api: Callable[..., Api], store_url: str) -> Api:
    """An API over the back end under test (SQLite or PostgreSQL), with bank "hostile" and item 1."""
    api = make_api(database_url=store_url)
    add_bank(api)
    add_item(api)
    return api


BAD_TEXT = [
    pytest.param("lone \ud800 surrogate", "lone surrogate", id="surrogate"),
    pytest.param("a\x00b", "NUL", id="nul"),
]

# (field named in the message, method, path, scope, body builder)
TEXT_FIELDS: list[tuple[str, str, str, str, Callable[[str], Any]]] = [
    ("note", "POST", "/v1/banks/hostile/items", "curate", lambda s: new_item(note=s)),
    ("reference", "POST", "/v1/banks/hostile/items", "curate", lambda s: new_item(reference=s)),
    ("source", "POST", "/v1/banks/hostile/items", "curate", lambda s: new_item(source=s)),
    ("metadata key", "POST", "/v1/banks/hostile/items", "curate", lambda s: new_item(metadata={s: 1})),
    ("metadata['k'][0]", "POST", "/v1/banks/hostile/items", "curate", lambda s: new_item(metadata={"k": [s]})),
    ("description", "POST", "/v1/banks", "curate", lambda s: {"name": "other", "category": "csam", "description": s}),
    ("description", "PATCH", "/v1/banks/hostile", "curate", lambda s: {"description": s}),
    ("bank name", "POST", "/v1/banks", "curate", lambda s: {"name": s, "category": "csam"}),
    ("note", "PATCH", "/v1/items/1", "curate", lambda s: {"note": s}),
    ("source", "PATCH", "/v1/items/1", "curate", lambda s: {"source": s}),
    ("metadata", "PATCH", "/v1/items/1", "curate", lambda s: {"metadata": {"k": s}}),
    ("reason", "PATCH", "/v1/items/1", "curate", lambda s: {"status": "disabled", "reason": s}),
    ("key name", "POST", "/v1/keys", "admin", lambda s: {"name": s, "scopes": ["match"]}),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_TEXT)
@pytest.mark.parametrize(("field", "method", "path", "scope", "body"), TEXT_FIELDS)
def test_nul_and_lone_surrogates_are_400_naming_the_field_on_both_stores(
    backend_api: Api,
    field: str,
    method: str,
    path: str,
    scope: str,
    body: Callable[[str], Any],
    bad: str,
    reason: str,
) -> None:
    text = json.dumps(body(bad))  # ensure_ascii: the surrogate travels as the JSON escape "\ud800"
    response = send(backend_api, method, path, text, scope)
    # bank and key names are slugs, and the message says so rather than what else is wrong
    assert_error(response, 400, "invalid_request", field, "slug" if field.endswith("name") else reason)
    # and nothing was half-written: the item is unchanged and no bank appeared
    item = backend_api.client.get("/v1/items/1", headers=backend_api.headers("curate")).json
    assert (item["note"], item["source"], item["metadata"], item["status"]) == (None, None, {}, "active")
    banks = backend_api.client.get("/v1/banks", headers=backend_api.headers("curate")).json["banks"]
    assert [b["name"] for b in banks] == ["hostile"]


@pytest.mark.parametrize("path", ["/v1/banks/a%00b", "/v1/banks/a%00b/items", "/v1/banks/%ED%A0%80"])
def test_a_bank_name_in_the_path_that_no_store_could_hold_is_not_a_500(backend_api: Api, path: str) -> None:
    response = backend_api.client.get(path, headers=backend_api.headers("curate"))
    assert response.status_code in (400, 404), response.get_data(as_text=True)
    assert response.json["error"]["code"] in ("invalid_request", "not_found")


def test_bulk_lines_with_nul_or_surrogates_are_rejected_per_line_on_both_stores(backend_api: Api) -> None:
    lines = [
        json.dumps({"hashes": {"md5": "f" * 32}, "note": "fine"}),
        json.dumps({"hashes": {"md5": "1" * 32}, "note": "a\x00b"}),
        json.dumps({"hashes": {"md5": "2" * 32}, "reference": "\udfff"}),
        json.dumps({"hashes": {"md5": "3" * 32}, "metadata": {"k": "\ud800"}}),
    ]
    response = send(backend_api, "POST", "/v1/banks/hostile/items:bulk", "\n".join(lines), "curate", "text/plain")
    assert response.status_code == 200
    assert [a["line"] for a in response.json["accepted"]] == [1]
    assert [(r["line"], r["code"]) for r in response.json["rejected"]] == [
        (2, "invalid_request"),
        (3, "invalid_request"),
        (4, "invalid_request"),
    ]


def test_the_store_itself_rejects_what_it_cannot_hold_alike(store: Store) -> None:
    """The store's own validation, so that the CLI and Python callers get the same answer as the API."""
    store.create_bank("plain", category="csam", actor="t")
    for bad in ("\x00", "x\ud800"):
        with pytest.raises(ValidationError, match="note"):
            store.add_item("plain", {"md5": MD5}, actor="t", note=bad)
        with pytest.raises(ValidationError, match="description"):
            store.update_bank("plain", actor="t", description=bad)
        with pytest.raises(ValidationError, match="bank name"):
            store.get_bank(bad)
        with pytest.raises(ValidationError, match="reference"):
            store.find_item("plain", bad)
        with pytest.raises(ValidationError, match="key name"):
            store.revoke_api_key(bad, actor="t")
    with pytest.raises(ValidationError, match="nested"):
        store.add_item("plain", {"md5": MD5}, actor="t", metadata=nested_object(MAX_JSON_DEPTH + 1))
    assert store.count_items("plain") == 0


# ------------------------------------------------------------------------------------------- wrong types

WRONG = {
    "number": 7,
    "float": 1.5,
    "bool": True,
    "string": "x",
    "list": ["x"],
    "object": {"a": 1},
    "null": None,
    "huge int": 2**70,
    "huge negative": -(10**30),
}
# Per field, the kinds of WRONG it takes; "null" listed means null is accepted as "absent".
STRING = ("string",)
OPTIONAL_STRING = ("string", "null")


def _case(endpoint: str, field: str, accepts: tuple[str, ...], make: Callable[[Any], Any]) -> list[Any]:
    """One case per value in WRONG whose kind `field` does not take. Huge integers are always wrong: every
    numeric field has a range."""
    return [
        pytest.param(endpoint, make(value), id=f"{endpoint} {field}={kind}")
        for kind, value in WRONG.items()
        if kind not in accepts
    ]


WRONG_TYPE_CASES = [
    # POST /v1/match/hashes
    *_case("match", "body", ("object",), lambda v: v),
    *_case("match", "pdq", (*STRING, "object"), lambda v: {"pdq": v}),
    *_case("match", "md5", STRING, lambda v: {"md5": v}),
    *_case("match", "pdq.value", STRING, lambda v: {"pdq": {"value": v}}),
    *_case("match", "pdq.quality", ("number", "null"), lambda v: {"pdq": {"value": PDQ, "quality": v}}),
    *_case("match", "items", ("list",), lambda v: {"items": v}),
    *_case("match", "items[0]", ("object",), lambda v: {"items": [v]}),
    # POST /v1/banks
    *_case("create bank", "body", ("object",), lambda v: v),
    *_case("create bank", "name", STRING, lambda v: {"name": v, "category": "csam"}),
    *_case("create bank", "category", (), lambda v: {"name": "n", "category": v}),
    *_case("create bank", "action", (), lambda v: new_bank(action=v)),
    *_case("create bank", "description", OPTIONAL_STRING, lambda v: new_bank(description=v)),
    *_case("create bank", "enabled", ("bool",), lambda v: new_bank(enabled=v)),
    *_case("create bank", "thresholds", ("object", "null"), lambda v: new_bank(thresholds=v)),
    *_case("create bank", "thresholds.pdq", ("number",), lambda v: new_bank(thresholds={"pdq": v})),
    # PATCH /v1/banks/<name>
    *_case("update bank", "body", ("object",), lambda v: v),
    *_case("update bank", "category", (), lambda v: {"category": v}),
    *_case("update bank", "action", (), lambda v: {"action": v}),
    *_case("update bank", "description", OPTIONAL_STRING, lambda v: {"description": v}),
    *_case("update bank", "enabled", ("bool",), lambda v: {"enabled": v}),
    *_case("update bank", "thresholds", ("object", "null"), lambda v: {"thresholds": v}),
    *_case("update bank", "thresholds.phash", ("number",), lambda v: {"thresholds": {"phash": v}}),
    # POST /v1/banks/<name>/items
    *_case("add item", "body", ("object",), lambda v: v),
    *_case("add item", "hashes", ("object",), lambda v: {"hashes": v}),
    *_case("add item", "hashes.md5", (*STRING, "list"), lambda v: {"hashes": {"md5": v}}),
    *_case("add item", "hashes.md5[0]", STRING, lambda v: {"hashes": {"md5": [v]}}),
    *_case("add item", "reference", OPTIONAL_STRING, lambda v: {"hashes": {"md5": MD5}, "reference": v}),
    *_case("add item", "source", OPTIONAL_STRING, lambda v: {"hashes": {"md5": MD5}, "source": v}),
    *_case("add item", "note", OPTIONAL_STRING, lambda v: {"hashes": {"md5": MD5}, "note": v}),
    *_case("add item", "metadata", ("object", "null"), lambda v: {"hashes": {"md5": MD5}, "metadata": v}),
    # PATCH /v1/items/<id>
    *_case("update item", "body", ("object",), lambda v: v),
    *_case("update item", "status", (), lambda v: {"status": v}),
    *_case("update item", "reason", STRING, lambda v: {"status": "disabled", "reason": v}),
    *_case("update item", "note", OPTIONAL_STRING, lambda v: {"note": v}),
    *_case("update item", "source", OPTIONAL_STRING, lambda v: {"source": v}),
    *_case("update item", "metadata", ("object", "null"), lambda v: {"metadata": v}),
    # POST /v1/keys
    *_case("create key", "body", ("object",), lambda v: v),
    *_case("create key", "name", STRING, lambda v: {"name": v, "scopes": ["match"]}),
    *_case("create key", "scopes", (), lambda v: {"name": "k", "scopes": v}),
    *_case("create key", "scopes[0]", (), lambda v: {"name": "k", "scopes": [v]}),
    *_case("create key", "disclosure", (), lambda v: {"name": "k", "scopes": ["match"], "disclosure": v}),
    *_case(
        "create key",
        "rate_per_s",
        ("number", "float", "null"),
        lambda v: {"name": "k", "scopes": ["match"], "rate_per_s": v},
    ),
    *_case("create key", "burst", ("number", "null"), lambda v: {"name": "k", "scopes": ["match"], "burst": v}),
    # PATCH /v1/keys/<id>
    *_case("update key", "body", ("object",), lambda v: v),
    *_case("update key", "disclosure", (), lambda v: {"disclosure": v}),
    *_case("update key", "max_inflight", ("number", "null"), lambda v: {"max_inflight": v}),
]
ENDPOINT_OF = {
    "match": ("POST", "/v1/match/hashes", "match"),
    "create bank": ("POST", "/v1/banks", "curate"),
    "update bank": ("PATCH", "/v1/banks/hostile", "curate"),
    "add item": ("POST", "/v1/banks/hostile/items", "curate"),
    "update item": ("PATCH", "/v1/items/1", "curate"),
    "create key": ("POST", "/v1/keys", "admin"),
    "update key": ("PATCH", "/v1/keys/1", "admin"),
}


@pytest.mark.parametrize(("endpoint", "body"), WRONG_TYPE_CASES)
def test_a_value_of_the_wrong_type_in_any_field_is_400(ready: Api, endpoint: str, body: Any) -> None:
    method, path, scope = ENDPOINT_OF[endpoint]
    response = send(ready, method, path, json.dumps(body), scope)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["code"] in ("invalid_request", "invalid_hash")


LINE_FIELDS = [
    ("hashes", ("object",), lambda v: {"hashes": v}),
    ("hashes.md5", (*STRING, "list"), lambda v: {"hashes": {"md5": v}}),
    ("hashes.md5[0]", STRING, lambda v: {"hashes": {"md5": [v]}}),
    ("reference", OPTIONAL_STRING, lambda v: {"hashes": {"md5": MD5}, "reference": v}),
    ("source", OPTIONAL_STRING, lambda v: {"hashes": {"md5": MD5}, "source": v}),
    ("note", OPTIONAL_STRING, lambda v: {"hashes": {"md5": MD5}, "note": v}),
    ("metadata", ("object", "null"), lambda v: {"hashes": {"md5": MD5}, "metadata": v}),
    ("line", ("object",), lambda v: v),
]


@pytest.mark.parametrize("route", ["items:bulk", "items:import"])
def test_wrong_types_in_json_lines_are_rejected_line_by_line(ready: Api, route: str) -> None:
    lines, expected = [], []
    for _field, accepts, make in LINE_FIELDS:  # every line holds one wrong value, so every line is rejected
        for kind, value in WRONG.items():
            if kind in accepts:
                continue
            lines.append(json.dumps(make(value)))
            expected.append(len(lines))
    response = send(ready, "POST", f"/v1/banks/hostile/{route}", "\n".join(lines), "curate", "application/x-ndjson")
    assert response.status_code == 200, response.get_data(as_text=True)
    rejected = response.json["rejected"] if route == "items:bulk" else response.json["bad_lines"]
    assert [r["line"] for r in rejected] == expected
    assert {r["code"] for r in rejected} <= {"invalid_request", "invalid_hash", "invalid_json"}


# -------------------------------------------------------------------------------------------- PDQ quality


@pytest.mark.parametrize("quality", [-5, -1, 101, 1000, 2**70, True, False, 87.0, "87", [87]])
def test_pdq_quality_outside_0_to_100_or_not_an_integer_is_400(ready: Api, quality: Any) -> None:
    single = {"pdq": {"value": PDQ, "quality": quality}}
    assert_error(ready.post_json("/v1/match/hashes", single, "match"), 400, "invalid_request", "body.pdq.quality")
    batch = {"items": [{"md5": MD5}, single]}
    assert_error(ready.post_json("/v1/match/hashes", batch, "match"), 400, "invalid_request", "items[1].pdq.quality")


def test_pdq_quality_bounds_are_accepted_and_echoed(ready: Api) -> None:
    for quality in (0, 100):
        response = ready.post_json("/v1/match/hashes", {"pdq": {"value": PDQ, "quality": quality}}, "match")
        assert response.status_code == 200
        assert response.json["hashes"]["pdq"] == {"value": PDQ, "quality": quality}


def test_items_take_plain_hex_so_a_pdq_object_with_a_quality_is_refused(ready: Api) -> None:
    """Items store hashes, not qualities: the {value, quality} form is for queries only, in every item path."""
    item = {"hashes": {"pdq": {"value": PDQ, "quality": 1000}}}
    assert_error(ready.post_json("/v1/banks/hostile/items", item), 400, "invalid_hash", "pdq")
    for route, key in (("items:bulk", "rejected"), ("items:import", "bad_lines")):
        response = send(ready, "POST", f"/v1/banks/hostile/{route}", json.dumps(item), "curate", "text/plain")
        assert [(r["line"], r["code"]) for r in response.json[key]] == [(1, "invalid_hash")]


# --------------------------------------------------------------------------------------- bank thresholds


@pytest.mark.parametrize(("algorithm", "bound"), [("pdq", 63), ("phash", 16), ("dhash", 16), ("md5", 0), ("sha256", 0)])
def test_bank_thresholds_are_bounded_per_algorithm_on_create_and_update(ready: Api, algorithm: str, bound: int) -> None:
    assert MAX_THRESHOLDS.get(algorithm, 0) == bound
    created = ready.post_json("/v1/banks", {"name": "t", "category": "csam", "thresholds": {algorithm: bound}})
    assert created.status_code == 201 and created.json["thresholds"] == {algorithm: bound}
    for too_far in (bound + 1, 256, 2**70, -1):
        body = {"name": "u", "category": "csam", "thresholds": {algorithm: too_far}}
        assert_error(ready.post_json("/v1/banks", body), 400, "invalid_request", algorithm, str(bound))
        patch = ready.client.patch(
            "/v1/banks/t", json={"thresholds": {algorithm: too_far}}, headers=ready.headers("curate")
        )
        assert_error(patch, 400, "invalid_request", algorithm, str(bound))
    assert ready.client.get("/v1/banks/t", headers=ready.headers("curate")).json["thresholds"] == {algorithm: bound}


def test_a_pdq_threshold_of_256_no_longer_blocks_every_upload(ready: Api) -> None:
    refused = ready.post_json("/v1/banks", {"name": "t", "category": "csam", "thresholds": {"pdq": 256}})
    assert_error(refused, 400, "invalid_request", "0 to 63")
    assert ready.post_json("/v1/banks", {"name": "t", "category": "csam", "thresholds": {"pdq": 63}}).status_code == 201
    ready.post_json("/v1/banks/t/items", {"hashes": {"pdq": PDQ}})
    ready.sync()
    complement = f"{int(PDQ, 16) ^ (2**256 - 1):064x}"  # 256 bits away
    assert ready.post_json("/v1/match/hashes", {"pdq": complement}, "match").json["decision"] == "allow"


def test_cli_bank_thresholds_are_bounded_too(cli: Cli) -> None:
    error = cli.json("bank", "create", "wide", "--category", "csam", "--threshold", "pdq=256", code=1)["error"]
    assert error["code"] == "invalid_request" and "0 to 63" in error["message"]
    cli("bank", "create", "wide", "--category", "csam", "--threshold", "pdq=63", "--threshold", "phash=16")
    error = cli.json("bank", "update", "wide", "--threshold", "phash=17", code=1)["error"]
    assert "0 to 16" in error["message"]
    error = cli.json("bank", "update", "wide", "--threshold", "md5=1", code=1)["error"]
    assert "only be 0" in error["message"]
