"""Retro-hunt: uploads retained (hashes only) are searched when items are added later, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from api_fixtures import Api

from hashsvc.store.schema import recent_uploads

PDQ = "f" * 32 + "0" * 32


def near(hex_code: str, bits: int) -> str:
    value = int(hex_code, 16) ^ (((1 << bits) - 1) << (len(hex_code) * 4 - bits))
    return f"{value:0{len(hex_code)}x}"


def test_items_added_later_find_earlier_uploads(make_api: Callable[..., Api], store_url: str) -> None:
    api = make_api(database_url=store_url, retrohunt_days=7)
    after = api.service.after
    assert after.hunter is not None
    after.hunter.run()  # the first pass sets the checkpoint: retro-hunting starts now
    for name, action in (("known", "block"), ("maybe", "review"), ("benign", "allow")):
        assert api.post_json("/v1/banks", {"name": name, "category": "csam", "action": action}).status_code == 201
    uploads = [
        {"pdq": near(PDQ, 4), "content_id": "early-1", "metadata": {"user": "u1"}},
        {"pdq": near(PDQ, 40), "content_id": "unrelated"},
        {"pdq": {"value": near(PDQ, 2), "quality": 10}, "content_id": "too-flat"},  # low quality: not kept
        {"md5": "0" * 32, "content_id": "no-pdq"},
    ]
    for body in uploads:
        assert api.post_json("/v1/match/hashes", body, "match").json["decision"] == "allow"
    after.events.flush()
    with api.service.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(recent_uploads)).scalar() == 2

    # Added through three paths: one item, a bulk import, and into a review bank.
    assert api.post_json("/v1/banks/known/items", {"hashes": {"pdq": PDQ}}).status_code == 201
    lines = f'{{"hashes": {{"pdq": "{near(PDQ, 6)}"}}}}\n'
    bulk = api.client.post("/v1/banks/maybe/items:bulk", data=lines, headers=api.headers("curate"))
    assert bulk.status_code == 200 and len(bulk.json["accepted"]) == 1
    assert api.post_json("/v1/banks/benign/items", {"hashes": {"pdq": PDQ}}).status_code == 201  # allow: no hunt
    while after.background.run_due():
        pass
    hits = api.client.get("/v1/events?type=retrohunt", headers=api.headers("curate")).json["events"]
    assert sorted(
        (e["content_id"], e["decision"], e["matches"][0]["bank"], e["matches"][0]["distance"]) for e in hits
    ) == [
        ("early-1", "block", "known", 4),
        ("early-1", "review", "maybe", 2),
    ]
    assert all(e["metadata"] == {"user": "u1"} and e["key"] == "match-key" for e in hits)
    reviews = api.client.get("/v1/reviews", headers=api.headers("curate")).json["reviews"]
    assert [r["bank"] for r in reviews] == ["maybe"]
    # Nothing is hunted twice.
    after.hunter.run()
    again = api.client.get("/v1/events?type=retrohunt", headers=api.headers("curate")).json["events"]
    assert len(again) == 2


def test_retention_is_off_by_default(api: Api) -> None:
    assert api.service.after.hunter is None and api.service.after.retainer is None
    api.post_json("/v1/match/hashes", {"pdq": PDQ, "content_id": "x"}, "match")
    api.service.after.events.flush()
    with api.service.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(recent_uploads)).scalar() == 0


def test_uploads_pruned_from_the_store_leave_the_hunters_index(make_api: Callable[..., Api], store_url: str) -> None:
    api = make_api(database_url=store_url, retrohunt_days=7)
    hunter = api.service.after.hunter
    assert hunter is not None
    for n in range(3):
        api.post_json("/v1/match/hashes", {"pdq": near(PDQ, 4 + n), "content_id": f"up-{n}"}, "match")
    api.service.after.events.flush()
    assert hunter.refresh() == 3 and len(hunter.index) == 3
    with api.service.store.engine.begin() as conn:  # the two oldest uploads fall out of retention
        oldest = sa.select(recent_uploads.c.id).order_by(recent_uploads.c.id).limit(2).scalar_subquery()
        long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        conn.execute(sa.update(recent_uploads).where(recent_uploads.c.id.in_(oldest)).values(at=long_ago))
    hunter.prune()
    assert hunter.refresh() == 0 and len(hunter.index) == 1
    api.post_json("/v1/match/hashes", {"pdq": near(PDQ, 9), "content_id": "up-3"}, "match")
    api.service.after.events.flush()
    assert hunter.refresh() == 1 and len(hunter.index) == 2
