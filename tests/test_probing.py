"""No hash oracle: the issue's attacks against a stored PDQ, through the real API, and normal traffic beside them.

The attacks are written as an attacker would run them and judged by how far the attacker's reconstruction is from
the stored code. Each runs once more with the probe guard switched off (a budget nobody reaches), where it must
succeed: that shows the attack is real and the defence, not the test, is what stops it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from api_fixtures import Api
from images import encode, photo
from PIL import Image

from hashsvc.hashes.codec import hamming
from hashsvc.service.disclosure import DECISION_FIELDS
from hashsvc.service.probing import AUDIT_ACTION

BITS = 256
THRESHOLD = 31
UNGUARDED = {"probe_budget": 10**6}


def flip(code: bytes, *bits: int) -> bytes:
    value = bytearray(code)
    for bit in bits:
        value[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(value)


def stored_pdq(api: Api, seed: int = 7) -> bytes:
    """A random PDQ, added to a bank as an item's only hash."""
    code = np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes()
    assert api.post_json("/v1/banks", {"name": "csam", "category": "csam"}).status_code == 201
    assert api.post_json("/v1/banks/csam/items", {"hashes": {"pdq": code.hex()}, "reference": "R-1"}).status_code == 201
    api.sync()
    return code


def decision_key(api: Api) -> dict[str, str]:
    token = api.service.store.create_api_key("partner", ["match"], actor="test", disclosure="decision")[1]
    return {"Authorization": f"Bearer {token}"}


def ask(api: Api, headers: dict[str, str], codes: list[bytes]) -> list[dict[str, Any]]:
    """Match PDQ codes, one request for one code, a batch for several; the answers in order."""
    if len(codes) == 1:
        response = api.client.post("/v1/match/hashes", json={"pdq": codes[0].hex()}, headers=headers)
        assert response.status_code == 200, response.json
        return [response.json]
    body = {"items": [{"pdq": code.hex()} for code in codes]}
    response = api.client.post("/v1/match/hashes", json=body, headers=headers)
    assert response.status_code == 200, response.json
    return response.json["results"]  # type: ignore[no-any-return]


def distance(answer: dict[str, Any]) -> int | None:
    return next((m["distance"] for m in answer["matches"] if "distance" in m), None)


def probing_audits(api: Api) -> list[Any]:
    return [entry for entry in api.service.store.list_audit() if entry.action == AUDIT_ACTION]


def two_request_attack(api: Api, headers: dict[str, str], start: bytes) -> int:
    """The issue's attack: one query within threshold, then a batch of its 256 single-bit flips; each distance
    one more or one less than the first tells one bit. Returns how many bits stay unknown."""
    (first,) = ask(api, headers, [start])
    answers = ask(api, headers, [flip(start, bit) for bit in range(BITS)])
    base = distance(first)
    if base is None:  # a decision-only key: no distances to read
        return BITS
    known = [bit for bit, answer in enumerate(answers) if distance(answer) in (base - 1, base + 1)]
    return BITS - len(known)


@pytest.mark.parametrize("disclosure", ["full", "decision"])
def test_the_two_request_attack_recovers_next_to_nothing(make_api, disclosure: str) -> None:
    api = make_api()
    stored = stored_pdq(api)
    start = flip(stored, *range(0, 80, 8))  # 10 bits off: a re-encode of the banned image, say
    headers = api.headers("match") if disclosure == "full" else decision_key(api)
    assert two_request_attack(api, headers, start) > 200
    audits = probing_audits(api)
    assert len(audits) == 1  # one entry for the family, not one per probe
    assert audits[0].actor == ("match-key" if disclosure == "full" else "partner")
    assert audits[0].details["answered_as"] == "block"
    assert stored.hex() not in str(audits[0].details)  # the anchor is the caller's query, not the stored hash


def test_without_the_guard_the_two_request_attack_recovers_every_bit(make_api) -> None:
    api = make_api(**UNGUARDED)
    stored = stored_pdq(api)
    start = flip(stored, *range(0, 80, 8))
    assert two_request_attack(api, api.headers("match"), start) == 0


def boundary_walk(api: Api, headers: dict[str, str], start: bytes) -> bytes:
    """The decision-only attack: step away from a blocked query one bit at a time until the answer turns to
    allow; the last blocked query is then exactly at the threshold, and flipping each of its bits says whether
    that bit is wrong (the distance drops, still block) or right (it rises, allow). Returns the reconstruction."""
    current, edge = start, start
    for bit in range(BITS):
        (answer,) = ask(api, headers, [flip(current, bit)])
        if answer["decision"] != "block":
            break
        current = edge = flip(current, bit)
    answers = ask(api, headers, [flip(edge, bit) for bit in range(BITS)])
    wrong = [bit for bit, answer in enumerate(answers) if answer["decision"] == "block"]
    return flip(edge, *wrong)


def test_the_decision_only_boundary_walk_learns_nothing(make_api) -> None:
    api = make_api()
    stored = stored_pdq(api)
    start = flip(stored, *range(3, 83, 8))
    guess = boundary_walk(api, decision_key(api), start)
    # No better than the query the attacker started from: the walk bought nothing.
    assert hamming(guess, stored) >= hamming(start, stored) == 10
    assert len(probing_audits(api)) == 1


