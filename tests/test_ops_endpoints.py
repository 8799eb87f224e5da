"""Operations endpoints and files on disk: /metrics needs the `metrics` scope, /readyz says only whether and why
not, and the store, its data folder and the index snapshots are readable by their owner only."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_fixtures import Api, make_settings
from cli_helpers import Cli

from hashsvc.service.service import Service
from hashsvc.store import upgrade
from hashsvc.store.engine import create_store_engine

# ------------------------------------------------------------------------------------------------ /metrics


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


@pytest.fixture
def metrics_token(api: Api) -> str:
    return api.service.store.create_api_key("prometheus", ["metrics"], actor="test")[1]


def test_metrics_need_a_key_with_the_metrics_scope(api: Api, metrics_token: str) -> None:
    assert_error(api.client.get("/metrics"), 401, "unauthorized")
    assert_error(api.client.get("/metrics", headers=bearer("hs_not-a-key")), 401, "unauthorized")
    scraped = api.client.get("/metrics", headers=bearer(metrics_token))
    assert scraped.status_code == 200
    assert scraped.mimetype == "text/plain"
    assert b"hashsvc_index_hashes" in scraped.data


@pytest.mark.parametrize("scope", ["match", "curate", "admin"])
def test_no_other_scope_implies_metrics_not_even_admin(api: Api, scope: str) -> None:
    assert_error(api.client.get("/metrics", headers=api.headers(scope)), 403, "forbidden")


def test_a_metrics_key_can_do_nothing_else(api: Api, metrics_token: str) -> None:
    assert_error(api.client.get("/v1/banks", headers=bearer(metrics_token)), 403, "forbidden")
    assert_error(
        api.client.post("/v1/match/hashes", json={"md5": "0" * 32}, headers=bearer(metrics_token)), 403, "forbidden"
    )
    assert_error(api.client.get("/v1/keys", headers=bearer(metrics_token)), 403, "forbidden")


def test_a_revoked_metrics_key_is_refused(api: Api, metrics_token: str) -> None:
    api.service.store.revoke_api_key("prometheus", actor="test")
    api.service._key_cache.clear()  # the 2 s per-process key cache would otherwise still trust it
    assert_error(api.client.get("/metrics", headers=bearer(metrics_token)), 401, "unauthorized")


def test_metrics_keys_are_created_through_the_api(api: Api) -> None:
    created = api.post_json("/v1/keys", {"name": "scraper", "scopes": ["metrics"]}, "admin")
    assert created.status_code == 201, created.json
    assert created.json["scopes"] == ["metrics"]
    assert api.client.get("/metrics", headers=bearer(created.json["key"])).status_code == 200


def test_hashsvc_keys_create_scope_metrics(tmp_path: Path, make_api: Callable[..., Api]) -> None:
    api = make_api()
    cli = Cli(
        {"HASHSVC_DATA_DIR": str(tmp_path / "data")}, ["--database-url", api.service.settings.resolved_database_url]
    )
    key = cli.json("keys", "create", "--name", "prometheus", "--scope", "metrics")
    assert key["scopes"] == ["metrics"]
    assert api.client.get("/metrics", headers=bearer(key["key"])).status_code == 200


# ------------------------------------------------------------------------------------------------- /readyz


def assert_not_ready(response: Any, reason: str) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json == {"ready": False, "reason": response.json["reason"]}
    assert response.json["reason"].startswith(reason), response.json
    assert not any(ch.isdigit() for ch in response.json["reason"]), "readiness must not leak counts or sequences"


def test_readyz_says_only_ready_when_ready(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "b", "category": "csam"})
    api.post_json("/v1/banks/b/items", {"hashes": {"md5": "0" * 32}})
    api.sync()
    response = api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"ready": True}  # no hash counts, sequence or lag
    assert "Retry-After" not in response.headers


def test_readyz_while_the_index_loads(api: Api) -> None:
    api.service.live._ready.clear()
    assert_not_ready(api.client.get("/readyz"), "loading index")


def test_readyz_while_catching_up_with_the_change_log(api: Api) -> None:
    api.post_json("/v1/banks", {"name": "b", "category": "csam"})
    api.service.live.last_store_sequence = api.service.live.sequence + 3  # what the tail saw in the store
    assert_not_ready(api.client.get("/readyz"), "catching up with the change log")
    api.sync()
    assert api.client.get("/readyz").status_code == 200


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_readyz_when_the_store_is_unreachable_names_no_host_or_user(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api(poll_interval_s=0.05)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.OperationalError(
            "SELECT", {}, Exception('connection to server at "db.internal" failed: user "svc"')
        )

    monkeypatch.setattr(api.service.store, "changes_since", unreachable)
    api.service.live.start()  # the real change-log tail, failing against the store
    wait_for(lambda: api.client.get("/readyz").status_code == 503)
    response = api.client.get("/readyz")
    assert_not_ready(response, "store unreachable: OperationalError")
    assert "db.internal" not in response.get_data(as_text=True) and "svc" not in response.json["reason"]
    monkeypatch.undo()
    wait_for(lambda: api.client.get("/readyz").status_code == 200)


# ---------------------------------------------------------------------------------------- files on disk


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Umask 0: every mode below comes from the code, not from a cautious default."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_the_data_folder_store_and_snapshots_are_private(tmp_path: Path) -> None:
    before = mode(tmp_path)
    settings = make_settings(tmp_path / "new")  # data_dir <tmp>/new/data: neither folder exists yet
    data = Path(settings.data_dir)
    service = Service(settings)
    try:
        assert (mode(data), mode(data.parent)) == (0o700, 0o700)
        assert mode(data / "hashsvc.db") == 0o600
        upgrade(settings.resolved_database_url)
        service.store.create_bank("b", category="csam", actor="t")
        service.store.add_item("b", {"md5": "0" * 32}, actor="t")
        wal, shm = data / "hashsvc.db-wal", data / "hashsvc.db-shm"
        assert wal.exists() and shm.exists()
        assert (mode(wal), mode(shm)) == (0o600, 0o600)
        service.live.load()
        assert service.live.save_snapshots()
        snapshots = data / "snapshots"
        assert mode(snapshots) == 0o700
        files = sorted(snapshots.iterdir())
        assert [f.name for f in files if f.suffix == ".hidx"] == sorted(
            f"{a}.hidx" for a in ("dhash", "md5", "pdq", "pdq-frames", "phash", "sha256")
        )
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        service.close()
    assert mode(tmp_path) == before  # a folder that existed already is left as it was


@pytest.mark.usefixtures("permissive_umask")
def test_hashsvc_init_creates_a_private_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    before = mode(tmp_path)
    result = Cli({"HASHSVC_DATA_DIR": str(data)}, [])("init")
    assert "created API key 'admin'" in result.stdout
    assert mode(data) == 0o700
    assert mode(data / "hashsvc.db") == 0o600
    assert mode(tmp_path) == before


@pytest.mark.usefixtures("permissive_umask")
def test_hashsvc_init_tightens_an_existing_data_folder_like_the_repositorys_index(tmp_path: Path) -> None:
    data = tmp_path / "index"
    data.mkdir(mode=0o755)  # as git checks out the default data folder
    Cli({"HASHSVC_DATA_DIR": str(data)}, [])("init")
    assert mode(data) == 0o700


@pytest.mark.usefixtures("permissive_umask")
def test_a_sticky_shared_folder_is_never_tightened(tmp_path: Path) -> None:
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    shared.chmod(0o1777)
    Cli({"HASHSVC_DATA_DIR": str(shared)}, [])("init")
    assert mode(shared) == 0o1777


@pytest.mark.usefixtures("permissive_umask")
def test_an_existing_store_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)  # say, readable by a backup group on purpose
    engine = create_store_engine(f"sqlite:///{path}")
    engine.connect().close()
    engine.dispose()
    assert mode(path) == 0o640
