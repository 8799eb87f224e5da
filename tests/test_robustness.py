"""The robustness benchmark: edit suite, border trimming, metric functions, and a tiny end-to-end run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from images import encode, photo
from PIL import Image, ImageFilter

from hashsvc.bench import robustness as rb
from hashsvc.bench.transforms import SUITE, select
from hashsvc.features import MAX_QUERY, MAX_STORED, QUERY_RESAMPLE, QUERY_WORK_SIDE
from hashsvc.hashes.augment import ANCHORS, central_crop, crop_label, index_time_variants, trim_borders
from hashsvc.service.hashing import hash_image


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return photo(200, 150, seed=3)


@pytest.mark.parametrize("transform", SUITE, ids=lambda t: t.name)
def test_transform_is_deterministic_and_has_the_size_it_claims(transform, picture) -> None:
    data = transform.encode(picture, "key")
    assert data == transform.encode(picture, "key")
    with Image.open(io.BytesIO(data)) as edited:
        assert edited.size == transform.size(picture.size)
        assert edited.format == transform.fmt


def test_seeded_edits_depend_on_the_key(picture) -> None:
    noise = select(["noise_10"])[0]
    assert noise.encode(picture, "a") != noise.encode(picture, "b")


def test_select_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="nope"):
        select(["nope"])


def _decoded(image: Image.Image, quality: int = 70) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, quality=quality))).convert("RGB")


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (30, 90, 160)])
def test_trim_finds_uniform_bars_under_jpeg_noise(picture, colour) -> None:
    canvas = Image.new("RGB", (200, 200), colour)
    canvas.paste(picture, (0, 25))  # letterbox: 25 px above and below
    trimmed = trim_borders(_decoded(canvas, quality=40))
    assert trimmed is not None
    assert abs(trimmed.width - 200) <= 3 and abs(trimmed.height - 150) <= 4


def test_trim_finds_one_sided_caption_bar(picture) -> None:
    name = select(["caption_bar"])[0]
    trimmed = trim_borders(_decoded(name.apply(picture)))
    assert trimmed is not None and abs(trimmed.height - 150) <= 4


def test_trim_finds_blurred_padding(picture) -> None:
    background = picture.resize((260, 195)).filter(ImageFilter.GaussianBlur(12))
    background.paste(picture, (30, 22))
    trimmed = trim_borders(_decoded(background, quality=85))
    assert trimmed is not None
    assert abs(trimmed.width - 200) <= 4 and abs(trimmed.height - 150) <= 4


@pytest.mark.parametrize("seed", range(4))
def test_trim_leaves_a_photo_without_borders_alone(seed) -> None:
    assert trim_borders(_decoded(photo(240, 180, seed=seed))) is None


def test_index_time_variants_are_a_grid_of_crops_plus_the_trimmed_view(picture) -> None:
    labels = [label for label, _ in index_time_variants(picture)]
    grid = [crop_label(keep, anchor) for keep in (0.95, 0.9, 0.8) for anchor in ANCHORS]
    assert labels == [*grid, "square"]  # 200 x 150: not square, so its centred square is stored too
    assert [label for label, _ in index_time_variants(picture.resize((150, 150)))] == grid
    padded = select(["pad_black_20"])[0].apply(picture)
    variants = dict(index_time_variants(padded))
    assert "trim" in variants and central_crop(picture, 0.9).size == (180, 135)
    # Crops come from the image as given, not from its trimmed view.
    assert variants["crop90"].size == central_crop(padded, 0.9).size


def test_probe_hashes_are_the_services_hashes(picture) -> None:
    data = encode(picture)
    probes, views, features = rb.probe_hashes(data)
    service = hash_image(
        data, dihedral=True, extras="query", features=MAX_QUERY, feature_side=QUERY_WORK_SIDE,
        feature_resample=QUERY_RESAMPLE,
    )
    assert views == tuple(extra.label for extra in service.extras)
    assert features is not None and service.features is not None
    assert np.array_equal(features.descriptors, service.features.descriptors)
    assert probes.pdq[0, 0].astype(">u8").tobytes() == service.pdq.code
    assert np.array([probes.phash[0]], dtype=">u8").tobytes() == service.phash
    assert int(probes.quality[0]) == service.pdq.quality


def test_stored_hashes_are_what_the_service_stores_for_an_image(picture) -> None:
    data = encode(picture)
    stored, features = rb.stored_hashes(data)
    service = hash_image(data, extras="index", features=MAX_STORED)
    assert features is not None and len(features) == len(service.features or ())
    by_label = {extra.label: extra.pdq.code for extra in service.extras}
    for k, label in enumerate(rb.LABELS):
        expected = service.pdq.code if label == "original" else by_label.get(label, service.pdq.code)
        assert stored.pdq[k].astype(">u8").tobytes() == expected


def test_sweep_and_recall_at_precision() -> None:
    positives = np.array([0, 1, 2, 5, 9])
    negatives = np.array([4, 10, 20, 30])
    curve = rb.sweep(positives, negatives, 12)
    assert curve["recall"][2] == 0.6 and curve["fp"][3] == 0 and curve["fp"][4] == 1
    assert curve["precision"][5] == 4 / 5
    # precision 1.0 holds up to threshold 3 (recall 3/5); at 9 it is 5/6.
    assert rb.recall_at_precision(curve, 1.0) == (0.6, 3)
    assert rb.recall_at_precision(curve, 0.8) == (1.0, 9)


def test_false_positive_pairs_skip_near_duplicates() -> None:
    names = ["a", "b", "c", "d"]
    distances = np.array([[0, 5, 40, 90], [7, 0, 90, 90], [40, 90, 0, 10], [90, 90, 12, 0]])
    same = rb.near_duplicate_mask(names, [("c", "d"), ("x", "a")])
    pairs = rb._pair_values(distances, same)
    assert sorted(pairs.tolist()) == [5, 40, 90, 90, 90]  # (c, d) excluded; min over both directions
    assert int((pairs <= 31).sum()) == 1


def arrays(pdq, phash, dhash, quality, md5, *, phash8=None, dhash8=None, dbal=None) -> rb.PairArrays:
    def column(values):
        return np.array(values)[:, None]

    return rb.PairArrays(column(pdq), column(phash), column(dhash), column(phash8 or phash), column(dhash8 or dhash),
                         column(quality), column(dbal or [32] * len(pdq)), np.array(md5))


def test_policy_decisions_follow_decide() -> None:
    th = rb.Thresholds(pdq=31, phash=8, dhash=8)
    # PDQ alone; low quality; 64-bit alone (far: logged; near: review); MD5; nothing; PDQ in the corroborated
    # band with and without a pHash match; the band's edge.
    a = arrays(pdq=[10, 10, 60, 60, 60, 60, 40, 40, 45], phash=[40, 40, 6, 2, 40, 40, 6, 40, 6], dhash=[40] * 9,
               quality=[100, 30, 100, 100, 100, 100, 100, 100, 100],
               md5=[False, False, False, False, True, False, False, False, False])
    assert rb.policy_decisions(a, th).tolist() == [2, 1, 0, 1, 2, 0, 2, 0, 0]


def test_policy_decisions_weigh_turned_and_degenerate_64_bit_matches() -> None:
    th = rb.Thresholds(pdq=31, phash=8, dhash=8)
    # PDQ in the band with: a pHash match through a mirrored view only (corroborates); a dHash match from a
    # degenerate view (does not). A near dHash alone: from an upright view reviews, from a turned one or from a
    # degenerate view it does not.
    a = arrays(pdq=[40, 40, 90, 90, 90], phash=[40, 40, 40, 40, 40], dhash=[40, 5, 2, 40, 2], quality=[100] * 5,
               md5=[False] * 5, phash8=[6, 40, 40, 40, 40], dhash8=[40, 5, 2, 2, 2], dbal=[32, 3, 32, 32, 3])
    assert rb.policy_decisions(a, th).tolist() == [2, 0, 1, 0, 0]


def test_extra_evidence_enters_the_full_policy() -> None:
    th = rb.Thresholds()
    a = arrays(pdq=[90, 90], phash=[40, 40], dhash=[40, 40], quality=[100, 100], md5=[False, False])
    extra = [[], [rb.Evidence("md5", 0, 0, "block", item=0)]]
    assert rb.policy_decisions(a, th, extra).tolist() == [0, 2]


def test_halves_are_stable_and_restrict_keeps_each_half_apart() -> None:
    assert rb.half_of("gcompris/x.webp") == rb.half_of("gcompris/x.webp")
    halves = [rb.half_of(f"image{k}.jpg") for k in range(200)]
    assert 70 < halves.count("tune") < 130  # about even


def test_tail_model_extrapolates_beyond_the_sample() -> None:
    rng = np.random.default_rng(0)
    distances = rng.binomial(256, 0.5, 5000)
    model = rb.tail_model(distances, 256, stored=1e7, comparisons=8)
    rows = model["rows"]
    assert rows[31]["empirical"] == 0 and 0 < rows[31]["binomial"] < 1e-20
    normal = rb.largest_safe_threshold(model, 1e-4, "expected_per_query_normal")
    assert normal >= 50
    # the fitted empirical tail decays more slowly than the normal: the advice it gives is more cautious
    assert rb.largest_safe_threshold(model, 1e-4) <= normal


def test_end_to_end_on_generated_images(tmp_path: Path) -> None:
    folder = tmp_path / "originals"
    folder.mkdir()
    for seed in range(4):  # p0, p2, p3 fall in the held-out half, p1 in the tune half
        (folder / f"p{seed}.jpg").write_bytes(encode(photo(320, 240, seed=seed + 10)))
    names = ["jpeg_q50", "rot90", "pad_black_20", "flip_h+resize_50+jpeg_q60", "crop_random_10"]
    options = rb.RunOptions(folder, tmp_path / "cache", tmp_path / "results", names, processes=1,
                            quick_negatives=True)
    document = rb.run(options)
    held_out = {m["name"]: m for m in document["methods"]["held-out"]}
    full = held_out[rb.FULL]
    assert full["recall"]["jpeg_q50"] == 1.0 and full["recall"]["rot90"] == 1.0
    assert full["recall"]["flip_h+resize_50+jpeg_q60"] == 1.0
    assert held_out["PDQ naive (HMA)"]["recall"]["rot90"] == 0.0
    assert full["fp_pairs_review"] == 0 and full["pairs"] == 3
    # the full policy is the hash stage, then the local-feature stage for what it did not block: an off-grid crop
    # the hashes miss is blocked through the features, and nothing the hash stage blocked is lost
    hash_side = held_out[rb.HASH_SIDE]
    assert full["recall"]["crop_random_10"] == 1.0 > hash_side["recall"]["crop_random_10"]
    assert all(full["recall"][name] >= hash_side["recall"][name] for name in names)
    assert full["feature_runs"] > 0 and hash_side["feature_runs"] == 0
    assert document["halves"]["held-out"]["originals"] == 3 and document["halves"]["tune"]["originals"] == 1
    # every hard negative was looked up, in one half or the other, and none was blocked or sent to review
    negatives = sum(m["negatives"] for half in ("tune", "held-out") for m in document["methods"][half]
                    if m["name"] == rb.FULL)
    assert negatives == document["hard_negatives"] > 10
    assert all(m["fp_negatives_review"] == 0 for half in ("tune", "held-out") for m in document["methods"][half]
               if m["name"] == rb.FULL)
    assert len(list((tmp_path / "cache").glob("*/p*.jpg"))) == 4 * len(names)
    written = json.loads((tmp_path / "results" / "robustness.json").read_text())
    assert written["originals"] == 4
    for png in ("recall.png", "distances.png", "recall_vs_threshold.png"):
        assert (tmp_path / "results" / png).stat().st_size > 0
    report = (tmp_path / "results" / "robustness.md").read_text()
    assert report.index("## held-out half") < report.index("## tune half")
    assert "| star_field |" in report and "| flip_h+resize_50+jpeg_q60 |" in report
    # a second run reuses the cached edits and the saved hashes; extra evidence enters the full policy only
    seen: list[tuple[str, str]] = []

    def extra(original: Path, query: Path) -> list[rb.Evidence]:
        seen.append((original.name, query.parent.name))
        return [rb.Evidence("md5", 0, 0, "block", item=0)] if query.parent.name == "crop_random_10" else []

    again = rb.run(rb.RunOptions(folder, tmp_path / "cache", tmp_path / "results", names, processes=1,
                                 plots=False, reuse_hashes=True, quick_negatives=True, extra_evidence=extra))
    redone = {m["name"]: m for m in again["methods"]["held-out"]}
    assert redone[rb.FULL]["recall"]["crop_random_10"] == 1.0
    assert redone[rb.AUGMENTS[0].name]["recall"] == held_out[rb.AUGMENTS[0].name]["recall"]
    assert ("p0.jpg", "crop_random_10") in seen and ("p0.jpg", "originals") in seen


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hashing_on_a_dask_scheduler_gives_what_local_processes_give(tmp_path: Path) -> None:
    """`--scheduler`: originals and their edits hashed by a Dask cluster's worker process, in the images' order."""
    from distributed import LocalCluster

    folder = tmp_path / "originals"
    folder.mkdir()
    for seed in range(3):
        (folder / f"p{seed}.jpg").write_bytes(encode(photo(160, 120, seed=seed + 20)))
    images = sorted(folder.iterdir())
    transforms = select(["jpeg_q50", "rot90"])
    local = rb.collect(images, folder, transforms, tmp_path / "cache", processes=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        remote = rb.collect(images, folder, transforms, tmp_path / "cache", scheduler=cluster.scheduler_address)
    assert [r.name for r in remote] == [r.name for r in local] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    for got, want in zip(remote, local, strict=True):
        assert got.md5 == want.md5 and np.array_equal(got.stored.pdq, want.stored.pdq)
        assert sorted(got.queries) == sorted(want.queries) == ["jpeg_q50", "rot90"]
        for name, query in got.queries.items():
            assert query.md5 == want.queries[name].md5
            assert np.array_equal(query.probes.pdq, want.queries[name].probes.pdq)
