"""The HTTP API through Flask's test client: what each endpoint does, and every way a request can fail."""

from __future__ import annotations

import threading
import time

import pytest
from api_fixtures import Api
from hostile import HOSTILE
from images import encode, photo
from PIL import Image

from hashsvc.hashes import to_hex
from hashsvc.service.hashing import hash_image

PROTECTED = [
    ("POST", "/v1/match", "match"),
    ("POST", "/v1/match/hashes", "match"),
    ("POST", "/v1/hash", "match"),
    ("GET", "/v1/banks", "curate"),
    ("POST", "/v1/banks", "curate"),
    ("GET", "/v1/banks/some-bank", "curate"),
    ("PATCH", "/v1/banks/some-bank", "curate"),
    ("DELETE", "/v1/banks/some-bank", "curate"),
    ("POST", "/v1/banks/some-bank/items", "curate"),
    ("POST", "/v1/banks/some-bank/items:bulk", "curate"),
    ("GET", "/v1/banks/some-bank/items", "curate"),
    ("GET", "/v1/items/1", "curate"),
    ("PATCH", "/v1/items/1", "curate"),
    ("DELETE", "/v1/items/1", "curate"),
    ("GET", "/v1/keys", "admin"),
    ("POST", "/v1/keys", "admin"),
    ("DELETE", "/v1/keys/1", "admin"),
    ("GET", "/v1/audit", "admin"),
]


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


# ------------------------------------------------------------------------------------------------ auth


