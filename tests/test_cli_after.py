"""`hashsvc events`, `hashsvc review ...` and `hashsvc quarantine ...` in local mode, on SQLite and PostgreSQL.

Remote mode (--url/--key) is exercised against real servers in test_after_match_replicas.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import Cli
from webhook_receiver import receiving

from hashsvc.config import load_settings
from hashsvc.service.service import Service
from hashsvc.store import Store

MD5 = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    return Cli({"HASHSVC_DATA_DIR": str(tmp_path / "data")}, ["--database-url", store_url])


def matched(store_url: str, tmp_path: Path, *bodies: dict[str, object], **settings: object) -> None:
    """Match hash sets as an upload pipeline would (the service records their events; close() writes them)."""
    service = Service(load_settings({"database_url": store_url, "data_dir": str(tmp_path / "svc"), **settings}, {}))
    try:
        service.live.load()
        for body in bodies:
            service.match_hashes(body)
    finally:
        service.close()


def test_events_and_the_review_queue_from_the_command_line(cli: Cli, store_url: str, tmp_path: Path) -> None:
    cli("bank", "create", "maybe", "--category", "csam", "--action", "review")
    cli("bank", "create", "confirmed", "--category", "csam")
    assert cli.json("bank", "create", "benign", "--category", "other", "--action", "allow")["action"] == "allow"
    with Store(store_url) as store:
        store.add_item("maybe", {"md5": MD5}, actor="test")
        store.add_item("maybe", {"md5": OTHER}, actor="test")
    matched(store_url, tmp_path, {"md5": MD5, "content_id": "post-1"}, {"md5": OTHER, "content_id": "post-2"})

    listing = cli("events").stdout
    assert "post-1" in listing and "review" in listing
    found = cli.json("events", "--content-id", "post-2")
    assert [(e["content_id"], e["decision"]) for e in found] == [("post-2", "review")]
    assert cli.json("events", "--decision", "block") == []

    first, second = cli.json("review", "list")
    assert first["id"] < second["id"] and first["status"] == "open"
    claimed = cli.json("review", "claim", str(first["id"]))
    assert claimed["claimed_by"].startswith("cli:")
    resolved = cli.json(
        "review", "resolve", str(first["id"]), "--resolution", "confirmed", "--add-to-bank", "confirmed",
        "--reason", "checked",
    )
    assert resolved["resolution"] == "confirmed" and resolved["outcome"]["added_item"]["bank"] == "confirmed"
    out = cli("review", "resolve", str(second["id"]), "--resolution", "false_positive", "--disable-item").stdout
    assert "disabled_item" in out
    assert cli.json("review", "list") == []
    assert len(cli.json("review", "list", "--status", "resolved")) == 2
    error = cli.json("review", "resolve", str(first["id"]), "--resolution", "dismissed", code=1)
    assert error["error"]["code"] == "conflict"
    cli("review", "resolve", "1", "--resolution", "maybe", code=2)


def test_quarantines_from_the_command_line(cli: Cli, store_url: str, tmp_path: Path) -> None:
    cli("bank", "create", "known", "--category", "csam")
    with Store(store_url) as store:
        item = store.add_item("known", {"md5": MD5}, actor="test")
    uploads = [{"md5": MD5, "content_id": f"c{n}"} for n in range(3)]
    matched(store_url, tmp_path, *uploads, flood_max_contents=2)
    (held,) = cli.json("quarantine", "list")
    assert (held["item_id"], held["status"]) == (item.id, "active")
    assert "quarantine" in cli("events", "--type", "quarantine").stdout
    done = cli.json("quarantine", "release", str(item.id), "--action", "rearm", "--reason", "checked")
    assert done["status"] == "rearmed"
    assert cli.json("quarantine", "list") == []
    assert cli.json("quarantine", "release", str(item.id), "--action", "rearm", code=1)["error"]["code"] == "conflict"


def test_webhooks_from_the_command_line(store_url: str, tmp_path: Path) -> None:
    env = {"HASHSVC_DATA_DIR": str(tmp_path / "data"), "HASHSVC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    cli = Cli(env, ["--database-url", store_url])
    cli("bank", "create", "known", "--category", "csam")
    with receiving() as receiver:
        out = cli("webhook", "add", receiver.url, "--event", "block", "--event", "review").stdout
        assert out.startswith("created webhook 1") and "signing secret (shown once): whsec_" in out
        receiver.secret = out.rsplit(": ", 1)[1].strip()
        banked = cli.json("webhook", "add", receiver.url, "--event", "retrohunt_hit", "--bank", "known")
        assert banked["banks"] == ["known"] and banked["secret"] != receiver.secret
        listed = cli.json("webhook", "list")
        assert [(h["id"], h["event_types"], h["banks"]) for h in listed] == [
            (1, ["block", "review"], None),
            (2, ["retrohunt_hit"], ["known"]),
        ]
        assert all("secret" not in h for h in listed)
        assert "whsec_" not in cli("webhook", "list").stdout

        tested = cli.json("webhook", "test", "1")
        assert tested["delivered"] and tested["status"] == 204
        assert receiver.bad_signatures == 0 and [r["event"] for r in receiver.requests] == ["test"]
        receiver.fail_next = 1
        assert "NOT delivered (HTTP 500" in cli("webhook", "test", "1", code=1).stdout

        assert cli.json("webhook", "remove", "2") == {"id": 2, "removed": True}
        assert [h["id"] for h in cli.json("webhook", "list")] == [1]
        assert cli.json("webhook", "test", "2", code=1)["error"]["code"] == "not_found"
    cli("webhook", "add", "http://10.1.2.3/hook", "--event", "block", code=1)  # not an allowed network
    cli("webhook", "add", "https://example.org/", "--event", "nope", code=2)
