"""Video rows in the store, on SQLite and PostgreSQL: a video item's frame list is written with the item in one
transaction and goes with it; banks' vPDQ rules; the bank's video items for export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.hashes import vpdq
from hashsvc.service.live_index import LiveIndex
from hashsvc.store import Store
from hashsvc.store import video as video_store

FEATURES = [vpdq.Feature(bytes([n]) * 32, 100 - n, float(n), n * 30) for n in range(5)]


def add_video(store: Store, ref: str) -> int:
    codes = [("pdq", f.code) for f in FEATURES] + [("md5", b"\x01" * 16)]
    item = store.add_item("videos", codes, actor="test", external_ref=ref,
                          with_rows=video_store.frame_writer(FEATURES), video=True)  # fmt: skip
    return item.id


def test_frames_rules_and_export_listing(store: Store) -> None:
    store.create_bank("videos", category="terror", actor="test")
    first, second = add_video(store, "a"), add_video(store, "b")
    store.add_item("videos", {"md5": "0" * 32}, actor="test", external_ref="still")
    assert video_store.frames_of(store.engine, [first, second, 999]) == {first: FEATURES, second: FEATURES}
    assert list(video_store.video_items_of_bank(store.engine, "videos", page=1)) == [(first, "a"), (second, "b")]
    store.disable_item(first, reason="false positive", actor="test")
    assert list(video_store.video_items_of_bank(store.engine, "videos")) == [(second, "b")]
    store.delete_item(second, actor="test")
    assert video_store.frames_of(store.engine, [second]) == {}  # the frame list goes with its item

    assert video_store.all_rules(store.engine) == {}
    video_store.set_rules(store.engine, "videos", video_store.VideoRules(70.0, 10.0, 40))
    video_store.set_rules(store.engine, "videos", video_store.VideoRules(75.0, 5.0, 50))
    assert video_store.all_rules(store.engine) == {"videos": video_store.VideoRules(75.0, 5.0, 50)}
    with pytest.raises(ValidationError):
        video_store.set_rules(store.engine, "videos", video_store.VideoRules(120.0))
    with pytest.raises(NotFoundError):
        video_store.set_rules(store.engine, "nope", video_store.VideoRules())
    store.delete_bank("videos", actor="test")
    assert video_store.all_rules(store.engine) == {}


def test_a_video_item_may_hold_more_hashes_than_an_image_item(store: Store) -> None:
    store.create_bank("videos", category="terror", actor="test")
    many = [("pdq", n.to_bytes(32, "big")) for n in range(1, 200)]
    with pytest.raises(ValidationError, match="at most 64"):
        store.add_item("videos", many, actor="test")
    assert len(store.add_item("videos", many, actor="test", video=True).hashes) == 199


def test_video_frames_have_their_own_pdq_index_which_pdq_searches_include(store: Store, tmp_path: Path) -> None:
    store.create_bank("videos", category="terror", actor="test")
    still_code = bytes([0xF0]) * 32
    still = store.add_item("videos", [("pdq", still_code)], actor="test", external_ref="still")
    first = add_video(store, "a")
    live = LiveIndex(store, tmp_path / "snapshots")
    live.load()
    assert (live.sizes()["pdq"], live.sizes()["pdq-frames"]) == (6, 5)
    queries = np.frombuffer(still_code + FEATURES[0].code, dtype=np.uint8).reshape(2, 32)
    owner_of = {h.id: item.id for item in (still, store.get_item(first)) for h in item.hashes}

    def found(part: str | None) -> list[set[int]]:
        return [{owner_of[i] for i in ids.tolist()} for ids, _ in live.search("pdq", queries, 0, part=part)]

    assert found(None) == [{still.id}, {first}]
    assert found("stills") == [{still.id}, set()] and found("frames") == [set(), {first}]

    second = add_video(store, "b")  # reaches the index through the change log, into the frames part
    owner_of.update({h.id: second for h in store.get_item(second).hashes})
    live.catch_up()
    assert found("frames") == [set(), {first, second}] and live.sizes()["pdq-frames"] == 10
    store.disable_item(first, reason="test", actor="test")
    live.catch_up()
    assert found(None) == [{still.id}, {second}]

    # Both parts are saved and loaded together; a pdq snapshot without its frames companion (written before
    # the split, holding the frames too) is not used: both are rebuilt from the store.
    assert live.save_snapshots()
    reloaded = LiveIndex(store, tmp_path / "snapshots")
    reloaded.load()
    assert reloaded.sizes() == live.sizes() and reloaded.sequence == live.sequence
    (tmp_path / "snapshots" / "pdq-frames.hidx").unlink()
    rebuilt = LiveIndex(store, tmp_path / "snapshots")
    rebuilt.load()
    assert (rebuilt.sizes()["pdq"], rebuilt.sizes()["pdq-frames"]) == (6, 5)