@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
def test_every_protected_endpoint_refuses_missing_revoked_and_wrong_scope_keys(
    api: Api, method: str, path: str, scope: str
) -> None:
    assert_error(api.client.open(path, method=method), 401, "unauthorized")
    assert_error(api.client.open(path, method=method, headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    assert_error(api.client.open(path, method=method, headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    for other in {"match", "curate", "admin"} - {scope}:
        assert_error(api.client.open(path, method=method, headers=api.headers(other)), 403, "forbidden")
    revoked = api.service.store.create_api_key(f"revoked-{scope}", [scope], actor="test")[1]
    api.service.store.revoke_api_key(f"revoked-{scope}", actor="test")
    headers = {"Authorization": f"Bearer {revoked}"}
    assert_error(api.client.open(path, method=method, headers=headers), 401, "unauthorized")


def test_ops_endpoints_need_no_key(api: Api) -> None:
    """Except /metrics, which needs the `metrics` scope (tests/test_ops_endpoints.py)."""
    assert api.client.get("/healthz").json == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"ready": True}
    assert api.client.get("/openapi.json").json["openapi"].startswith("3.")


def test_readyz_is_503_until_the_index_is_loaded(make_api) -> None:
    api = make_api()
    api.service.live._ready.clear()
    response = api.client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert_error(api.post_json("/v1/match/hashes", {"md5": "00" * 16}, "match"), 503, "not_ready")


# ------------------------------------------------------------------------------------------- matching


def add_bank(api: Api, name: str = "csam-test", **fields: object) -> None:
    response = api.post_json("/v1/banks", {"name": name, "category": "csam", **fields})
    assert response.status_code == 201, response.json


def test_an_added_image_blocks_its_edited_copies_and_reports_why(api: Api) -> None:
    add_bank(api)
    original = photo(640, 480, seed=11)
    added = api.upload("/v1/banks/csam-test/items", encode(original), "curate", reference="NCMEC:123")
    assert added.status_code == 201, added.json
    api.sync()
    for edited in (original.resize((320, 240)), original.transpose(Image.Transpose.ROTATE_90)):
        response = api.upload("/v1/match", encode(edited, quality=70))
        assert response.status_code == 200
        body = response.json
        assert body["decision"] == "block"
        [match] = [m for m in body["matches"] if m["algorithm"] == "pdq"]
        assert match["bank"] == "csam-test"
        assert match["item_id"] == added.json["id"]
        assert match["reference"] == "NCMEC:123"
        assert match["category"] == "csam"
        assert isinstance(match["distance"], int)
        assert 0 <= match["distance"] <= match["threshold"] == 31
        assert match["action"] == "block"
        assert set(body["hashes"]) == {"pdq", "phash", "dhash", "md5", "sha256"}
        assert body["index"]["sequence"] >= 2
        assert body["took_ms"] > 0
    rotated = api.upload("/v1/match", encode(original.transpose(Image.Transpose.ROTATE_90))).json
    assert {m["variant"] for m in rotated["matches"] if m["algorithm"] == "pdq"} <= {"rot90", "rot270"}


def test_unrelated_images_are_allowed(api: Api) -> None:
    add_bank(api)
    api.upload("/v1/banks/csam-test/items", encode(photo(seed=1)), "curate")
    api.sync()
    body = api.upload("/v1/match", encode(photo(seed=2))).json
    assert body == {**body, "decision": "allow", "matches": []}


def test_raw_image_body_is_accepted(api: Api) -> None:
    response = api.client.post(
        "/v1/match", data=encode(photo()), headers={**api.headers("match"), "Content-Type": "image/jpeg"}
    )
    assert response.status_code == 200
    assert response.json["decision"] == "allow"


def test_disabling_an_item_stops_matching_and_enabling_brings_it_back(api: Api) -> None:
    add_bank(api)
    image = encode(photo(seed=3))
    item = api.upload("/v1/banks/csam-test/items", image, "curate").json
    api.sync()
    assert api.upload("/v1/match", image).json["decision"] == "block"
    no_reason = api.client.patch(f"/v1/items/{item['id']}", json={"status": "disabled"}, headers=api.headers("curate"))
    assert_error(no_reason, 400, "invalid_request")
    disabled = api.client.patch(
        f"/v1/items/{item['id']}",
        json={"status": "disabled", "reason": "false positive"},
        headers=api.headers("curate"),
    )
    assert disabled.json["status"] == "disabled"
    assert disabled.json["status_reason"] == "false positive"
    assert disabled.json["status_by"] == "curate-key"
    api.sync()
    assert api.upload("/v1/match", image).json["decision"] == "allow"
    api.client.patch(f"/v1/items/{item['id']}", json={"status": "active"}, headers=api.headers("curate"))
    api.sync()
    assert api.upload("/v1/match", image).json["decision"] == "block"


def test_a_disabled_bank_does_not_match_and_review_banks_review(api: Api) -> None:
    add_bank(api)
    add_bank(api, "terror-review", action="review")
    image = encode(photo(seed=4))
    api.upload("/v1/banks/terror-review/items", image, "curate")
    api.sync()
    assert api.upload("/v1/match", image).json["decision"] == "review"
    api.client.patch("/v1/banks/terror-review", json={"enabled": False}, headers=api.headers("curate"))
    api.sync()
    assert api.upload("/v1/match", image).json["decision"] == "allow"


def test_exact_md5_blocks_and_a_64_bit_hash_alone_only_reviews(api: Api) -> None:
    add_bank(api)
    data = encode(photo(seed=5))
    hashes = hash_image(data)
    api.post_json("/v1/banks/csam-test/items", {"hashes": {"md5": to_hex(hashes.md5)}, "reference": "m"})
    api.post_json("/v1/banks/csam-test/items", {"hashes": {"phash": to_hex(hashes.phash)}, "reference": "p"})
    api.sync()
    by_md5 = api.post_json("/v1/match/hashes", {"md5": to_hex(hashes.md5).upper()}, "match").json
    assert by_md5["decision"] == "block"
    by_phash = api.post_json("/v1/match/hashes", {"phash": to_hex(hashes.phash)}, "match").json
    assert by_phash["decision"] == "review"
    assert "never blocks" in by_phash["matches"][0]["note"]
    # Six bits off: within pHash's threshold, so listed, but alone it only corroborates.
    near = bytes([hashes.phash[0] ^ 0b111111]) + hashes.phash[1:]
    by_near = api.post_json("/v1/match/hashes", {"phash": to_hex(near)}, "match").json
    assert by_near["decision"] == "allow"
    assert [(m["action"], m["distance"]) for m in by_near["matches"]] == [("log", 6)]


def _flip_bits(code: bytes, count: int) -> bytes:
    flipped = bytearray(code)
    for bit in range(count):
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(flipped)


def test_a_pdq_match_just_beyond_threshold_blocks_when_phash_agrees_on_the_same_item(api: Api) -> None:
    add_bank(api)
    hashes = hash_image(encode(photo(seed=8)))
    stored = {"pdq": to_hex(hashes.pdq.code), "phash": to_hex(hashes.phash)}
    item = api.post_json("/v1/banks/csam-test/items", {"hashes": stored, "reference": "x"}).json
    api.sync()
    near_pdq = to_hex(_flip_bits(hashes.pdq.code, 40))
    alone = api.post_json("/v1/match/hashes", {"pdq": near_pdq}, "match").json
    assert alone["decision"] == "allow" and alone["matches"] == []
    backed = api.post_json("/v1/match/hashes", {"pdq": near_pdq, "phash": to_hex(_flip_bits(hashes.phash, 5))},
                           "match").json
    assert backed["decision"] == "block"
    pdq_match = next(m for m in backed["matches"] if m["algorithm"] == "pdq")
    assert pdq_match["item_id"] == item["id"] and pdq_match["distance"] == 40
    assert "corroborated" in pdq_match["note"]
    too_far = to_hex(_flip_bits(hashes.pdq.code, 45))
    beyond = api.post_json("/v1/match/hashes", {"pdq": too_far, "phash": to_hex(hashes.phash)}, "match").json
    assert beyond["decision"] == "review"  # the exact pHash alone
    assert all(m["algorithm"] != "pdq" for m in beyond["matches"])


def test_a_low_quality_pdq_query_is_not_used_to_block(api: Api) -> None:
    add_bank(api)
    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    api.post_json("/v1/banks/csam-test/items", {"hashes": {"pdq": pdq}})
    api.sync()
    sure = api.post_json("/v1/match/hashes", {"pdq": {"value": pdq, "quality": 90}}, "match").json
    assert sure["decision"] == "block"
    dim = api.post_json("/v1/match/hashes", {"pdq": {"value": pdq, "quality": 40}}, "match").json
    assert dim["decision"] == "review"
    assert "quality" in dim["matches"][0]["note"]
    # Below quality 30 a PDQ says too little to send anyone to review on its own (issue 12: dark, flat views).
    dark = api.post_json("/v1/match/hashes", {"pdq": {"value": pdq, "quality": 20}}, "match").json
    assert dark["decision"] == "allow"


def test_hash_batches(api: Api) -> None:
    add_bank(api)
    md5 = "0123456789abcdef0123456789abcdef"
    api.post_json("/v1/banks/csam-test/items", {"hashes": {"md5": md5}})
    api.sync()
    body = api.post_json("/v1/match/hashes", {"items": [{"md5": md5}, {"md5": "f" * 32}]}, "match").json
    assert [r["decision"] for r in body["results"]] == ["block", "allow"]
    too_many = api.post_json("/v1/match/hashes", {"items": [{"md5": md5}] * 1001}, "match")
    assert_error(too_many, 400, "invalid_request")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"pdq": "xyz"}, "invalid_hash"),
        ({"pdq": "ab" * 31}, "invalid_hash"),
        ({"nope": "ab"}, "invalid_hash"),
        ({}, "invalid_request"),
        ([], "invalid_request"),
        ({"items": []}, "invalid_request"),
        ({"items": [{"md5": 5}]}, "invalid_hash"),
        ({"pdq": {"value": "ab" * 32, "quality": "high"}}, "invalid_request"),
        ("just a string", "invalid_request"),
    ],
)
def test_bad_hash_sets_are_400_with_a_reason(api: Api, body: object, code: str) -> None:
    assert_error(api.post_json("/v1/match/hashes", body, "match"), 400, code)


