"""/v1/exchanges and the CLI: scopes, credentials that never come back out, status, and partner provenance in
match answers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from api_fixtures import Api
from click.testing import CliRunner
from cryptography.fernet import Fernet
from exchange_fakes import FakeNcmec

from hashsvc.cli import main

T0 = 1_750_000_000
PDQ = hashlib.sha256(b"feed-1").hexdigest()
MD5 = hashlib.md5(b"feed-1").hexdigest()


def test_admin_configures_curate_reads_and_credentials_never_come_back(make_api: Callable[..., Api]) -> None:
    api = make_api(exchange_key=Fernet.generate_key().decode(), exchange_allowed_networks="127.0.0.0/8")
    assert api.post_json("/v1/banks", {"name": "ncmec", "category": "csam"}).status_code == 201
    body = {
        "name": "ncmec",
        "type": "ncmec",
        "bank": "ncmec",
        "every": "30m",
        "credentials": {"username": "esp", "password": "hunter2-secret"},
    }
    refused = api.post_json("/v1/exchanges", body, scope="curate")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    created = api.post_json("/v1/exchanges", body, scope="admin")
    assert created.status_code == 201, created.json
    for answer in (
        created,
        api.client.get("/v1/exchanges", headers=api.headers("curate")),
        api.client.get("/v1/exchanges/ncmec", headers=api.headers("curate")),
    ):
        assert answer.status_code == 200 or answer.status_code == 201
        assert "hunter2" not in answer.get_data(as_text=True) and "esp" not in answer.get_data(as_text=True)
    shown = api.client.get("/v1/exchanges/ncmec", headers=api.headers("curate")).json
    assert shown["credentials"] == "set" and shown["every_s"] == 1800 and shown["status"]["state"] == "new"
    assert api.client.get("/v1/exchanges", headers=api.headers("match")).status_code == 403
    assert api.post_json("/v1/exchanges/ncmec/pause", {}, scope="curate").status_code == 403
    assert api.post_json("/v1/exchanges/ncmec/pause", {}, scope="admin").json["status"]["state"] == "paused"
    assert api.post_json("/v1/exchanges/ncmec/sync", {}, scope="admin").status_code == 202
    bad = api.post_json("/v1/exchanges", {**body, "name": "x", "bank": "ncmec"}, scope="admin")
    assert bad.status_code == 409 and "one feed per bank" in bad.json["error"]["message"]
    assert api.client.delete("/v1/exchanges/ncmec", headers=api.headers("admin")).status_code == 204
    assert api.client.get("/v1/exchanges/ncmec", headers=api.headers("curate")).status_code == 404


def test_a_feed_at_a_loopback_or_metadata_address_is_refused_with_400(make_api: Callable[..., Api]) -> None:
    api = make_api(exchange_key=Fernet.generate_key().decode())  # HASHSVC_EXCHANGE_ALLOWED_NETWORKS unset
    api.post_json("/v1/banks", {"name": "ncmec", "category": "csam"})
    for base_url in ("http://127.0.0.1:8080", "http://169.254.169.254/"):
        body = {
            "name": "ncmec",
            "type": "ncmec",
            "bank": "ncmec",
            "config": {"base_url": base_url},
            "credentials": {"username": "esp", "password": "secret"},
        }
        refused = api.post_json("/v1/exchanges", body, scope="admin")
        assert refused.status_code == 400 and refused.json["error"]["code"] == "target_refused"
    assert api.client.get("/v1/exchanges", headers=api.headers("curate")).json["exchanges"] == []


def test_a_match_on_a_feed_item_names_the_partner_entry_and_its_labels(make_api: Callable[..., Api]) -> None:
    api = make_api(exchange_key=Fernet.generate_key().decode(), exchange_allowed_networks="127.0.0.0/8")
    api.post_json("/v1/banks", {"name": "ncmec", "category": "csam"})
    with FakeNcmec() as fake:
        fake.add(T0, "img1", md5=MD5, pdq=PDQ, classification="A1")
        api.post_json(
            "/v1/exchanges",
            {
                "name": "ncmec",
                "type": "ncmec",
                "bank": "ncmec",
                "config": {"base_url": fake.url},
                "credentials": {"username": "esp", "password": "secret"},
            },
            scope="admin",
        )
        assert api.service.exchanges.sync("ncmec", "test").ok
    api.sync()
    answer = api.post_json("/v1/match/hashes", {"pdq": PDQ}, scope="match").json
    [match] = answer["matches"]
    assert match["reference"] == "42-img1"
    assert match["partner"] == {"exchange": "ncmec", "entry_id": "42-img1", "labels": ["A1"]}


def test_the_cli_adds_syncs_and_shows_a_feed_without_printing_credentials(tmp_path: Path) -> None:
    key_file = tmp_path / "exchange.key"
    runner = CliRunner()
    key_file.write_text(runner.invoke(main, ["exchange", "new-key"]).output)
    env = {
        "HASHSVC_DATA_DIR": str(tmp_path / "data"),
        "HASHSVC_EXCHANGE_KEY_FILE": str(key_file),
        "HASHSVC_EXCHANGE_ALLOWED_NETWORKS": "127.0.0.0/8",  # the fake NCMEC listens on loopback
    }
    assert runner.invoke(main, ["migrate"], env=env).exit_code == 0
    assert runner.invoke(main, ["bank", "create", "ncmec", "--category", "csam"], env=env).exit_code == 0
    credentials = tmp_path / "ncmec.json"
    credentials.write_text(json.dumps({"username": "esp", "password": "hunter2-secret"}))
    with FakeNcmec(password="hunter2-secret") as fake:
        fake.add(T0, "img1", md5=MD5, classification="A1")
        fake.add(T0 + 1, "img2", other={"pdna": "00" * 72})
        added = runner.invoke(
            main,
            [
                "exchange",
                "add",
                "ncmec",
                "--type",
                "ncmec",
                "--bank",
                "ncmec",
                "--base-url",
                fake.url,
                "--credentials-file",
                str(credentials),
            ],
            env=env,
        )
        assert added.exit_code == 0, added.output
        synced = runner.invoke(main, ["exchange", "sync", "ncmec"], env=env)
        assert synced.exit_code == 0, synced.output
        assert "added 1" in synced.output and "kept aside 1" in synced.output
        shown = runner.invoke(main, ["exchange", "show", "ncmec", "--json"], env=env)
        listed = runner.invoke(main, ["exchange", "list"], env=env)
    for output in (added.output, synced.output, shown.output, listed.output):
        assert "hunter2" not in output
    assert json.loads(shown.output)["status"]["entries"] == 1
    assert "ncmec" in listed.output and "ok" in listed.output
