"""Local features: extraction is bounded, the codec round-trips and refuses damage, verification tells a crop from
an unrelated picture, the FAISS index finds what pairwise matching finds, and snapshots round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from images import encode, photo
from PIL import Image

from hashsvc import media
from hashsvc.features import (
    MAX_QUERY,
    MAX_STORED,
    QUERY_WORK_SIDE,
    Features,
    codec,
    correspondences,
    extract,
    extract_query,
    orb,
    verify,
    verify_pairs,
)
from hashsvc.features import snapshot as feature_snapshot
from hashsvc.features.index import FeatureIndex
from hashsvc.index.snapshot import SnapshotError
from hashsvc.service import feature_policy


def _features(image: Image.Image, limit: int = MAX_STORED) -> Features:
    """Features as the service computes them: from the decoded upload."""
    return extract(media.decode_first(encode(image)).pixels, limit)


def _upload(image: Image.Image) -> Features:
    """An upload's features as the match path extracts them (fewer, from a smaller working image)."""
    return extract_query(media.decode_first(encode(image)).pixels)


def _offgrid_crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * 0.13), round(h * 0.04), w - round(w * 0.03), h - round(h * 0.12)))


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    return [photo(640, 480, seed) for seed in range(4)]


@pytest.fixture(scope="module")
def stored(originals: list[Image.Image]) -> list[Features]:
    return [_features(image) for image in originals]


def test_extraction_is_bounded_and_flat_images_have_none(originals: list[Image.Image]) -> None:
    found = _features(originals[0])
    assert 0 < len(found) <= MAX_STORED
    assert found.descriptors.shape == (len(found), 32) and found.descriptors.dtype == np.uint8
    assert found.positions.shape == (len(found), 2) and found.positions.max() <= 512
    assert len(_features(originals[0], 40)) <= 40
    assert len(extract(Image.new("RGB", (300, 200), (90, 90, 90)))) == 0


def test_uploads_are_described_smaller_and_with_fewer_features_than_stored_items(
    originals: list[Image.Image],
) -> None:
    stored, upload = _features(originals[0]), _upload(originals[0])
    assert 0 < len(upload) <= MAX_QUERY < MAX_STORED and len(upload) < len(stored)
    assert upload.positions.max() <= QUERY_WORK_SIDE < stored.positions.max() <= orb.WORK_SIDE
    # The strongest corners, at the query's scale: the same image as an upload verifies with most of them.
    found = verify(stored, upload)
    assert feature_policy.counts(found) and found.ratio > 0.8, found


def test_codec_round_trips_and_stays_within_ten_kib(stored: list[Features]) -> None:
    blob = codec.encode(stored[0])
    assert len(blob) <= 3 + MAX_STORED * codec.ROW_BYTES <= 10 * 1024 + 3
    back = codec.decode(blob)
    assert np.array_equal(back.descriptors, stored[0].descriptors)
    assert np.array_equal(back.positions, stored[0].positions)
    assert len(codec.decode(codec.encode(Features.empty()))) == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:2],  # truncated header
        lambda b: b[:-1],  # truncated payload
        lambda b: bytes([9]) + b[1:],  # unknown version
        lambda b: b[:1] + (MAX_STORED + 1).to_bytes(2, "little") + b[3:],  # count beyond the bound
        lambda b: b + b"\0",  # trailing bytes
    ],
)
def test_codec_refuses_damaged_blobs(stored: list[Features], damage: object) -> None:
    with pytest.raises(codec.FeatureCodecError):
        codec.decode(damage(codec.encode(stored[0])))  # type: ignore[operator]


def test_an_offgrid_crop_verifies_and_unrelated_pictures_do_not(
    originals: list[Image.Image], stored: list[Features]
) -> None:
    crop = _upload(_offgrid_crop(originals[0]))
    found = verify(stored[0], crop)
    assert feature_policy.counts(found), found
    assert found.inliers >= 2 * feature_policy.MIN_INLIERS and found.ratio > 0.8  # a wide margin
    for other in stored[1:]:
        chance = verify(other, crop)
        assert not feature_policy.counts(chance), chance
        assert chance.inliers < feature_policy.MIN_INLIERS // 2


def test_verification_needs_one_consistent_transform() -> None:
    rng = np.random.default_rng(3)
    query = rng.uniform(0, 500, (60, 2)).astype(np.float32)
    angle, scale, shift = 0.1, 1.25, np.array([30, -12])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mapped = (query @ rotation.T + shift).astype(np.float32)
    assert verify_pairs(query, mapped).inliers == 60
    scrambled = mapped[rng.permutation(60)]
    assert verify_pairs(query, scrambled).inliers < 10
    assert verify_pairs(query[:5], mapped[:5]).inliers == 0  # fewer than MIN_PAIRS: no verdict at all


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_the_index_finds_the_item_pairwise_matching_finds(
    kind: str, originals: list[Image.Image], stored: list[Features]
) -> None:
    index = FeatureIndex(kind)  # type: ignore[arg-type]
    for item_id, features in enumerate(stored, start=100):
        index.add(item_id, features)
    assert len(index) == len(stored) and index.rows == sum(len(f) for f in stored)
    query = _upload(_offgrid_crop(originals[2]))
    candidates = index.candidates(query)
    assert candidates and candidates[0].item_id == 102
    via_index = verify_pairs(candidates[0].query_xy, candidates[0].stored_xy)
    pairwise = verify_pairs(*correspondences(stored[2], query))
    assert feature_policy.counts(via_index)
    if kind == "flat":  # exact neighbours: the same correspondences as matching the pair alone, give or take ties
        assert abs(len(candidates[0].query_xy) - pairwise.pairs) <= 0.1 * pairwise.pairs
    for other in candidates[1:]:
        assert not feature_policy.counts(verify_pairs(other.query_xy, other.stored_xy))


