"""Rough edges a newcomer hit when trying the service (issue #18), each pinned down so it stays fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from api_fixtures import Api
from images import encode, photo

HASHSVC = str(Path(sys.executable).with_name("hashsvc"))
KEY = "hsk_thisLooksLikeARealSecret0123456789"


def _error(response) -> dict:
    assert response.is_json, response.get_data(as_text=True)
    return response.json["error"]


# ------------------------------------------------------------------------------------------------ auth


def test_a_bare_key_without_bearer_is_told_what_is_wrong_and_never_echoed(api: Api) -> None:
    response = api.client.get("/v1/banks", headers={"Authorization": KEY})
    assert response.status_code == 401
    message = _error(response)["message"]
    assert "Bearer" in message and "prefix" in message
    assert KEY not in message and KEY[:8] not in message


def test_another_scheme_is_named_and_an_empty_header_is_missing(api: Api) -> None:
    assert "'Basic'" in _error(api.client.get("/v1/banks", headers={"Authorization": "Basic abc"}))["message"]
    assert "missing API key" in _error(api.client.get("/v1/banks", headers={"Authorization": "  "}))["message"]
    assert "empty API key" in _error(api.client.get("/v1/banks", headers={"Authorization": "Bearer  "}))["message"]


# ------------------------------------------------------------------------------------------------ items


def test_the_same_image_posted_twice_is_one_item_and_the_second_answer_says_so(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "cases", "category": "csam"})
    image = encode(photo(seed=3))
    first = api.upload("/v1/banks/cases/items", image, scope="curate")
    second = api.upload("/v1/banks/cases/items", image, scope="curate", reference="another-ref")
    assert (first.status_code, first.json["already_present"]) == (201, False)
    assert (second.status_code, second.json["already_present"]) == (200, True)
    assert second.json["id"] == first.json["id"]
    assert second.json["reference"] is None  # the known item is returned as it is, not changed
    listed = api.client.get("/v1/banks/cases/items", headers=api.headers("curate")).json
    assert [item["id"] for item in listed["items"]] == [first.json["id"]]


def test_the_same_image_in_another_bank_is_a_new_item_there(api: Api) -> None:
    for bank in ("first", "second"):
        api.post_json("/v1/banks", {"name": bank, "category": "csam"})
    image = encode(photo(seed=4))
    assert api.upload("/v1/banks/first/items", image, scope="curate").status_code == 201
    assert api.upload("/v1/banks/second/items", image, scope="curate").status_code == 201


def test_a_taken_reference_is_reported_with_the_api_s_own_word(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "refs", "category": "csam"})
    body = {"hashes": {"md5": "d35c785545392755e7e4164457657269"}, "reference": "NCMEC-1"}
    assert api.post_json("/v1/banks/refs/items", body).status_code == 201
    again = api.post_json("/v1/banks/refs/items", {**body, "hashes": {"md5": "0" * 32}})
    assert again.status_code == 409
    message = _error(again)["message"]
    assert "reference 'NCMEC-1'" in message and "external_ref" not in message


# ------------------------------------------------------------------------------------------------ CLI


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHSVC_")}
    return {**env, **extra}


def test_a_local_command_in_a_folder_without_a_store_creates_nothing_and_says_init(tmp_path: Path) -> None:
    done = subprocess.run(
        [HASHSVC, "bank", "list"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "no store at" in done.stderr and "hashsvc init" in done.stderr
    assert str(tmp_path / "index" / "hashsvc.db") in done.stderr
    assert list(tmp_path.iterdir()) == []  # no index/ folder, no empty database file


def test_a_store_without_a_schema_says_init(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    done = subprocess.run(
        [HASHSVC, "bank", "list", "--database-url", url], env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3 and "has no schema: run `hashsvc init`" in done.stderr


def test_help_does_not_load_the_store_or_the_index() -> None:
    """`hashsvc --help` took 3.4 s from a cold start: the service layer (numba, SQLAlchemy) was imported for it."""
    probe = (
        "import sys\n"
        "from hashsvc.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('numba', 'sqlalchemy', 'alembic', 'faiss', 'cv2', 'av', 'dask', 'httpx', 'hashsvc.service.service')\n"
        "print('LOADED', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout[-500:]


# ------------------------------------------------------------------------------------------------ metrics


def test_the_metrics_content_type_names_its_charset_once(api: Api) -> None:
    token = api.service.store.create_api_key("prometheus", ["metrics"], actor="test")[1]
    scraped = api.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].count("charset") == 1


def test_a_worker_s_index_gauges_follow_the_change_log_without_being_scraped(tmp_path: Path) -> None:
    """With several workers the sequence gauge is their minimum: one never scraped must not read 0."""
    from api_fixtures import make_settings

    from hashsvc.api import create_app, metrics
    from hashsvc.service.service import Service
    from hashsvc.store import upgrade

    settings = make_settings(tmp_path)
    Path(settings.data_dir).mkdir(parents=True)
    upgrade(settings.resolved_database_url)
    service = Service(settings)
    try:
        create_app(settings, service=service, background=True)
        service.store.create_bank("gauged", category="csam", actor="test")
        service.store.add_item("gauged", {"md5": "d35c785545392755e7e4164457657269"}, actor="test")
        wanted = service.store.max_sequence()
        deadline = time.monotonic() + 10
        while metrics.INDEX_SEQUENCE._value.get() < wanted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metrics.INDEX_SEQUENCE._value.get() == wanted
    finally:
        service.close()


# ------------------------------------------------------------------------------------------------ exports


def test_an_export_carries_each_item_s_own_hashes_and_views_only_on_request(api: Api) -> None:
    """`export --format threatexchange` wrote 37 PDQ lines for 2 items: every stored crop went to the partner."""
    from cli_helpers import Cli

    api.post_json("/v1/banks", {"name": "shared", "category": "csam"})
    for seed in (21, 22):
        item = api.upload("/v1/banks/shared/items", encode(photo(640, 480, seed=seed)), scope="curate").json
        own = [h for h in item["hashes"] if not h["view"]]
        assert sorted(h["algorithm"] for h in own) == ["dhash", "md5", "pdq", "phash", "sha256"]
        assert sum(h["view"] for h in item["hashes"]) >= 10  # the crops and trimmed view are still matched
    cli = Cli({}, ["--database-url", api.service.settings.resolved_database_url])
    lines = cli("export", "--bank", "shared", "--format", "threatexchange").stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("pdq ") for line in lines)
    with_views = cli("export", "--bank", "shared", "--format", "threatexchange", "--include-views").stdout
    assert len(with_views.splitlines()) > 20
    rows = cli("export", "--bank", "shared", "--format", "csv").stdout.splitlines()
    assert len(rows) == 1 + 2 * 5  # header, then five own hashes per item


# ------------------------------------------------------------------------------------------------ request log


def test_every_request_gets_an_id_and_one_json_log_line_without_secrets_or_hashes(api: Api, caplog) -> None:
    import json
    import logging

    api.post_json("/v1/banks", {"name": "logged", "category": "csam"})
    image = encode(photo(seed=5))
    item = api.upload("/v1/banks/logged/items", image, scope="curate").json
    api.sync()
    with caplog.at_level(logging.INFO, logger="hashsvc.request"):
        answer = api.upload("/v1/match", image)
        refused = api.client.get("/v1/banks?x=secret-query", headers={"Authorization": KEY, "X-Request-Id": "a b"})
        kept = api.client.get("/healthz", headers={"X-Request-Id": "upload-4711"})
    assert answer.json["decision"] == "block"
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "hashsvc.request"][-3:]
    assert [line["endpoint"] for line in lines] == ["/v1/match", "/v1/banks", "/healthz"]
    match_line, refused_line, kept_line = lines
    assert match_line["request_id"] == answer.headers["X-Request-Id"] and len(match_line["request_id"]) == 32
    assert (match_line["key"], match_line["status"], match_line["decision"]) == ("match-key", 200, "block")
    assert match_line["duration_ms"] >= 0
    assert (refused_line["status"], refused_line["error"], refused_line["key"]) == (401, "unauthorized", None)
    assert refused.headers["X-Request-Id"] != "a b"  # not a plain token: replaced
    assert kept.headers["X-Request-Id"] == "upload-4711" and kept_line["request_id"] == "upload-4711"
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert KEY not in text and "secret-query" not in text
    for stored in item["hashes"]:
        assert stored["value"] not in text


# ------------------------------------------------------------------------------------------------ serve


def test_serve_leaves_no_metrics_folder_behind_and_refuses_a_busy_port(tmp_path: Path) -> None:
    """Every `hashsvc serve` used to leave a /tmp/hashsvc-metrics-* folder (67 after one afternoon)."""
    import signal
    import socket
    import urllib.request

    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _clean_env(TMPDIR=str(temp), HASHSVC_DATA_DIR=str(tmp_path / "data"), HASHSVC_PORT=str(port))
    env["HASHSVC_WORKERS"] = "1"
    subprocess.run([HASHSVC, "init"], env=env, check=True, capture_output=True, timeout=120)
    server = subprocess.Popen([HASHSVC, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        assert list(temp.glob("hashsvc-metrics-*")), "the server should keep its metrics in a folder while it runs"
        # granian listens with SO_REUSEPORT: a second server on the port used to start and share the connections.
        second = subprocess.run([HASHSVC, "serve"], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and f"127.0.0.1:{port} is already in use" in second.stderr, second.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert list(temp.glob("hashsvc-metrics-*")) == []


def test_local_commands_print_no_traceback_from_hashing_workers_they_never_used(tmp_path: Path) -> None:
    """Each local command used to start the sandbox pool and exit under it: a BrokenPipeError per worker."""
    env = _clean_env(HASHSVC_DATA_DIR=str(tmp_path / "data"))
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(photo(seed=8)))
    for command in (
        ["init"],
        ["bank", "create", "quiet", "--category", "csam"],
        ["add", "--bank", "quiet", str(image)],
        ["bank", "list"],
    ):
        done = subprocess.run([HASHSVC, *command], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, (command, done.stderr)


def test_the_command_line_s_light_choices_agree_with_the_code_they_stand_for() -> None:
    from hashsvc.exchanges.registry import TYPES
    from hashsvc.service.reviews import RESOLUTIONS
    from hashsvc.service.transfer import FORMATS
    from hashsvc.store.schema import SCOPES
    from hashsvc.vocabulary import EXCHANGE_TYPES, LIST_FORMATS, REVIEW_RESOLUTIONS
    from hashsvc.vocabulary import SCOPES as CLI_SCOPES

    assert set(TYPES) == set(EXCHANGE_TYPES)
    assert RESOLUTIONS == REVIEW_RESOLUTIONS and FORMATS == LIST_FORMATS and SCOPES == CLI_SCOPES


def test_the_match_command_prints_every_kind_of_evidence() -> None:
    """`hashsvc match` crashed (KeyError 'distance') on a local-feature match, found by generating the docs."""
    from hashsvc.cli.items import _evidence_text

    pdq = {"algorithm": "pdq", "distance": 4, "threshold": 31, "variant": "original", "action": "block"}
    assert _evidence_text(pdq) == "pdq distance 4/31 original -> block"
    orb = {"algorithm": "orb", "inliers": 41, "ratio": 0.5, "action": "review"}
    assert _evidence_text(orb) == "orb 41 inliers, ratio 0.50 -> review"
    assert _evidence_text({"algorithm": "vpdq", "query_share": 80.0, "action": "block"}).endswith("-> block")
