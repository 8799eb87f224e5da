"""A running replica re-checks the store's schema: readiness turns 503 with the reason when another version has
migrated the store (or it was never migrated for this code), and turns 200 again when the schema is this code's.
Matching goes on answering meanwhile. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from api_fixtures import Api

from hashsvc.service.schema_watch import CHECK_S
from hashsvc.store import SchemaOutOfDateError, check_schema, head_revision
from hashsvc.store.engine import create_store_engine
from hashsvc.store.migrate import alembic_config

pytest_plugins = ["store_fixtures"]

MD5 = "0123456789abcdef0123456789abcdef"
NEWER = "9999_from_a_newer_version"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stamp(url: str, revision: str) -> None:
    """What `hashsvc migrate` of another version leaves behind, as far as the revision goes."""
    engine = create_store_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def previous_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision())
    assert isinstance(script.down_revision, str)
    return script.down_revision


def replica(make_api: Callable[..., Api], url: str) -> tuple[Api, Clock]:
    api = make_api(database_url=url)
    clock = Clock()
    api.service.schema.clock = clock
    return api, clock


def readiness(api: Api) -> tuple[int, dict[str, object]]:
    response = api.client.get("/readyz")
    return response.status_code, response.json


def test_replicas_turn_unready_within_the_check_period_after_a_newer_version_migrates(
    make_api: Callable[..., Api], store_url: str
) -> None:
    (a, clock_a), (b, clock_b) = replica(make_api, store_url), replica(make_api, store_url)
    b.keys.update(a.keys)  # one store, so one set of keys
    assert a.post_json("/v1/banks", {"name": "known", "category": "csam", "action": "block"}).status_code == 201
    assert a.post_json("/v1/banks/known/items", {"hashes": {"md5": MD5}}).status_code == 201
    assert readiness(a) == readiness(b) == (200, {"ready": True})

    stamp(store_url, NEWER)
    assert readiness(a)[0] == 200  # read at most every CHECK_S
    for clock in (clock_a, clock_b):
        clock.now += CHECK_S
    for api in (a, b):
        status, body = readiness(api)
        assert status == 503
        assert body == {
            "ready": False,
            "reason": "the store has a schema newer than this code's: "
            "restart this process on the version that migrated it",
        }
        assert NEWER not in str(body)  # readiness is public: no versions
        api.sync()
        answer = api.post_json("/v1/match/hashes", {"md5": MD5}, "match")
        assert (answer.status_code, answer.json["decision"]) == (200, "block")  # matching goes on

    stamp(store_url, head_revision())
    clock_a.now += CHECK_S
    assert readiness(a) == (200, {"ready": True})


def test_a_store_this_code_has_not_migrated_yet_says_run_migrate(make_api: Callable[..., Api], store_url: str) -> None:
    api, clock = replica(make_api, store_url)
    stamp(store_url, previous_revision())
    clock.now += CHECK_S
    assert readiness(api) == (
        503,
        {"ready": False, "reason": "the store has a schema older than this code's: run `hashsvc migrate`"},
    )
    with pytest.raises(SchemaOutOfDateError) as raised:  # the command line names the versions
        check_schema(store_url)
    assert f"(the store is at {previous_revision()}, this code at {head_revision()})" in raised.value.message
    stamp(store_url, head_revision())  # as `hashsvc migrate` would leave it
    clock.now += CHECK_S
    assert readiness(api)[0] == 200


def test_an_unreadable_store_keeps_the_last_answer(
    make_api: Callable[..., Api], store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, clock = replica(make_api, store_url)
    assert api.service.schema.check() is None
    stamp(store_url, NEWER)

    def unreachable(engine: sa.Engine) -> str:
        raise sa.exc.OperationalError("SELECT version_num", {}, OSError("connection refused"))

    with monkeypatch.context() as patched:
        patched.setattr("hashsvc.service.schema_watch.revision_of", unreachable)
        clock.now += CHECK_S
        assert api.service.schema.check() is None  # unreachability is readiness's other reason, not this one
    assert api.service.schema.check() is None  # read just now, as far as the period goes
    clock.now += CHECK_S
    assert api.service.schema.check() is not None
