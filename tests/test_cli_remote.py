"""Every sub-command in remote mode (--url/--key through hashsvc.client) against a real `hashsvc serve`.

One server for the module (starting one costs seconds); each test uses its own banks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import MD5, PDQ, Cli, image_folder, partner_csv
from images import encode, photo
from live_server import LiveServer

from hashsvc.store import Store, upgrade


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("remote")
    url = f"sqlite:///{folder}/store.db"
    upgrade(url)
    with Store(url) as store:
        keys = {scope: store.create_api_key(f"{scope}-key", [scope], actor="test")[1] for scope in ("curate", "admin")}
    with LiveServer(url, folder / "data", snapshot_interval_s=0) as live:
        yield live, keys


def remote(server: tuple[LiveServer, dict[str, str]], scope: str = "curate") -> Cli:
    live, keys = server
    return Cli({"HASHSVC_URL": live.url, "HASHSVC_KEY": keys[scope]}, [])


def wait_until_searchable(cli: Cli, value: str, algorithm: str = "pdq") -> list[dict[str, object]]:
    """Wait until the server's search finds a hash (exact holders come from the store at once)."""
    deadline = time.monotonic() + 10
    while True:
        matches = cli.json("search", value, "--algorithm", algorithm, "--max-distance", "0")["matches"]
        if matches or time.monotonic() > deadline:
            return matches
        time.sleep(0.1)


def wait_for_decision(matcher: Cli, image: Path, decision: str) -> dict[str, object]:
    """Changes reach the server's index through its change-log tail (every 0.1 s, slower on a busy machine)."""
    deadline = time.monotonic() + 15
    while True:
        [result] = matcher.lines("match", str(image))
        if result["decision"] == decision:
            return result
        assert time.monotonic() < deadline, f"still {result['decision']}, expected {decision}"
        time.sleep(0.1)


def test_banks_remote(server: tuple[LiveServer, dict[str, str]]) -> None:
    cli = remote(server)
    assert cli.json("bank", "create", "r-banks", "--category", "terror")["category"] == "terror"
    assert "r-banks" in [b["name"] for b in cli.json("bank", "list")]
    assert cli.json("bank", "update", "r-banks", "--action", "review")["action"] == "review"
    assert "review" in cli("bank", "show", "r-banks").stdout
    assert cli.json("bank", "show", "nope", code=1)["error"]["code"] == "not_found"
    cli("bank", "delete", "r-banks", "--yes")
    assert "r-banks" not in [b["name"] for b in cli.json("bank", "list")]


def test_wrong_key_and_flags(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    wrong = Cli({}, ["--url", live.url, "--key", "hsk_not-a-key"])
    assert wrong.json("bank", "list", code=1)["error"]["code"] == "unauthorized"
    assert remote(server).json("keys", "list", code=1)["error"]["code"] == "forbidden"  # a curate key
    Cli({}, ["--url", live.url])("bank", "list", code=2)  # no key
    Cli({}, ["--url", live.url, "--key", "k", "--database-url", "sqlite://"])("bank", "list", code=2)
    down = Cli({}, ["--url", "http://127.0.0.1:9", "--key", "k"])
    assert down.json("bank", "list", code=1)["error"]["code"] == "unreachable"
    assert remote(server).json("reindex", code=1)["error"]["code"] == "invalid_request"  # local only


def test_import_export_round_trip_remote(server: tuple[LiveServer, dict[str, str]], tmp_path: Path) -> None:
    cli = remote(server)
    cli("bank", "create", "r-partner", "--category", "csam")
    source = partner_csv(tmp_path / "partner.csv")
    dry = cli.json("import", "--bank", "r-partner", "--dry-run", str(source), code=1)
    assert (dry["added"], dry["bad"], dry["bad_lines"][0]["line"]) == (5, 1, 6)
    first = cli.json("import", "--bank", "r-partner", str(source), code=1)
    assert (first["added"], first["bad"]) == (5, 1)
    assert cli.json("import", "--bank", "r-partner", str(source), code=1)["present"] == 5
    assert cli.json("import", "--bank", "r-missing", str(source), code=1)["error"]["code"] == "not_found"
    exported = tmp_path / "out.jsonl"
    cli("export", "--bank", "r-partner", "--format", "jsonl", "-o", str(exported))
    cli("bank", "create", "r-copy", "--category", "csam")
    assert cli.json("import", "--bank", "r-copy", str(exported))["added"] == 5

    def rows(bank: str) -> set[tuple[str, str, str]]:
        out = cli("export", "--bank", bank, "--format", "csv").stdout.splitlines()[1:]
        return {tuple(line.split(",")[:3]) for line in out}  # type: ignore[misc]

    assert rows("r-copy") == rows("r-partner") and ("md5", MD5, "P4") in rows("r-copy")
    assert wait_until_searchable(cli, PDQ[0])[0]["reference"] in ("P0",)


def test_add_search_disable_match_delete_remote(server: tuple[LiveServer, dict[str, str]], tmp_path: Path) -> None:
    cli = remote(server)
    cli("bank", "create", "r-cases", "--category", "csam")
    folder = image_folder(tmp_path / "seized")
    lines = cli.lines("add", "--bank", "r-cases", "--reference", "r7/{stem}", str(folder), code=1)
    assert lines[-1] == {"summary": {"added": 2, "present": 0, "failed": 1}}
    assert next(line for line in lines if line.get("status") == "failed")["error"]["code"] == "unsupported_format"
    item_id = lines[0]["item_id"]
    sha = next(
        h["value"] for h in cli.json("enable", str(item_id), "--reason", "x")["hashes"] if h["algorithm"] == "sha256"
    )
    assert wait_until_searchable(cli, sha, "sha256")[0]["item_id"] == item_id
    assert "2 already present" in cli("add", "--bank", "r-cases", str(folder / "a.jpg"), str(folder / "sub")).stdout

    image = tmp_path / "upload.jpg"
    image.write_bytes(encode(photo(seed=11)))
    match_key = _match_key(server)
    matcher = Cli({"HASHSVC_URL": server[0].url, "HASHSVC_KEY": match_key}, [])
    result = wait_for_decision(matcher, image, "block")
    assert result["matches"][0]["reference"] == "r7/a"
    cli("disable", str(item_id), "--reason", "false positive: logo")
    wait_for_decision(matcher, image, "allow")
    assert cli.json("search", sha, "--algorithm", "sha256", "--max-distance", "0")["matches"][0]["status"] == "disabled"
    cli("delete", str(item_id), "--yes")
    assert cli.json("disable", str(item_id), "--reason", "x", code=1)["error"]["code"] == "not_found"


def _match_key(server: tuple[LiveServer, dict[str, str]]) -> str:
    admin = remote(server, "admin")
    return admin.json("keys", "create", "--name", f"m-{time.monotonic_ns()}", "--scope", "match")["key"]


def test_keys_remote(server: tuple[LiveServer, dict[str, str]]) -> None:
    admin = remote(server, "admin")
    token = admin("keys", "create", "--name", "r-pipeline", "--scope", "match").stdout.strip()
    assert token.startswith("hsk_")
    assert "r-pipeline" in [k["name"] for k in admin.lines("keys", "list")]
    assert admin.json("keys", "revoke", "r-pipeline")["revoked"] is True
    assert admin.json("keys", "revoke", "no-such-key", code=1)["error"]["code"] == "not_found"
    revoked = Cli({"HASHSVC_URL": server[0].url, "HASHSVC_KEY": token}, [])
    assert json.loads(revoked("bank", "list", "--json", code=1).stdout)["error"]["code"] == "unauthorized"
