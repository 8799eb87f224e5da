"""pHash and dHash of a query's rotations and flips: exact, looked up, and what they change in a decision."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from api_fixtures import Api
from images import encode, photo
from PIL import Image

from hashsvc.hashes import compute, hamming
from hashsvc.hashes.dihedral64 import VARIANT_TRANSPOSE, dihedral_short_hashes
from hashsvc.service import query_views
from hashsvc.service.hashing import hash_image


@pytest.mark.parametrize("size", [(150, 100), (401, 397), (777, 433)])
def test_each_variant_is_the_hash_of_the_image_really_turned(size: tuple[int, int]) -> None:
    # 401 x 397 and 777 x 433 are reduced by a box factor that does not divide them: the incomplete last box
    # lands on the other side after a mirror, so a shortcut that mirrors the reduced image would be off.
    image = photo(*size, seed=3)
    variants = dihedral_short_hashes(image)
    for name, transpose in VARIANT_TRANSPOSE.items():
        turned = image if transpose is None else image.transpose(transpose)
        gray = compute.hashing_gray(turned)
        assert variants[name] == (compute.phash(gray), compute.dhash(gray)), name


def test_the_variants_follow_pdqs_names() -> None:
    # Variant k of the 64-bit hashes is the same turn as PDQ's variant k.
    image = photo(320, 240, seed=5)
    turned = image.transpose(Image.Transpose.ROTATE_90)
    pdq = hash_image(encode(image, quality=95), dihedral=True)
    assert pdq.pdq.variants is not None and pdq.short_variants is not None
    direct = hash_image(encode(turned, quality=95))
    assert hamming(pdq.pdq.variants["rot90"], direct.pdq.code) <= 8  # re-encoding noise only
    assert hamming(pdq.short_variants["rot90"][0], direct.phash) <= 4


def test_a_dihedral_query_sends_every_view_and_turn_to_the_index() -> None:
    hashes = hash_image(encode(photo(320, 240, seed=1)), dihedral=True, extras="query")
    codes = query_views.short_codes(hashes)
    assert codes["phash"][0] == ("original", hashes.phash)
    variants = [variant for variant, _ in codes["dhash"]]
    assert {"flipy", "rot90", "flipminus1"} <= set(variants) and len(variants) == len(set(variants))
    assert query_views.is_turned("flipy") and query_views.is_turned("trim:rot270")
    assert not query_views.is_turned("trim") and not query_views.is_turned("original")
    assert query_views.view_of("trim:rot90") == "trim" and query_views.view_of("rot180") == "original"
    plain = hash_image(encode(photo(320, 240, seed=1)), extras="query")  # not dihedral: upright codes only
    assert [variant for variant, _ in query_views.short_codes(plain)["phash"]] == ["original"]


def mirror_half_q60(image: Image.Image) -> bytes:
    """The README's walk-through edit: mirror, half size, JPEG quality 60."""
    edited = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    edited = edited.resize((round(edited.width / 2), round(edited.height / 2)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    edited.save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


# Two of the corpus JPEGs the issue found allowed after mirror + 50% + q60 (PDQ at 38 and 44 from the stored
# views, where only the upright pHash/dHash had been computed, which a mirrored query cannot match).
ESCAPED = ["scratch-backgrounds/Outdoors__brick-wall1.jpg", "pypi-bundled/perception__image6.jpg"]


@pytest.mark.shared
def test_mirrored_shrunk_recompressed_uploads_are_blocked(api: Api, corpus_dir: Path) -> None:
    assert api.post_json("/v1/banks", {"name": "known", "category": "csam"}).status_code == 201
    for name in ESCAPED:
        added = api.upload("/v1/banks/known/items", (corpus_dir / name).read_bytes(), "curate", reference=name)
        assert added.status_code == 201, added.json
    api.sync()
    for name in ESCAPED:
        with Image.open(corpus_dir / name) as opened:
            response = api.upload("/v1/match", mirror_half_q60(opened.convert("RGB")))
        body = response.json
        assert body["decision"] == "block", (name, body)
        blocking = [m for m in body["matches"] if m["action"] == "block"]
        assert {m["reference"] for m in blocking} == {name} and {m["algorithm"] for m in blocking} == {"pdq"}
        assert any("corroborated" in m.get("note", "") for m in blocking)
