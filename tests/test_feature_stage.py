"""The local-feature stage through the HTTP API: an off-grid crop the hashes miss is blocked by an item added from
an image, the response says so (algorithm "orb", inliers, ratio), and the stage obeys the bank switch, the
setting, the key's disclosure, replicas and snapshots."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from api_fixtures import Api
from images import encode, photo
from PIL import Image

from hashsvc.config import load_settings
from hashsvc.features import MAX_QUERY
from hashsvc.service import feature_policy
from hashsvc.service.service import Service

ORIGINAL = photo(640, 480, seed=21)
UNRELATED = photo(640, 480, seed=22)


def _crop(image: Image.Image) -> Image.Image:
    """18% cut from the left, 16% from the bottom, 2% from the others: off every stored crop's grid."""
    w, h = image.size
    return image.crop((round(w * 0.18), round(h * 0.02), w - round(w * 0.02), h - round(h * 0.16)))


CROP = encode(_crop(ORIGINAL))


def _bank_with_original(api: Api, **bank: Any) -> int:
    assert api.post_json("/v1/banks", {"name": "cases", "category": "csam", **bank}).status_code == 201
    added = api.upload("/v1/banks/cases/items", encode(ORIGINAL), scope="curate", reference="case-7")
    assert added.status_code == 201, added.json
    api.sync()
    return int(added.json["id"])


def _match(api: Api, data: bytes, scope: str = "match") -> dict[str, Any]:
    response = api.upload("/v1/match", data, scope=scope)
    assert response.status_code == 200, response.json
    return response.json


def test_an_offgrid_crop_the_hashes_miss_is_blocked_by_local_features(api: Api) -> None:
    item_id = _bank_with_original(api)
    answer = _match(api, CROP)
    assert answer["decision"] == "block"
    assert [m["algorithm"] for m in answer["matches"]] == ["orb"]  # the hashes alone would have allowed it
    [match] = answer["matches"]
    assert match["bank"] == "cases" and match["item_id"] == item_id and match["reference"] == "case-7"
    assert match["action"] == "block" and match["inliers"] >= feature_policy.MIN_INLIERS and 0.3 <= match["ratio"] <= 1
    assert _match(api, encode(UNRELATED))["decision"] == "allow"
    status = api.client.get("/v1/banks/cases", headers=api.headers("curate")).json
    assert status["features"] is True


def test_the_stage_does_not_run_when_the_hashes_already_block(api: Api) -> None:
    _bank_with_original(api)
    answer = _match(api, encode(ORIGINAL, quality=80))
    assert answer["decision"] == "block" and {m["algorithm"] for m in answer["matches"]} <= {"pdq", "phash", "dhash"}


def test_a_review_bank_sends_feature_matches_to_review(api: Api) -> None:
    _bank_with_original(api, action="review")
    answer = _match(api, CROP)
    assert answer["decision"] == "review" and answer["matches"][0]["action"] == "review"


def test_a_bank_can_switch_the_stage_off_and_on(api: Api) -> None:
    _bank_with_original(api)
    switched = api.client.patch("/v1/banks/cases", json={"features": False}, headers=api.headers("curate"))
    assert switched.status_code == 200 and switched.json["features"] is False
    assert _match(api, CROP)["decision"] == "allow"
    api.client.patch("/v1/banks/cases", json={"features": True}, headers=api.headers("curate"))
    assert _match(api, CROP)["decision"] == "block"
    bad = api.client.patch("/v1/banks/cases", json={"features": "yes"}, headers=api.headers("curate"))
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_request"


def test_a_bank_created_with_the_stage_off_says_so(api: Api) -> None:
    _bank_with_original(api, features=False)
    assert api.client.get("/v1/banks", headers=api.headers("curate")).json["banks"][0]["features"] is False
    assert _match(api, CROP)["decision"] == "allow"


def test_decision_only_keys_see_no_inliers(api: Api) -> None:
    _bank_with_original(api)
    created = api.post_json("/v1/keys", {"name": "pipeline", "scopes": ["match"], "disclosure": "decision"},
                            scope="admin")
    api.keys["decision"] = created.json["key"]
    [match] = _match(api, CROP, scope="decision")["matches"]
    assert match == {"bank": "cases", "category": "csam", "reference": "case-7", "algorithm": "orb",
                     "variant": "original", "action": "block"}


