"""Local features of videos (hashsvc.features.video): a video item added from a file keeps the ORB features of a
bounded set of keyframes, and a query video the vPDQ stage did not block is matched against them, so a clip
cropped, pillarboxed and captioned (which moves every frame's PDQ past vPDQ's distance) is still blocked; an
unrelated video is not. Through the HTTP API on SQLite and PostgreSQL, with the bank switch, the setting, the
key's disclosure, replicas and snapshots; and the picker, codec and rule as units."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_fixtures import Api
from PIL import Image, ImageDraw
from videos import clip, clip_frames, encode

from hashsvc.config import load_settings
from hashsvc.features import Features, Verification, codec
from hashsvc.features import video as video_features
from hashsvc.features.live import VIDEO_SNAPSHOT_NAME, LiveFeatures
from hashsvc.service.service import Service
from hashsvc.service.video_hashing import hash_video
from hashsvc.store import Actor, Store
from hashsvc.store import features as feature_rows

pytest_plugins = ["store_fixtures"]

SECONDS = 8.0


def _cropped_pillarboxed_captioned(rgb: np.ndarray) -> np.ndarray:
    """10 % cut from every side, squeezed to 4:3 inside black side bars, an opaque caption band at the bottom:
    the edit vPDQ misses in scripts/bench_video_robustness.py, plus a caption."""
    image = Image.fromarray(rgb)
    w, h = image.size
    inner = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    inner = inner.resize((round(inner.width * h / inner.height * 0.75), h))
    canvas = Image.new("RGB", (w, h))
    canvas.paste(inner, ((w - inner.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, h - 30, w, h), fill=(0, 0, 0))
    draw.text((10, h - 22), "BREAKING: shared 10,000 times", fill=(255, 255, 255))
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def original() -> bytes:
    return clip(SECONDS, seed=21)


@pytest.fixture(scope="module")
def edited() -> bytes:
    return encode([_cropped_pillarboxed_captioned(f) for f in clip_frames(SECONDS, seed=21)])


@pytest.fixture(scope="module")
def unrelated() -> bytes:
    return clip(SECONDS, seed=22)


@pytest.fixture
def video_api(make_api: Callable[..., Api], store_url: str) -> Callable[..., Api]:
    """An API over the back end under test (SQLite, PostgreSQL)."""
    return lambda **overrides: make_api(database_url=store_url, **overrides)


def _post_video(api: Api, path: str, data: bytes, scope: str) -> Any:
    headers = {**api.headers(scope), "Content-Type": "video/mp4"}
    return api.client.post(path, data=data, headers=headers)


def _bank_with_video(api: Api, data: bytes, **bank: Any) -> int:
    assert api.post_json("/v1/banks", {"name": "videos", "category": "terror", **bank}).status_code == 201
    added = _post_video(api, "/v1/banks/videos/items", data, "curate")
    assert added.status_code == 201, added.json
    api.sync()
    return int(added.json["id"])


def _match(api: Api, data: bytes, scope: str = "match") -> dict[str, Any]:
    response = _post_video(api, "/v1/match", data, scope)
    assert response.status_code == 200, response.json
    return response.json


# --------------------------------------------------------------------------------------------------- the API


def test_an_edited_clip_vpdq_misses_is_blocked_by_its_keyframes(
    video_api: Callable[..., Api], original: bytes, edited: bytes, unrelated: bytes
) -> None:
    api = video_api()
    item_id = _bank_with_video(api, original)
    answer = _match(api, edited)
    assert answer["decision"] == "block"
    assert [(m["algorithm"], m["variant"]) for m in answer["matches"]] == [("orb", "video")]  # vPDQ alone: allow
    [match] = answer["matches"]
    assert match["item_id"] == item_id and match["bank"] == "videos" and match["action"] == "block"
    assert match["frames"] >= video_features.RULE.min_frames and match["inliers"] >= video_features.RULE.min_inliers
    assert match["query_time_ranges"] and match["item_time_ranges"]
    assert all(0 <= start <= end <= SECONDS for start, end in match["item_time_ranges"])
    assert _match(api, unrelated)["decision"] == "allow"


def test_the_stage_does_not_run_when_vpdq_already_blocks(video_api: Callable[..., Api], original: bytes) -> None:
    api = video_api()
    _bank_with_video(api, original)
    answer = _match(api, original)
    assert answer["decision"] == "block" and "orb" not in {m["algorithm"] for m in answer["matches"]}


def test_the_bank_switch_turns_the_stage_off_for_its_video_items(
    video_api: Callable[..., Api], original: bytes, edited: bytes
) -> None:
    api = video_api()
    _bank_with_video(api, original)
    switched = api.client.patch("/v1/banks/videos", json={"features": False}, headers=api.headers("curate"))
    assert switched.status_code == 200
    assert _match(api, edited)["decision"] == "allow"
    api.client.patch("/v1/banks/videos", json={"features": True}, headers=api.headers("curate"))
    assert _match(api, edited)["decision"] == "block"


def test_with_the_setting_off_no_keyframes_are_extracted_or_stored(
    video_api: Callable[..., Api], original: bytes, edited: bytes
) -> None:
    api = video_api(features=False)
    item_id = _bank_with_video(api, original)
    assert feature_rows.features_of(api.service.store.engine, [item_id]) == {}
    assert len(api.service.live.features.video) == 0
    assert _match(api, edited)["decision"] == "allow"


def test_decision_only_keys_see_no_inliers_or_times(
    video_api: Callable[..., Api], original: bytes, edited: bytes
) -> None:
    api = video_api()
    _bank_with_video(api, original)
    created = api.post_json("/v1/keys", {"name": "pipeline", "scopes": ["match"], "disclosure": "decision"},
                            scope="admin")  # fmt: skip
    api.keys["decision"] = created.json["key"]
    [match] = _match(api, edited, scope="decision")["matches"]
    assert match == {"bank": "videos", "category": "terror", "reference": None, "algorithm": "orb",
                     "variant": "video", "action": "block"}  # fmt: skip


def test_a_partners_vpdq_item_has_no_keyframes(video_api: Callable[..., Api], original: bytes) -> None:
    api = video_api()
    signal = hash_video(original).to_dict()["vpdq"]
    assert api.post_json("/v1/banks", {"name": "videos", "category": "terror"}).status_code == 201
    added = api.post_json("/v1/banks/videos/items", {"hashes": {"vpdq": signal}})
    assert added.status_code == 201, added.json
    assert feature_rows.features_of(api.service.store.engine, [added.json["id"]]) == {}


def test_replicas_and_snapshots_carry_the_keyframes(
    video_api: Callable[..., Api], original: bytes, edited: bytes
) -> None:
    api = video_api()
    item_id = _bank_with_video(api, original)
    replica = Service(api.service.settings)  # another process on the same store
    try:
        replica.live.load()
        assert replica.match_image(edited)["decision"] == "block"
        api.client.patch(f"/v1/items/{item_id}", json={"status": "disabled", "reason": "test"},
                         headers=api.headers("curate"))  # fmt: skip
        replica.live.catch_up()
        assert len(replica.live.features.video) == 0 and replica.match_image(edited)["decision"] == "allow"
        api.client.patch(f"/v1/items/{item_id}", json={"status": "active"}, headers=api.headers("curate"))
        replica.live.catch_up()
        assert replica.live.save_snapshots()
    finally:
        replica.close()
    overrides = {"data_dir": api.service.settings.data_dir, "database_url": api.service.settings.database_url,
                 "snapshot_interval_s": 0}  # fmt: skip
    restarted = Service(load_settings(overrides, environ={}))
    try:
        restarted.live.load()
        assert restarted.live.sizes()["orb-video"] > 0  # keyframes, from the snapshots
        assert restarted.match_image(edited)["decision"] == "block"
    finally:
        restarted.close()


def test_keyframes_load_from_the_store_and_a_missing_video_snapshot_means_a_rebuild(
    store: Store, tmp_path: Path
) -> None:
    store.create_bank("b", category="terror", actor=Actor("analyst"))
    keyframes = (video_features.Keyframe(0.0, _features(1)), video_features.Keyframe(3.0, _features(2)))
    row = (video_features.ALGORITHM, len(keyframes), video_features.encode(keyframes))
    item = store.add_item("b", {"md5": f"{7:032x}"}, actor=Actor("analyst"), features=row).id
    expected = {video_features.keyframe_key(item, 0), video_features.keyframe_key(item, 1)}
    live = LiveFeatures(store, tmp_path, kind="flat")
    live.load()
    assert set(live.video.owners()) == expected and len(live.index) == 0  # not an image item's features
    live.save()
    (tmp_path / VIDEO_SNAPSHOT_NAME).unlink()  # e.g. snapshots written before video keyframes existed
    again = LiveFeatures(store, tmp_path, kind="flat")
    again.load()
    assert set(again.video.owners()) == expected and again.sequence == store.max_sequence()


# ----------------------------------------------------------------------------------------------------- units


def _features(seed: int, count: int = 40) -> Features:
    rng = np.random.default_rng(seed)
    return Features(rng.uniform(0, 384, (count, 2)).astype(np.float32),
                    rng.integers(0, 256, (count, 32), dtype=np.uint8))  # fmt: skip


def _code(bit: int) -> bytes:
    """A PDQ whose first `bit` bits are set: codes n and m are |n - m| bits apart."""
    return (((1 << bit) - 1) << (256 - bit)).to_bytes(32, "big") if bit else bytes(32)


def test_the_picker_keeps_at_most_its_limit_spread_over_the_whole_stream() -> None:
    picker = video_features.KeyframePicker(4, min_change=0, extract=lambda gray: _features(int(gray[0, 0])))
    for n in range(100):
        picker.offer(_code(n % 2), float(n), np.full((2, 2), n, np.float32))
    times = [k.timestamp for k in picker.keyframes()]
    assert len(times) <= 4 and times[0] == 0.0 and times[-1] >= 50.0  # not bunched at the start
    gaps = np.diff(times)
    assert (gaps == gaps[0]).all()  # evenly spaced among the candidates


def test_the_picker_skips_frames_too_close_to_the_last_keyframe_and_flat_frames() -> None:
    extracted: list[float] = []

    def extract(gray: np.ndarray) -> Features:
        extracted.append(float(gray[0, 0]))
        return _features(1, count=5) if gray[0, 0] == 3 else _features(1)

    picker = video_features.KeyframePicker(16, min_change=40, extract=extract)
    for n, bits in enumerate([0, 10, 40, 41, 90, 200]):  # 10 and 40 are within 40 bits of frame 0's code
        picker.offer(_code(bits), float(n), np.full((2, 2), n, np.float32))
    assert extracted == [0.0, 3.0, 4.0, 5.0]  # ORB runs only on candidates
    assert [k.timestamp for k in picker.keyframes()] == [0.0, 4.0, 5.0]  # frame 3 is flat (5 keypoints)


def test_keyframes_round_trip_through_the_codec_and_damage_is_refused() -> None:
    keyframes = (video_features.Keyframe(0.0, _features(1)), video_features.Keyframe(12.5, _features(2, 7)))
    blob = video_features.encode(keyframes)
    back = video_features.decode(blob)
    assert [k.timestamp for k in back] == [0.0, 12.5]
    for decoded, kept in zip(back, keyframes, strict=True):
        assert np.array_equal(decoded.features.descriptors, kept.features.descriptors)
        assert np.array_equal(decoded.features.positions, kept.features.positions)
    for damaged in (blob[:-1], blob + b"\0", b"\2" + blob[1:], blob[:1]):
        with pytest.raises(codec.FeatureCodecError):
            video_features.decode(damaged)
    with pytest.raises(ValueError):
        video_features.encode([keyframes[0]] * (video_features.MAX_KEYFRAMES + 1))


def test_the_rule_counts_distinct_query_frames_that_verify() -> None:
    rule = video_features.VideoRule(min_frames=2, min_inliers=30, min_ratio=0.3)
    strong, weak, scattered = Verification(40, 80), Verification(29, 30), Verification(40, 200)
    hit = video_features.FrameHit
    assert rule.passes([hit(0.0, 0, strong), hit(1.0, 3, strong)])
    assert not rule.passes([hit(0.0, 0, strong), hit(0.0, 1, strong)])  # one query frame twice
    assert not rule.passes([hit(0.0, 0, strong), hit(1.0, 1, weak), hit(2.0, 2, scattered)])


def test_keys_name_the_item_and_removal_finds_every_keyframe_of_a_range() -> None:
    keys = [video_features.keyframe_key(item, k) for item in (5, 6, 9) for k in range(video_features.MAX_KEYFRAMES)]
    assert {video_features.item_of_key(k) for k in keys} == {5, 6, 9}
    removed = video_features.keys_in_range(keys, 6, 8)
    assert {video_features.item_of_key(k) for k in removed} == {6} and len(removed) == video_features.MAX_KEYFRAMES
