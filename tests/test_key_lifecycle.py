"""API keys end: an optional expiry, and rotation with a grace period so clients switch without an outage."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa
from api_fixtures import Api
from cli_helpers import Cli

from hashsvc.store.schema import api_keys


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _works(api: Api, token: str) -> bool:
    api.service._key_cache.clear()  # each check asks the store, as another process would
    return api.client.get("/v1/banks", headers=_bearer(token)).status_code == 200


def _backdate(api: Api, name: str, **columns: dt.datetime) -> None:
    with api.service.store.engine.begin() as conn:
        conn.execute(sa.update(api_keys).where(api_keys.c.name == name).values(**columns))


def test_a_key_stops_working_when_it_expires(api: Api) -> None:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    created = api.post_json("/v1/keys", {"name": "temp", "scopes": ["curate"], "expires_at": soon}, scope="admin")
    assert created.status_code == 201 and created.json["expires_at"].startswith(soon[:16])
    token = created.json["key"]
    assert _works(api, token)
    _backdate(api, "temp", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert not _works(api, token)


def test_a_cached_key_is_refused_once_its_expiry_passes(api: Api) -> None:
    token = api.post_json("/v1/keys", {"name": "cached", "scopes": ["curate"]}, scope="admin").json["key"]
    assert api.client.get("/v1/banks", headers=_bearer(token)).status_code == 200  # now in the key cache
    key = api.service._key_cache[token][1]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    expiring = dataclasses.replace(key, expires_at=past)
    api.service._key_cache[token] = (api.service._key_cache[token][0], expiring)
    assert api.client.get("/v1/banks", headers=_bearer(token)).status_code == 401


@pytest.mark.parametrize("expires_at", ["yesterday", "2001-01-01T00:00:00Z", "2999-01-01", 5, True])
def test_an_expiry_in_the_past_too_far_ahead_or_not_a_time_is_400(api: Api, expires_at: object) -> None:
    body = {"name": "bad-expiry", "scopes": ["match"], "expires_at": expires_at}
    response = api.post_json("/v1/keys", body, scope="admin")
    assert response.status_code == 400, response.json


def test_rotation_keeps_the_old_secret_for_the_grace_period_then_only_the_new(api: Api) -> None:
    created = api.post_json("/v1/keys", {"name": "pipeline", "scopes": ["curate"]}, scope="admin").json
    rotated = api.post_json(f"/v1/keys/{created['id']}/rotate", {"grace_s": 3600}, scope="admin")
    assert rotated.status_code == 200
    new = rotated.json["key"]
    assert new != created["key"] and rotated.json["previous_valid_until"]
    assert _works(api, created["key"]) and _works(api, new)
    _backdate(api, "pipeline", previous_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert not _works(api, created["key"]) and _works(api, new)
    listed = api.client.get("/v1/keys", headers=api.headers("admin")).get_data(as_text=True)
    assert created["key"] not in listed and new not in listed
    actions = [e["action"] for e in api.client.get("/v1/audit", headers=api.headers("admin")).json["entries"]]
    assert actions[0] == "key.rotate"


def test_a_second_rotation_ends_the_first_secret_at_once_and_grace_zero_ends_the_old_now(api: Api) -> None:
    first = api.post_json("/v1/keys", {"name": "twice", "scopes": ["curate"]}, scope="admin").json
    second = api.post_json(f"/v1/keys/{first['id']}/rotate", {}, scope="admin").json
    third = api.post_json(f"/v1/keys/{first['id']}/rotate", {"grace_s": 0}, scope="admin").json
    assert not _works(api, first["key"]) and not _works(api, second["key"]) and _works(api, third["key"])


@pytest.mark.parametrize("body", [{"grace_s": -1}, {"grace_s": 31 * 86400}, {"grace_s": "1d"}, {"other": 1}])
def test_bad_rotation_requests_are_400(api: Api, body: dict) -> None:
    key = api.post_json("/v1/keys", {"name": "rot", "scopes": ["match"]}, scope="admin").json
    assert api.post_json(f"/v1/keys/{key['id']}/rotate", body, scope="admin").status_code == 400


def test_a_revoked_key_cannot_be_rotated_back_to_life(api: Api) -> None:
    key = api.post_json("/v1/keys", {"name": "gone", "scopes": ["match"]}, scope="admin").json
    api.client.delete(f"/v1/keys/{key['id']}", headers=api.headers("admin"))
    assert api.post_json(f"/v1/keys/{key['id']}/rotate", {}, scope="admin").status_code == 400


def test_the_cli_creates_expiring_keys_and_rotates_them(api: Api) -> None:
    cli = Cli({}, ["--database-url", api.service.settings.resolved_database_url])
    old = cli("keys", "create", "--name", "contractor", "--scope", "curate", "--expires", "30d").stdout.strip()
    assert "active until" in cli("keys", "list").stdout
    rotated = cli("keys", "rotate", "contractor", "--grace", "0s")
    new = rotated.stdout.strip()
    assert new.startswith("hsk_") and new != old and "previous secret" in rotated.stderr
    assert not _works(api, old) and _works(api, new)
    assert cli("keys", "update", "contractor", "--expires", "never", "--json").stdout.count('"expires_at": null') == 1
    assert "from 0 to 30 days" in cli("keys", "rotate", "contractor", "--grace", "31d", code=1).output
    assert "not a duration" in cli("keys", "rotate", "contractor", "--grace", "soon", code=2).output