def test_removed_items_stop_being_candidates_and_can_come_back(
    originals: list[Image.Image], stored: list[Features]
) -> None:
    index = FeatureIndex("hnsw")
    index.add(1, stored[1])
    index.add(1, stored[1])  # a replayed 'activate' adds nothing
    assert index.rows == len(stored[1])
    query = _upload(_offgrid_crop(originals[1]))
    assert [c.item_id for c in index.candidates(query)] == [1]
    index.remove({1})
    assert 1 not in index and index.candidates(query) == [] and index.dead_rows == len(stored[1])
    index.add(1, stored[1])
    assert [c.item_id for c in index.candidates(query)] == [1]
    compacted = index.compacted()
    assert compacted.rows == len(stored[1]) and compacted.dead_rows == 0
    assert [c.item_id for c in compacted.candidates(query)] == [1]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_snapshots_round_trip_without_removed_items(
    kind: str, tmp_path: Path, originals: list[Image.Image], stored: list[Features]
) -> None:
    index = FeatureIndex(kind)  # type: ignore[arg-type]
    for item_id, features in enumerate(stored, start=1):
        index.add(item_id, features)
    index.remove({2})
    path = tmp_path / "features.fidx"
    feature_snapshot.save(path, index, sequence=41)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = feature_snapshot.load(path)
    assert loaded.kind == kind and loaded.sequence == 41 and len(loaded) == 3 and 2 not in loaded
    for item_id in (1, 3, 4):
        query = _upload(_offgrid_crop(originals[item_id - 1]))
        assert loaded.candidates(query)[0].item_id == item_id
    assert all(c.item_id != 2 for c in loaded.candidates(_upload(_offgrid_crop(originals[1]))))


def test_damaged_snapshots_are_refused(tmp_path: Path, stored: list[Features]) -> None:
    index = FeatureIndex("flat")
    index.add(1, stored[0])
    path = tmp_path / "features.fidx"
    feature_snapshot.save(path, index, sequence=1)
    raw = path.read_bytes()
    for damaged in (raw[:20], raw[:-5], raw[:-40] + bytes(40), b"X" + raw[1:]):
        path.write_bytes(damaged)
        with pytest.raises(SnapshotError):
            feature_snapshot.load(path)


def test_an_ivf_index_trains_once_it_is_big_enough_and_keeps_finding_items(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, originals: list[Image.Image], stored: list[Features]
) -> None:
    from hashsvc.features import index as index_module

    monkeypatch.setattr(index_module, "IVF_MIN_ROWS", 2048)
    rng = np.random.default_rng(5)
    pool = np.concatenate([f.descriptors for f in stored])
    index = FeatureIndex("ivf")
    for item_id, features in enumerate(stored, start=1):
        index.add(item_id, features)
    assert index._trained_rows == 0  # still exact
    for filler in range(100, 130):  # real descriptors with 5% of bits flipped, at random places
        picked = pool[rng.integers(len(pool), size=200)]
        noise = np.packbits(rng.random((200, 256)) < 0.05, axis=1)
        index.add(filler, Features(rng.uniform(0, 500, (200, 2)).astype(np.float32), picked ^ noise))
    assert 2048 <= index._trained_rows <= index.rows < 2 * index._trained_rows  # retrained at each doubling
    for item_id in (1, 3):
        query = _upload(_offgrid_crop(originals[item_id - 1]))
        best = index.candidates(query)[0]
        assert best.item_id == item_id and feature_policy.counts(verify_pairs(best.query_xy, best.stored_xy))
    path = tmp_path / "features.fidx"
    feature_snapshot.save(path, index, sequence=9)
    loaded = feature_snapshot.load(path)
    assert loaded.kind == "ivf" and len(loaded) == len(index) and loaded._trained_rows == index.rows
    query = _upload(_offgrid_crop(originals[1]))
    assert loaded.candidates(query)[0].item_id == 2
    assert loaded.compacted().candidates(query)[0].item_id == 2


def test_faiss_searches_on_one_thread_from_any_thread() -> None:
    """The server's request threads search the index: FAISS must not run them on an OpenMP team (one thread per
    core by default in every thread but the one that imported it; its idle threads spin, docs/local-features.md
    round 4). In a fresh interpreter, so that nothing imported FAISS before `features.native` did."""
    import os
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from hashsvc.features import native\n"
        "faiss = native.faiss()\n"
        "seen = []\n"
        "thread = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))\n"
        "thread.start(); thread.join()\n"
        "print(faiss.omp_get_max_threads(), seen[0], os.cpu_count())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", "import os\n" + code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    main_thread, other_thread, cores = (int(v) for v in done.stdout.split())
    assert (main_thread, other_thread) == (1, 1), f"OpenMP threads {main_thread}/{other_thread}, {cores} cores"
