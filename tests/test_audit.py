"""The audit log can be read and exported without SQL: GET /v1/audit (admin) and `hashsvc audit`."""

from __future__ import annotations

import csv
import io
import json

import pytest
from api_fixtures import Api
from cli_helpers import Cli

MD5 = "d35c785545392755e7e4164457657269"


def _curate(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "audited", "category": "csam"})
    item = api.post_json("/v1/banks/audited/items", {"hashes": {"md5": MD5}, "reference": "NCMEC-1"}).json
    api.client.patch(
        f"/v1/items/{item['id']}",
        json={"status": "disabled", "reason": "false positive"},
        headers=api.headers("curate"),
    )


def _audit(api: Api, scope: str = "admin", **params: str):
    return api.client.get("/v1/audit", query_string=params, headers=api.headers(scope))


def test_the_audit_log_lists_changes_newest_first_with_who_and_what(api: Api) -> None:
    _curate(api)
    entries = _audit(api).json["entries"]
    assert [e["action"] for e in entries[:3]] == ["item.disable", "item.add", "bank.create"]
    assert {e["actor"] for e in entries[:3]} == {"curate-key"}
    assert entries[0]["details"] == {"reason": "false positive"}


def test_filters_narrow_the_log_and_pages_follow_each_other(api: Api) -> None:
    _curate(api)
    assert [e["action"] for e in _audit(api, action="item.*").json["entries"]] == ["item.disable", "item.add"]
    assert [e["action"] for e in _audit(api, bank="audited", action="bank.create").json["entries"]] == ["bank.create"]
    assert _audit(api, actor="nobody").json == {"entries": [], "next_before": None}
    assert _audit(api, since="2999-01-01").json["entries"] == []
    first = _audit(api, limit="1").json
    second = _audit(api, limit="1", before=str(first["next_before"])).json
    assert first["entries"][0]["id"] > second["entries"][0]["id"]


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "x"}, {"since": "yesterday"}, {"before": "-1"}, {"colour": "red"}, {"item_id": "1e3"}],
)
def test_bad_filters_are_400_not_500(api: Api, params: dict[str, str]) -> None:
    response = _audit(api, **params)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("scope", ["match", "curate"])
def test_only_admin_keys_read_the_audit_log(api: Api, scope: str) -> None:
    assert _audit(api, scope).status_code == 403


def test_the_cli_shows_and_exports_the_same_log_locally(api: Api, tmp_path) -> None:
    _curate(api)
    cli = Cli({}, ["--database-url", api.service.settings.resolved_database_url])
    shown = cli("audit", "--bank", "audited").stdout
    assert "item.disable" in shown and "curate-key" in shown
    page = cli.json("audit", "--action", "item.*")
    assert [e["action"] for e in page["entries"]] == ["item.disable", "item.add"]
    out = tmp_path / "audit.csv"
    cli("audit", "--export", "csv", "--output", str(out), "--bank", "audited")
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["action"] for r in rows] == ["item.disable", "item.add", "bank.create"]
    lines = cli("audit", "--export", "jsonl", "--bank", "audited").stdout.splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["item.disable", "item.add", "bank.create"]


def test_exported_cells_never_start_a_spreadsheet_formula() -> None:
    from hashsvc.service.audit import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell("-2+3") == "'-2+3"
    assert _cell({"reason": "x"}) == '{"reason": "x"}'
    assert _cell(None) == ""