def test_non_json_body_is_400(api: Api) -> None:
    response = api.client.post("/v1/match/hashes", data="{", headers=api.headers("match"))
    assert_error(response, 400, "invalid_request")


def test_hash_endpoint_returns_hashes_only(api: Api) -> None:
    body = api.upload("/v1/hash", encode(photo(200, 100))).json
    assert set(body) == {"pdq", "phash", "dhash", "md5", "sha256", "width", "height"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("path", ["/v1/match", "/v1/hash"])
def test_hostile_uploads_never_give_a_5xx(api: Api, name: str, path: str) -> None:
    data, acceptable = HOSTILE[name]
    response = api.upload(path, data)
    if "ok" in acceptable and response.status_code == 200:
        return
    assert 400 <= response.status_code < 500
    assert response.json["error"]["code"] in acceptable | {"empty"}


def test_upload_without_image_field_or_with_wrong_content_type(api: Api) -> None:
    empty_form = api.client.post(
        "/v1/match", data={"other": "x"}, headers=api.headers("match"), content_type="multipart/form-data"
    )
    assert_error(empty_form, 400, "invalid_request")
    text = api.client.post("/v1/match", data="hello", headers={**api.headers("match"), "Content-Type": "text/plain"})
    assert_error(text, 400, "invalid_request")


def test_oversized_upload_is_413(make_api) -> None:
    api = make_api(max_upload_bytes=10_000)
    response = api.client.post(
        "/v1/match", data=b"\xff" * 200_000, headers={**api.headers("match"), "Content-Type": "image/jpeg"}
    )
    assert_error(response, 413, "too_large")
    response = api.client.post(
        "/v1/match", data=b"\xff\xd8" + b"\x00" * 20_000, headers={**api.headers("match"), "Content-Type": "image/jpeg"}
    )
    assert_error(response, 413, "too_large")


def test_overload_is_answered_with_503_and_retry_after(make_api) -> None:
    api = make_api(max_inflight=1, queue_timeout_s=0.05)
    admission = api.app.extensions["hashsvc.admission"]
    holding = threading.Event()
    release = threading.Event()

    def hold_the_slot() -> None:
        with admission.slot():
            holding.set()
            release.wait(5)

    worker = threading.Thread(target=hold_the_slot)
    worker.start()
    holding.wait(5)
    started = time.monotonic()
    response = api.upload("/v1/match", encode(photo()))
    release.set()
    worker.join()
    assert_error(response, 503, "overloaded")
    assert response.headers["Retry-After"] == "1"
    assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------------------------------- curation


def test_bank_lifecycle(api: Api) -> None:
    add_bank(api, description="from NCMEC", thresholds={"pdq": 24})
    assert_error(api.post_json("/v1/banks", {"name": "csam-test", "category": "csam"}), 409, "conflict")
    assert_error(api.post_json("/v1/banks", {"name": "Bad Name", "category": "csam"}), 400, "invalid_request")
    assert_error(api.post_json("/v1/banks", {"name": "x", "category": "csam", "colour": 1}), 400, "invalid_request")
    listed = api.client.get("/v1/banks", headers=api.headers("curate")).json["banks"]
    assert [b["name"] for b in listed] == ["csam-test"]
    shown = api.client.get("/v1/banks/csam-test", headers=api.headers("curate")).json
    assert shown["thresholds"] == {"pdq": 24}
    assert shown["items"] == 0
    patched = api.client.patch("/v1/banks/csam-test", json={"action": "review"}, headers=api.headers("curate"))
    assert patched.json["action"] == "review"
    assert api.client.delete("/v1/banks/csam-test", headers=api.headers("curate")).status_code == 204
    assert_error(api.client.get("/v1/banks/csam-test", headers=api.headers("curate")), 404, "not_found")


def test_items_by_hash_get_list_page_and_delete(api: Api) -> None:
    add_bank(api)
    ids = []
    for n in range(5):
        body = {"hashes": {"md5": f"{n:032x}"}, "reference": f"ref-{n}", "metadata": {"n": n}}
        response = api.post_json("/v1/banks/csam-test/items", body)
        assert response.status_code == 201
        ids.append(response.json["id"])
    first = api.client.get("/v1/banks/csam-test/items?limit=2", headers=api.headers("curate")).json
    assert [i["id"] for i in first["items"]] == ids[:2]
    rest = api.client.get(
        f"/v1/banks/csam-test/items?after_id={first['next_after_id']}&limit=10", headers=api.headers("curate")
    ).json
    assert [i["id"] for i in rest["items"]] == ids[2:]
    assert rest["next_after_id"] is None
    assert_error(
        api.client.get("/v1/banks/csam-test/items?limit=0", headers=api.headers("curate")), 400, "invalid_request"
    )
    item = api.client.get(f"/v1/items/{ids[0]}", headers=api.headers("curate")).json
    assert item["hashes"] == [{"algorithm": "md5", "value": f"{0:032x}", "view": False}]
    noted = api.client.patch(f"/v1/items/{ids[0]}", json={"note": "checked"}, headers=api.headers("curate")).json
    assert noted["note"] == "checked"
    assert api.client.delete(f"/v1/items/{ids[0]}", headers=api.headers("curate")).status_code == 204
    assert_error(api.client.get(f"/v1/items/{ids[0]}", headers=api.headers("curate")), 404, "not_found")
    assert_error(api.post_json("/v1/banks/nope/items", {"hashes": {"md5": "0" * 32}}), 404, "not_found")
    assert_error(api.post_json("/v1/banks/csam-test/items", {"hashes": {"md5": "zz"}}), 400, "invalid_hash")


def test_bulk_import_reports_each_line(api: Api) -> None:
    add_bank(api)
    lines = "\n".join(
        [
            '{"hashes": {"md5": "00000000000000000000000000000001"}, "reference": "a"}',
            '{"hashes": {"md5": "nothex"}}',
            "not json",
            "",
            '{"hashes": {"pdq": "' + "ab" * 32 + '"}, "note": "x"}',
            '["a list"]',
        ]
    )
    response = api.client.post("/v1/banks/csam-test/items:bulk", data=lines, headers=api.headers("curate"))
    assert response.status_code == 200
    assert [a["line"] for a in response.json["accepted"]] == [1, 5]
    assert [(r["line"], r["code"]) for r in response.json["rejected"]] == [
        (2, "invalid_hash"),
        (3, "invalid_json"),
        (6, "invalid_request"),
    ]


def test_keys_are_created_once_listed_without_secrets_and_revoked(api: Api) -> None:
    created = api.post_json("/v1/keys", {"name": "pipeline", "scopes": ["match"]}, "admin")
    assert created.status_code == 201
    token = created.json["key"]
    assert (
        api.client.post(
            "/v1/match/hashes", json={"md5": "0" * 32}, headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )
    listed = api.client.get("/v1/keys", headers=api.headers("admin")).json["keys"]
    assert all("key" not in k for k in listed)
    assert token not in str(listed)
    revoked = api.client.delete(f"/v1/keys/{created.json['id']}", headers=api.headers("admin"))
    assert revoked.json["revoked"] is True
    after = api.client.post("/v1/match/hashes", json={"md5": "0" * 32}, headers={"Authorization": f"Bearer {token}"})
    assert_error(after, 401, "unauthorized")
    assert_error(api.post_json("/v1/keys", {"name": "x", "scopes": ["root"]}, "admin"), 400, "invalid_request")


def test_a_match_key_never_reads_stored_hashes(api: Api) -> None:
    add_bank(api)
    api.post_json("/v1/banks/csam-test/items", {"hashes": {"md5": "1" * 32}})
    api.sync()
    for path in ("/v1/banks", "/v1/banks/csam-test/items", "/v1/items/1"):
        assert_error(api.client.get(path, headers=api.headers("match")), 403, "forbidden")
    body = api.post_json("/v1/match/hashes", {"md5": "1" * 32}, "match").json
    assert "1" * 32 not in str(body["matches"])


def test_unknown_routes_and_methods_are_json_errors(api: Api) -> None:
    assert_error(api.client.get("/nope"), 404, "not_found")
    assert_error(api.client.get("/v1/match"), 405, "method_not_allowed")


def test_curation_is_audited_with_the_key_that_made_it(api: Api) -> None:
    add_bank(api)
    entries = api.service.store.list_audit()
    assert entries[0].actor == "curate-key"
    assert entries[0].action == "bank.create"


# ------------------------------------------------------------------------------ edits the benchmark justified


def letterboxed(image: Image.Image, fraction: float, colour: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    bar = int(image.height * fraction / 2)
    canvas = Image.new("RGB", (image.width, image.height + 2 * bar), colour)
    canvas.paste(image, (0, bar))
    return canvas


def test_a_letterboxed_copy_matches_through_its_trimmed_view(api: Api) -> None:
    add_bank(api)
    original = photo(640, 480, seed=31)
    api.upload("/v1/banks/csam-test/items", encode(original), "curate")
    api.sync()
    body = api.upload("/v1/match", encode(letterboxed(original, 0.4))).json
    assert body["decision"] == "block"
    assert any(m["variant"].startswith("trim") for m in body["matches"] if m["algorithm"] == "pdq")


def test_items_added_from_images_also_store_a_grid_of_crops(api: Api) -> None:
    add_bank(api)
    original = photo(640, 480, seed=32)
    item = api.upload("/v1/banks/csam-test/items", encode(original), "curate").json
    # The image, crops keeping 95/90/80% of each side at the centre and in each corner, and the centred
    # square; pHash and dHash of the image only.
    assert sum(h["algorithm"] == "pdq" for h in item["hashes"]) == 17
    assert sum(h["algorithm"] == "phash" for h in item["hashes"]) == 1
    api.sync()
    cropped = original.crop((32, 24, 608, 456))  # 10% off, centred
    body = api.upload("/v1/match", encode(cropped)).json
    assert body["decision"] == "block"
