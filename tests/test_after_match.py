"""After a match, through the API on SQLite and PostgreSQL: events, the review queue, allowlists, the flood guard.

Webhooks are in test_webhooks.py; two real replicas and the SIGKILL test in test_after_match_replicas.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from api_fixtures import Api

from hashsvc.service.events import FLOOD_CHECK_S

PDQ = "f" * 32 + "0" * 32
MD5 = "0123456789abcdef0123456789abcdef"


def near(hex_code: str, bits: int) -> str:
    """The code with its first `bits` bits flipped (a near-duplicate at that distance)."""
    value = int(hex_code, 16) ^ (((1 << bits) - 1) << (len(hex_code) * 4 - bits))
    return f"{value:0{len(hex_code)}x}"


@pytest.fixture
def svc(make_api: Callable[..., Api], store_url: str) -> Api:
    return make_api(database_url=store_url)


def bank(api: Api, name: str, action: str = "block", **extra: Any) -> None:
    response = api.post_json("/v1/banks", {"name": name, "category": "csam", "action": action, **extra})
    assert response.status_code == 201, response.json


def item(api: Api, bank_name: str, hashes: dict[str, str]) -> int:
    response = api.post_json(f"/v1/banks/{bank_name}/items", {"hashes": hashes})
    assert response.status_code == 201, response.json
    api.sync()
    return int(response.json["id"])


def match(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post_json("/v1/match/hashes", body, scope="match")
    assert response.status_code == 200, response.json
    return dict(response.json)


def events(api: Api, scope: str = "curate", **query: Any) -> list[dict[str, Any]]:
    response = api.client.get("/v1/events", query_string=query, headers=api.headers(scope))
    assert response.status_code == 200, response.json
    return list(response.json["events"])


def test_block_and_review_decisions_become_events_with_the_upload_context(svc: Api) -> None:
    bank(svc, "known")
    bank(svc, "maybe", action="review")
    blocked = item(svc, "known", {"pdq": PDQ})
    reviewed = item(svc, "maybe", {"md5": MD5})
    assert match(svc, {"pdq": near(PDQ, 3), "content_id": "post-1", "metadata": {"user": "u7"}})["decision"] == "block"
    assert match(svc, {"md5": MD5, "content_id": "post-2"})["decision"] == "review"
    assert match(svc, {"pdq": near(PDQ, 128), "content_id": "post-3"})["decision"] == "allow"

    found = events(svc)
    assert [e["content_id"] for e in found] == ["post-2", "post-1"]  # newest first; allow is not recorded
    first = found[1]
    assert (first["type"], first["decision"], first["key"], first["metadata"]) == (
        "match",
        "block",
        "match-key",
        {"user": "u7"},
    )
    assert first["hashes"] == {"pdq": near(PDQ, 3)}  # the query's hashes, never an image
    assert (
        first["matches"][0]
        | {"bank": "known", "item_id": blocked, "algorithm": "pdq", "distance": 3, "variant": "original"}
        == first["matches"][0]
    )
    assert [e["content_id"] for e in events(svc, decision="review")] == ["post-2"]
    assert [e["content_id"] for e in events(svc, bank="known")] == ["post-1"]
    assert [e["content_id"] for e in events(svc, item_id=reviewed)] == ["post-2"]
    assert [e["content_id"] for e in events(svc, content_id="post-1")] == ["post-1"]
    assert events(svc, since="2999-01-01T00:00:00Z") == []
    page = events(svc, limit=1)
    assert [e["content_id"] for e in events(svc, limit=1, before_id=page[0]["id"])] == ["post-1"]


def test_events_are_for_curators_and_inputs_are_bounded(svc: Api) -> None:
    response = svc.client.get("/v1/events", headers=svc.headers("match"))
    assert response.status_code == 403
    bad = [
        {"md5": MD5, "content_id": "x" * 256},
        {"md5": MD5, "content_id": ""},
        {"md5": MD5, "content_id": 7},
        {"md5": MD5, "metadata": [1]},
        {"md5": MD5, "metadata": {"k": "v" * 5000}},
    ]
    for body in bad:
        response = svc.post_json("/v1/match/hashes", body, scope="match")
        assert response.status_code == 400, body
        assert response.json["error"]["code"] == "invalid_request"
    for query in ({"limit": "0"}, {"since": "yesterday"}, {"decision": "maybe"}, {"item_id": "-1"}):
        response = svc.client.get("/v1/events", query_string=query, headers=svc.headers("curate"))
        assert response.status_code == 400, query


def test_a_batch_records_each_hash_set_with_its_own_content_id(svc: Api) -> None:
    bank(svc, "known")
    item(svc, "known", {"md5": MD5})
    body = {"items": [{"md5": MD5, "content_id": "a"}, {"md5": "f" * 32, "content_id": "b"}, {"md5": MD5}]}
    assert [r["decision"] for r in match(svc, body)["results"]] == ["block", "allow", "block"]
    assert sorted(str(e["content_id"]) for e in events(svc)) == ["None", "a"]


def test_an_upload_with_content_id_and_metadata_is_recorded(svc: Api) -> None:
    from images import encode, photo

    image = encode(photo(320, 240, seed=5))
    bank(svc, "known")
    added = svc.upload("/v1/banks/known/items", image, scope="curate")
    assert added.status_code == 201
    svc.sync()
    answer = svc.upload("/v1/match", image, content_id="upload-9", metadata='{"channel": "chat"}')
    assert answer.status_code == 200 and answer.json["decision"] == "block"
    (event,) = events(svc)
    assert (event["content_id"], event["metadata"]) == ("upload-9", {"channel": "chat"})
    assert set(event["hashes"]) == {"pdq", "phash", "dhash", "md5", "sha256"}
    assert svc.upload("/v1/match", image, metadata="{not json").status_code == 400


def test_allow_decisions_are_sampled_when_asked(make_api: Callable[..., Api], store_url: str) -> None:
    api = make_api(database_url=store_url, events_allow_sample=1.0)
    match(api, {"md5": MD5, "content_id": "clean"})
    assert [(e["decision"], e["content_id"]) for e in events(api)] == [("allow", "clean")]


def test_review_queue_claim_resolve_and_audit(svc: Api) -> None:
    bank(svc, "maybe", action="review")
    bank(svc, "confirmed-csam")
    item(svc, "maybe", {"pdq": PDQ})
    upload = near(PDQ, 5)
    match(svc, {"pdq": upload, "content_id": "c-1"})
    match(svc, {"pdq": near(PDQ, 6), "content_id": "c-2"})
    svc.service.after.events.flush()

    listed = svc.client.get("/v1/reviews", headers=svc.headers("curate")).json["reviews"]
    assert [r["status"] for r in listed] == ["open", "open"]
    first, second = listed  # oldest first
    assert (first["bank"], first["category"]) == ("maybe", "csam")

    claimed = svc.post_json(f"/v1/reviews/{first['id']}/claim", {})
    assert claimed.status_code == 200 and claimed.json["claimed_by"] == "curate-key"
    # Another analyst cannot take it while the claim lasts.
    other = svc.client.post(f"/v1/reviews/{first['id']}/claim", headers=svc.headers("admin"))
    assert other.status_code == 403  # admin keys lack curate; make a second curator
    token = svc.service.store.create_api_key("analyst-2", ["curate"], actor="test")[1]
    second_analyst = {"Authorization": f"Bearer {token}"}
    taken = svc.client.post(f"/v1/reviews/{first['id']}/claim", headers=second_analyst)
    assert taken.status_code == 409 and taken.json["error"]["code"] == "conflict"
    refused = svc.client.post(
        f"/v1/reviews/{first['id']}/resolve", json={"resolution": "dismissed"}, headers=second_analyst
    )
    assert refused.status_code == 409

    bad = svc.post_json(f"/v1/reviews/{first['id']}/resolve", {"resolution": "confirmed", "disable_item": True})
    assert bad.status_code == 400
    resolved = svc.post_json(
        f"/v1/reviews/{first['id']}/resolve",
        {"resolution": "confirmed", "reason": "seen by two analysts", "add_to_bank": "confirmed-csam"},
    )
    assert resolved.status_code == 200, resolved.json
    assert (resolved.json["status"], resolved.json["resolution"]) == ("resolved", "confirmed")
    new_item = resolved.json["outcome"]["added_item"]["item_id"]
    stored = svc.client.get(f"/v1/items/{new_item}", headers=svc.headers("curate")).json
    assert stored["bank"] == "confirmed-csam"
    assert {h["algorithm"]: h["value"] for h in stored["hashes"]} == {"pdq": upload}
    again = svc.post_json(f"/v1/reviews/{first['id']}/resolve", {"resolution": "dismissed"})
    assert again.status_code == 409

    actions = [(e.action, e.details.get("review_id")) for e in svc.service.store.list_audit(limit=20)]
    assert ("review.claim", first["id"]) in actions and ("review.resolve", first["id"]) in actions
    remaining = svc.client.get("/v1/reviews", headers=svc.headers("curate")).json["reviews"]
    assert [r["id"] for r in remaining] == [second["id"]]
    resolved_list = svc.client.get("/v1/reviews?status=resolved", headers=svc.headers("curate")).json["reviews"]
    assert [r["id"] for r in resolved_list] == [first["id"]]
    assert svc.client.get("/v1/reviews?bank=other", headers=svc.headers("curate")).json["reviews"] == []
    assert svc.client.get("/v1/reviews?min_age_s=3600", headers=svc.headers("curate")).json["reviews"] == []
    assert [e["type"] for e in events(svc, type="review_resolved")] == ["review_resolved"]


def test_false_positive_can_disable_the_item_or_allowlist_the_upload(svc: Api) -> None:
    bank(svc, "maybe", action="review")
    bank(svc, "benign", action="allow")
    listed_item = item(svc, "maybe", {"pdq": PDQ})
    match(svc, {"pdq": near(PDQ, 10), "content_id": "meme-1"})
    match(svc, {"pdq": near(PDQ, 12), "content_id": "meme-2"})
    svc.service.after.events.flush()
    first, second = svc.client.get("/v1/reviews", headers=svc.headers("curate")).json["reviews"]
    calls: list[tuple[int, str | None]] = []
    svc.service.after.reviews.on_resolve.append(lambda review, event: calls.append((review["id"], event["content_id"])))

    not_allow = svc.post_json(
        f"/v1/reviews/{first['id']}/resolve", {"resolution": "false_positive", "allowlist_bank": "maybe"}
    )
    assert not_allow.status_code == 400
    allowed = svc.post_json(
        f"/v1/reviews/{first['id']}/resolve", {"resolution": "false_positive", "allowlist_bank": "benign"}
    )
    assert allowed.status_code == 200, allowed.json
    svc.sync()
    # The allowlisted upload (10 bits from the item, 0 from the allowlist) no longer goes to review...
    assert match(svc, {"pdq": near(PDQ, 10)})["decision"] == "allow"
    # ...but an upload closer to the listed item than to the allowlist still does.
    assert match(svc, {"pdq": PDQ})["decision"] == "review"

    disabled = svc.post_json(
        f"/v1/reviews/{second['id']}/resolve",
        {"resolution": "false_positive", "disable_item": True, "reason": "a meme"},
    )
    assert disabled.status_code == 200 and disabled.json["outcome"]["disabled_item"] == listed_item
    svc.sync()
    assert match(svc, {"pdq": PDQ})["decision"] == "allow"
    assert calls == [(first["id"], "meme-1"), (second["id"], "meme-2")]


def test_an_allowlist_suppresses_farther_perceptual_matches_never_exact_ones_and_says_so(svc: Api) -> None:
    bank(svc, "known")
    bank(svc, "benign", action="allow")
    listed = item(svc, "known", {"pdq": PDQ, "md5": MD5})
    benign = item(svc, "benign", {"pdq": near(PDQ, 20)})
    # 18 bits from the allowlisted image, 2 bits from... no: 20 - 18 = 2 from the allowlist, 18 from the item.
    query = near(PDQ, 18)
    answer = match(svc, {"pdq": query, "content_id": "stock-photo"})
    assert answer["decision"] == "allow"
    assert [(m["bank"], m["action"]) for m in answer["matches"]] == [("benign", "allow")]
    (event,) = events(svc)
    assert (event["type"], event["decision"]) == ("suppression", "allow")
    assert event["details"]["suppressed"] == [
        {
            "bank": "known",
            "item_id": listed,
            "algorithm": "pdq",
            "distance": 18,
            "variant": "original",
            "by": {"bank": "benign", "item_id": benign, "distance": 2},
        }
    ]
    # Closer to the listed item than to the allowlist: not suppressed.
    assert match(svc, {"pdq": near(PDQ, 2)})["decision"] == "block"
    # The same bytes: an exact match is never suppressed.
    assert match(svc, {"pdq": query, "md5": MD5})["decision"] == "block"


def test_the_flood_guard_quarantines_an_item_then_an_analyst_rearms_it(
    make_api: Callable[..., Api], store_url: str
) -> None:
    api = make_api(database_url=store_url, flood_max_contents=3, flood_window_s=600)
    bank(api, "known")
    flooded = item(api, "known", {"pdq": PDQ})
    for n in range(3):
        assert match(api, {"pdq": PDQ, "content_id": f"same-{n % 2}"})["decision"] == "block"
    api.service.after.events.flush()
    assert api.client.get("/v1/quarantines", headers=api.headers("curate")).json["quarantines"] == []
    for _ in range(2):  # without content ids, each upload counts as distinct: 2 + 2 = 4 > 3
        match(api, {"pdq": PDQ})
    api.service.after.events.flush()
    (held,) = api.client.get("/v1/quarantines", headers=api.headers("curate")).json["quarantines"]
    assert (held["item_id"], held["status"]) == (flooded, "active")
    answer = match(api, {"pdq": PDQ, "content_id": "after"})
    assert answer["decision"] == "review"
    assert "flood guard" in answer["matches"][0]["note"]
    (why,) = events(api, type="quarantine")
    assert why["matches"] == [{"bank": "known", "item_id": flooded}] and why["details"]["distinct_contents"] == 4

    rearmed = api.post_json(f"/v1/quarantines/{flooded}/rearm", {"reason": "checked: real content"})
    assert rearmed.status_code == 200 and rearmed.json["status"] == "rearmed"
    assert api.post_json(f"/v1/quarantines/{flooded}/rearm", {}).status_code == 409
    assert match(api, {"pdq": PDQ})["decision"] == "block"  # blocks again, its count restarted
    assert ("quarantine.rearm", flooded) in [(e.action, e.item_id) for e in api.service.store.list_audit(limit=5)]


def test_the_writer_thread_runs_the_flood_guard_by_itself_within_a_flood_check_period(
    make_api: Callable[..., Api], store_url: str
) -> None:
    """Without an explicit flush: the background writer records the events, then checks the flood guard (at most
    every FLOOD_CHECK_S), so a flooded item is quarantined shortly after the match that tipped it over."""
    api = make_api(database_url=store_url, flood_max_contents=2, flood_window_s=600)
    bank(api, "known")
    flooded = item(api, "known", {"md5": MD5})
    for n in range(3):
        assert match(api, {"md5": MD5, "content_id": f"post-{n}"})["decision"] == "block"
    deadline = time.monotonic() + FLOOD_CHECK_S + 10
    while match(api, {"md5": MD5, "content_id": "post-0"})["decision"] == "block":
        assert time.monotonic() < deadline, "the writer never quarantined the flooded item"
        time.sleep(0.05)
    (held,) = api.client.get("/v1/quarantines", headers=api.headers("curate")).json["quarantines"]
    assert (held["item_id"], held["status"], held["reason"].split()[:2]) == (flooded, "active", ["matched", "3"])


def test_a_quarantine_decided_elsewhere_holds_here(make_api: Callable[..., Api], store_url: str) -> None:
    """Two services on one store (as two replicas): the quarantine lives in the store, not in a process."""
    one = make_api(database_url=store_url, flood_max_contents=1)
    two = make_api(database_url=store_url, flood_max_contents=1)
    two.keys = one.keys  # the keys live in the shared store
    bank(one, "known")
    flooded = item(one, "known", {"md5": MD5})
    two.sync()
    match(one, {"md5": MD5, "content_id": "a"})
    match(one, {"md5": MD5, "content_id": "b"})
    one.service.after.events.flush()
    assert match(two, {"md5": MD5})["decision"] == "review"
    assert two.post_json(f"/v1/quarantines/{flooded}/disable", {"reason": "bad hash"}).status_code == 200
    one.sync()
    assert match(one, {"md5": MD5})["decision"] == "allow"


def test_prune_drops_old_events_but_keeps_those_open_reviews_need(svc: Api) -> None:
    bank(svc, "known")
    bank(svc, "maybe", action="review")
    item(svc, "known", {"md5": MD5})
    item(svc, "maybe", {"md5": "1" * 32})
    match(svc, {"md5": MD5, "content_id": "old-block"})
    match(svc, {"md5": "1" * 32, "content_id": "old-review"})
    svc.service.after.events.flush()
    from hashsvc.store import aftermatch
    from hashsvc.store.transactions import utcnow

    aftermatch.prune(svc.service.store.engine, utcnow())
    assert [e["content_id"] for e in events(svc)] == ["old-review"]


def test_metrics_count_events_reviews_and_quarantines(svc: Api) -> None:
    bank(svc, "maybe", action="review")
    item(svc, "maybe", {"md5": MD5})
    match(svc, {"md5": MD5, "content_id": secrets.token_hex(4)})
    svc.service.after.events.flush()
    token = svc.service.store.create_api_key("prom", ["metrics"], actor="test")[1]
    text = svc.client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).get_data(as_text=True)
    assert 'hashsvc_events_total{decision="review",type="match"}' in text
    assert "hashsvc_reviews_open 1.0" in text
    assert "hashsvc_items_quarantined 0.0" in text
    assert "hashsvc_webhook_backlog 0.0" in text