def test_with_the_setting_off_nothing_is_extracted_or_stored(make_api: Callable[..., Api]) -> None:
    api = make_api(features=False)
    _bank_with_original(api)
    assert api.service.live.sizes()["orb"] == 0
    assert _match(api, CROP)["decision"] == "allow"


def test_replicas_and_snapshots_carry_the_features(make_api: Callable[..., Api]) -> None:
    api = make_api()
    _bank_with_original(api)
    replica = Service(api.service.settings)  # another process on the same store
    try:
        replica.live.load()
        assert replica.match_image(CROP)["decision"] == "block"
        item = api.client.get("/v1/banks/cases/items", headers=api.headers("curate")).json["items"][0]
        api.client.patch(f"/v1/items/{item['id']}", json={"status": "disabled", "reason": "test"},
                         headers=api.headers("curate"))
        replica.live.catch_up()
        assert replica.match_image(CROP)["decision"] == "allow" and replica.live.sizes()["orb"] == 0
        api.client.patch(f"/v1/items/{item['id']}", json={"status": "active"}, headers=api.headers("curate"))
        replica.live.catch_up()
        assert replica.live.save_snapshots()
    finally:
        replica.close()
    settings = load_settings({"data_dir": api.service.settings.data_dir, "snapshot_interval_s": 0}, environ={})
    restarted = Service(settings)
    try:
        restarted.live.load()
        assert restarted.live.sizes()["orb"] == 1
        assert restarted.match_image(CROP)["decision"] == "block"
    finally:
        restarted.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])  # "ivf", the default, is exact (flat) this small: see above
def test_every_index_kind_serves(make_api: Callable[..., Api], kind: str) -> None:
    api = make_api(feature_index=kind)
    _bank_with_original(api)
    assert _match(api, CROP)["decision"] == "block"


def _features_asked_for(api: Api, monkeypatch: pytest.MonkeyPatch, data: bytes) -> int:
    """How many local features the match path asks the hashing (sandbox) job to extract from this upload."""
    asked: list[int] = []
    hash_upload = api.service._hash

    def spy(data: bytes, **options: Any) -> Any:
        asked.append(options.get("features", 0))
        return hash_upload(data, **options)

    monkeypatch.setattr(api.service, "_hash", spy)
    try:
        _match(api, data)
    finally:
        monkeypatch.undo()
    [features] = asked
    return features


def test_uploads_are_not_extracted_when_no_bank_with_the_stage_on_holds_image_items(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _features_asked_for(api, monkeypatch, CROP) == 0  # nothing stored yet
    _bank_with_original(api)
    assert _features_asked_for(api, monkeypatch, CROP) == MAX_QUERY
    # A bank of imported hashes with the stage on does not make the image bank's items reachable.
    assert api.post_json("/v1/banks", {"name": "partner", "category": "csam"}).status_code == 201
    api.client.patch("/v1/banks/cases", json={"features": False}, headers=api.headers("curate"))
    assert _features_asked_for(api, monkeypatch, CROP) == 0
    api.client.patch("/v1/banks/cases", json={"features": True}, headers=api.headers("curate"))
    assert _features_asked_for(api, monkeypatch, CROP) == MAX_QUERY
    api.client.patch("/v1/banks/cases", json={"enabled": False}, headers=api.headers("curate"))
    assert _features_asked_for(api, monkeypatch, CROP) == 0
    api.client.patch("/v1/banks/cases", json={"enabled": True}, headers=api.headers("curate"))
    assert _match(api, CROP)["decision"] == "block"


def test_a_replica_follows_a_bank_switch_through_the_change_log(make_api: Callable[..., Api]) -> None:
    api = make_api()
    _bank_with_original(api)
    replica = Service(api.service.settings)  # another process on the same store
    try:
        replica.live.load()
        assert replica.live.features.reachable
        api.client.patch("/v1/banks/cases", json={"features": False}, headers=api.headers("curate"))
        replica.live.catch_up()
        assert not replica.live.features.reachable
        assert replica.match_image(CROP)["decision"] == "allow"
        api.client.patch("/v1/banks/cases", json={"features": True}, headers=api.headers("curate"))
        replica.live.catch_up()
        assert replica.live.features.reachable and replica.match_image(CROP)["decision"] == "block"
        item = api.client.get("/v1/banks/cases/items", headers=api.headers("curate")).json["items"][0]
        api.client.delete(f"/v1/items/{item['id']}", headers=api.headers("curate"))
        replica.live.catch_up()
        assert not replica.live.features.reachable  # its only image item is gone
    finally:
        replica.close()
