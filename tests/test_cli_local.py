"""Every curation sub-command in local mode (against the store: --database-url / the embedded store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import MD5, PDQ, Cli, image_folder, partner_csv
from images import encode, photo

from hashsvc.store import upgrade


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    return Cli({"HASHSVC_DATA_DIR": str(tmp_path / "data")}, ["--database-url", url])


def test_banks(cli: Cli) -> None:
    created = cli.json("bank", "create", "ncmec", "--category", "csam", "--threshold", "pdq=24")
    assert (created["name"], created["thresholds"], created["items"]) == ("ncmec", {"pdq": 24}, 0)
    assert "ncmec" in cli("bank", "list").stdout
    assert [b["name"] for b in cli.json("bank", "list")] == ["ncmec"]
    assert cli.json("bank", "update", "ncmec", "--action", "review", "--disable")["enabled"] is False
    assert "review" in cli("bank", "show", "ncmec").stdout
    error = cli.json("bank", "show", "nope", code=1)
    assert error["error"]["code"] == "not_found"
    assert cli.json("bank", "create", "ncmec", "--category", "csam", code=1)["error"]["code"] == "conflict"
    cli("bank", "create", "x", "--category", "weapons", code=2)
    cli("bank", "update", "ncmec", code=2)  # nothing to change
    cli("bank", "delete", "ncmec", input="n\n", code=1)  # declined
    cli("bank", "delete", "ncmec", "--yes")
    assert cli.json("bank", "list") == []


def test_import_export_round_trip(cli: Cli, tmp_path: Path) -> None:
    cli("bank", "create", "partner", "--category", "csam")
    source = partner_csv(tmp_path / "partner.csv")
    dry = cli.json("import", "--bank", "partner", "--dry-run", str(source), code=1)
    assert (dry["added"], dry["bad"], dry["dry_run"]) == (5, 1, True)
    first = cli("import", "--bank", "partner", str(source), code=1)
    assert "added 5" in first.stdout and "line 6: invalid_hash" in first.stderr
    again = cli.json("import", "--bank", "partner", str(source), code=1)
    assert (again["added"], again["present"]) == (0, 5)
    assert cli.json("import", "--bank", "nope", str(source), code=1)["error"]["code"] == "not_found"
    cli("import", "--bank", "partner", str(tmp_path / "missing.csv"), code=2)
    cli("import", "--bank", "partner", "--format", "hex", str(source), code=1)  # hex needs --algorithm

    exported = tmp_path / "out.csv"
    cli("export", "--bank", "partner", "--format", "csv", "-o", str(exported))
    cli("bank", "create", "copy", "--category", "csam")
    assert cli.json("import", "--bank", "copy", str(exported))["added"] == 5

    def rows(bank: str) -> set[tuple[str, str, str]]:
        out = cli("export", "--bank", bank, "--format", "jsonl").stdout
        return {
            (algorithm, value, line["reference"])
            for line in map(json.loads, out.splitlines())
            for algorithm, value in line["hashes"].items()
        }

    assert rows("copy") == rows("partner") and ("md5", MD5, "P4") in rows("copy")
    hex_out = cli("export", "--bank", "partner", "--format", "hex", "--algorithm", "pdq").stdout
    assert hex_out.split() == PDQ[:4]
    te = cli("export", "--bank", "partner", "--format", "threatexchange").stdout
    assert te.splitlines()[0] == f"pdq {PDQ[0]}"


def test_add_search_disable_enable_delete_match(cli: Cli, tmp_path: Path) -> None:
    cli("bank", "create", "cases", "--category", "csam")
    folder = image_folder(tmp_path / "seized")
    lines = cli.lines("add", "--bank", "cases", "--note", "case 7", "--reference", "c7/{name}", str(folder), code=1)
    assert [(line.get("status"), Path(line.get("file", "")).name) for line in lines[:-1]] == [
        ("added", "a.jpg"),
        ("failed", "notes.txt"),
        ("added", "b.png"),
    ]
    assert lines[-1] == {"summary": {"added": 2, "present": 0, "failed": 1}}
    again = cli("add", "--bank", "cases", str(folder / "a.jpg"), str(folder / "sub"))
    assert "2 already present" in again.stdout
    cli("add", "--bank", "cases", "--reference", "same", str(folder / "a.jpg"), str(folder / "sub"), code=2)
    item_id = lines[0]["item_id"]
    item = cli.json("search", "0" * 64, "--max-distance", "64")  # nothing that far... or near
    assert isinstance(item["matches"], list)

    pdq = next(
        h["value"] for h in cli.json("disable", str(item_id), "--reason", "x")["hashes"] if h["algorithm"] == "pdq"
    )
    cli("enable", str(item_id), "--reason", "re-reviewed")
    near = pdq[:-1] + ("0" if pdq[-1] != "0" else "1")
    found = cli.json("search", near, "--max-distance", "8")["matches"]
    assert [(m["item_id"], m["reference"], m["status"]) for m in found] == [(item_id, "c7/a.jpg", "active")]
    assert "c7/a.jpg" in cli("search", near).stdout

    image = tmp_path / "upload.jpg"
    image.write_bytes(encode(photo(seed=11)))
    [decision] = cli.lines("match", str(image))
    assert decision["decision"] == "block" and decision["matches"][0]["item_id"] == item_id
    disabled = cli.json("disable", str(item_id), "--reason", "false positive: logo")
    assert (disabled["status"], disabled["status_reason"]) == ("disabled", "false positive: logo")
    assert cli.json("search", pdq, "--max-distance", "0")["matches"][0]["status"] == "disabled"  # exact: any status
    assert "allow" in cli("match", str(image)).stdout
    assert cli.lines("match", str(tmp_path / "missing.jpg"), code=1)[0]["error"]["code"] == "unreadable"
    cli("disable", str(item_id), code=2)  # --reason is required
    cli("delete", str(item_id), "--yes")
    assert cli.json("delete", str(item_id), "--yes", code=1)["error"]["code"] == "not_found"
    assert cli.json("search", "abc", code=1)["error"]["code"] == "invalid_hash"


def test_keys_and_reindex(cli: Cli, tmp_path: Path) -> None:
    token = cli("keys", "create", "--name", "pipeline", "--scope", "match").stdout.strip()
    assert token.startswith("hsk_")
    assert [k["name"] for k in cli.lines("keys", "list")] == ["pipeline"]
    assert cli.json("keys", "revoke", "pipeline")["revoked"] is True
    assert "revoked" in cli("keys", "list").stdout
    cli("bank", "create", "b", "--category", "other")
    cli("import", "--bank", "b", "--format", "hex", "--algorithm", "pdq", str(_hex_file(tmp_path)))
    result = cli.json("reindex", "--snapshot-dir", str(tmp_path / "snaps"))
    assert result["sizes"]["pdq"] == 5 and (tmp_path / "snaps" / "pdq.hidx").exists()


def _hex_file(tmp_path: Path) -> Path:
    path = tmp_path / "list.hex"
    path.write_text("\n".join(PDQ) + "\n")
    return path


def test_a_missing_store_says_to_init_and_is_not_created(tmp_path: Path) -> None:
    cli = Cli({}, ["--database-url", f"sqlite:///{tmp_path}/empty.db"])
    result = cli("bank", "list", code=3)
    assert "no store at" in result.stderr and "hashsvc init" in result.stderr
    assert not (tmp_path / "empty.db").exists()
