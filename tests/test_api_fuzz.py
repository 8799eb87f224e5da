"""Property-based API fuzzing with schemathesis against our own /openapi.json: no 5xx, and no response that
contradicts the spec (status codes, content types, bodies). A bounded number of examples per operation keeps
it inside the CI budget."""

from __future__ import annotations

import pytest
import schemathesis
from api_fixtures import Api
from hypothesis import HealthCheck, given, settings

from hashsvc.api.openapi import spec

# No 5xx, and every response as the spec says. Not "schema-valid requests are accepted": random bytes are a
# schema-valid upload, and rejecting them (415/422) is exactly right.


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx: object, value: object) -> bytes:
    """Bulk import bodies are JSON lines: one JSON value per line."""
    import json

    rows = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(row) for row in rows).encode()


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def fuzz_api(make_api) -> Api:
    api = make_api()
    token = api.service.store.create_api_key("fuzzer", ["match", "curate", "admin", "metrics"], actor="test")[1]
    api.keys["all"] = token
    api.post_json("/v1/banks", {"name": "some-bank", "category": "csam"})
    api.post_json("/v1/banks/some-bank/items", {"hashes": {"md5": "0" * 32}})
    api.sync()
    return api


def test_the_served_spec_is_the_module_spec(api: Api) -> None:
    assert api.client.get("/openapi.json").json == spec()


def test_every_route_is_documented(api: Api) -> None:
    documented = {
        (path.replace("{", "<").replace("}", ">"), method.upper())
        for path, item in spec()["paths"].items()
        for method in item
        if method != "parameters"
    }
    for rule in api.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("ui."):
            continue  # the console's pages are HTML for browsers, not API (docs/console.md)
        path = rule.rule.replace("<int:", "<")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)


def operations(api: Api) -> list[schemathesis.APIOperation]:
    loaded = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    return [result.ok() for result in loaded.get_all_operations()]


def test_api_never_errors_and_matches_its_spec(fuzz_api: Api) -> None:
    headers = {"Authorization": f"Bearer {fuzz_api.keys['all']}"}
    checked = []
    for operation in operations(fuzz_api):

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            case.call_and_validate(checks=CHECKS)

        conforms()
        checked.append(operation.label)
    documented = {f"{m.upper()} {p}" for p, item in spec()["paths"].items() for m in item if m != "parameters"}
    assert set(checked) == documented - {"GET /openapi.json"}  # schemathesis skips the document it loaded