def test_without_the_guard_the_boundary_walk_recovers_the_stored_hash(make_api) -> None:
    api = make_api(**UNGUARDED)
    stored = stored_pdq(api)
    start = flip(stored, *range(3, 83, 8))
    assert boundary_walk(api, decision_key(api), start) == stored


def test_decision_only_answers_carry_nothing_numeric_from_stored_hashes(make_api) -> None:
    api = make_api()
    stored = stored_pdq(api)
    # pHash 5 bits off alone is a 'log' match with a note naming its distance band in a full answer.
    api.post_json("/v1/banks/csam/items", {"hashes": {"phash": "00" * 8}, "reference": "R-2"})
    api.sync()
    headers = decision_key(api)
    single = api.client.post("/v1/match/hashes", json={"pdq": flip(stored, 1, 2).hex()}, headers=headers).json
    batch = api.client.post(
        "/v1/match/hashes", json={"items": [{"phash": "1f" + "00" * 7}, {"md5": "0" * 32}]}, headers=headers
    ).json
    image = api.upload("/v1/match", encode(photo()), "match")  # the full key, for contrast below
    assert "took_ms" in image.json
    for answer in (single, *batch["results"]):
        assert "took_ms" not in answer
        for match in answer["matches"]:
            assert set(match) == set(DECISION_FIELDS)
    assert single["decision"] == "block" and single["matches"][0]["reference"] == "R-1"
    assert batch["results"][0]["matches"] == [
        {
            "bank": "csam",
            "category": "csam",
            "reference": "R-2",
            "algorithm": "phash",
            "variant": "original",
            "action": "log",
        }
    ]
    assert "took_ms" not in batch
    full = api.post_json("/v1/match/hashes", {"phash": "1f" + "00" * 7}, "match").json
    assert full["matches"][0]["distance"] == 5 and "note" in full["matches"][0]


def test_repeats_re_encodes_and_distinct_images_are_not_probes(make_api) -> None:
    api = make_api()
    assert api.post_json("/v1/banks", {"name": "csam", "category": "csam"}).status_code == 201
    banned = photo(640, 480, seed=21)
    assert api.upload("/v1/banks/csam/items", encode(banned), "curate").status_code == 201
    api.sync()
    uploads = [encode(banned)] * 20  # the same upload again and again
    uploads += [encode(banned, quality=q) for q in (95, 85, 75, 65)]  # re-encodes
    uploads += [encode(banned.resize((480, 360)), quality=80), encode(banned, "PNG")]
    uploads += [encode(photo(640, 480, seed=100 + n)) for n in range(30)]  # distinct images
    answers = [api.upload("/v1/match", data).json for data in uploads]
    assert all(a["decision"] == "block" and "distance" in a["matches"][0] for a in answers[:26])
    assert all(a["decision"] == "allow" for a in answers[26:])
    assert probing_audits(api) == []


def test_a_flagged_family_never_answers_below_the_queries_own_decision(make_api) -> None:
    api = make_api(probe_budget=0)
    stored = stored_pdq(api)
    api.post_json("/v1/banks", {"name": "review-only", "category": "other", "action": "review"})
    other = flip(stored, *range(100, 140))  # 40 bits from the banned code: its own item, in a review bank
    api.post_json("/v1/banks/review-only/items", {"hashes": {"pdq": other.hex()}})
    api.sync()
    headers = api.headers("match")
    (review,) = ask(api, headers, [flip(other, 0)])
    assert review["decision"] == "review"
    (probe,) = ask(api, headers, [flip(other, 0, 1)])  # probes the review anchor, flagging it at once
    assert probe["decision"] == "review" and "distance" not in probe["matches"][0]
    # 12 bits from the review anchor, and within threshold of the banned code: still blocks.
    near_both = flip(other, 0, *range(100, 112))
    assert hamming(near_both, stored) <= THRESHOLD
    (answer,) = ask(api, headers, [near_both])
    assert answer["decision"] == "block"


def test_probes_in_one_batch_are_screened_in_order(make_api) -> None:
    api = make_api()
    stored = stored_pdq(api)
    answers = ask(api, api.headers("match"), [stored] + [flip(stored, bit) for bit in range(20)])
    budget = api.service.settings.probe_budget
    with_distance = [n for n, answer in enumerate(answers) if distance(answer) is not None]
    assert with_distance == list(range(budget + 1))  # the anchor, then the budget's worth of probes
    assert all(answer["decision"] == "block" for answer in answers)


def test_an_unflagged_image_match_keeps_its_distances_for_a_full_key(api: Api) -> None:
    assert api.post_json("/v1/banks", {"name": "csam", "category": "csam"}).status_code == 201
    banned = photo(640, 480, seed=5)
    api.upload("/v1/banks/csam/items", encode(banned), "curate")
    api.sync()
    body = api.upload("/v1/match", encode(banned.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=80)).json
    assert body["decision"] == "block" and all("distance" in m for m in body["matches"])
