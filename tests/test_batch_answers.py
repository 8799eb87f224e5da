"""A batch of hash sets is answered exactly as the same sets sent one request at a time, in the same order.

The batch path skips work for sets that match nothing (no decision built, no probe screening while the key has
no anchor), decodes canonical hex without normalize_hex, and writes its JSON with orjson: none of that may change
an answer. Each test sends the same sets through two fresh keys with the same disclosure, as one batch through
one and one by one through the other, and compares the answers (`took_ms` aside: only single answers carry it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from api_fixtures import Api

PDQ_THRESHOLD = 31


def flip(code: bytes, bits: list[int]) -> bytes:
    value = bytearray(code)
    for bit in bits:
        value[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(value)


def at_distance(rng: np.random.Generator, code: bytes, distance: int) -> bytes:
    return flip(code, rng.choice(len(code) * 8, distance, replace=False).tolist())


def stored_items(api: Api, rng: np.random.Generator, count: int) -> list[dict[str, bytes]]:
    """`count` items in a blocking bank, each with a PDQ, an MD5 and a pHash."""
    assert api.post_json("/v1/banks", {"name": "csam", "category": "csam"}).status_code == 201
    items = []
    for n in range(count):
        codes = {
            "pdq": rng.integers(0, 256, 32, dtype=np.uint8).tobytes(),
            "md5": rng.integers(0, 256, 16, dtype=np.uint8).tobytes(),
            "phash": rng.integers(0, 256, 8, dtype=np.uint8).tobytes(),
        }
        body = {"hashes": {name: code.hex() for name, code in codes.items()}, "reference": f"R-{n}"}
        assert api.post_json("/v1/banks/csam/items", body).status_code == 201
        items.append(codes)
    api.sync()
    return items


def key(api: Api, name: str, disclosure: str) -> dict[str, str]:
    token = api.service.store.create_api_key(name, ["match"], actor="test", disclosure=disclosure)[1]
    return {"Authorization": f"Bearer {token}"}


def answers_both_ways(api: Api, sets: list[dict[str, Any]], disclosure: str) -> tuple[list[Any], list[Any]]:
    """(the batch's answers, the one-by-one answers), each through a fresh key of this disclosure."""
    batch = api.client.post("/v1/match/hashes", json={"items": sets}, headers=key(api, "batch", disclosure))
    assert batch.status_code == 200, batch.json
    alone_headers = key(api, "alone", disclosure)
    alone = []
    for hash_set in sets:
        response = api.client.post("/v1/match/hashes", json=hash_set, headers=alone_headers)
        assert response.status_code == 200, response.json
        answer = response.json
        answer.pop("took_ms", None)
        alone.append(answer)
    return batch.json["results"], alone


def mixed_sets(rng: np.random.Generator, items: list[dict[str, bytes]]) -> list[dict[str, Any]]:
    """Random sets and near-duplicates of stored items around the threshold, in several spellings."""
    sets: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        pdq = item["pdq"]
        sets += [
            {"pdq": rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()},  # matches nothing
            {"pdq": pdq.hex()},
            {"pdq": at_distance(rng, pdq, PDQ_THRESHOLD).hex()},  # the threshold: a match
            {"pdq": at_distance(rng, pdq, PDQ_THRESHOLD + 1).hex()},  # one past it: none on its own
            # one past it, corroborated by a near pHash of the same item (the PDQ distance is added back)
            {"pdq": at_distance(rng, pdq, PDQ_THRESHOLD + 4).hex(), "phash": at_distance(rng, item["phash"], 3).hex()},
            {"md5": item["md5"].hex()},
            {"md5": item["md5"].hex().upper(), "pdq": " " + at_distance(rng, pdq, 5).hex().upper() + "\n"},
            {"pdq": {"value": at_distance(rng, pdq, 10).hex(), "quality": 40 + n}},  # a dim view: review at most
        ]
    order = rng.permutation(len(sets))
    return [sets[n] for n in order]


@pytest.mark.parametrize("disclosure", ["full", "decision"])
def test_a_batch_answers_each_set_as_a_request_of_its_own_would(api: Api, disclosure: str) -> None:
    rng = np.random.default_rng(17)
    items = stored_items(api, rng, 12)
    sets = mixed_sets(rng, items)
    batch, alone = answers_both_ways(api, sets, disclosure)
    assert batch == alone
    decisions = {answer["decision"] for answer in batch}
    assert {"allow", "block", "review"} <= decisions  # the sets above cover every branch of the decision


def test_probes_that_match_nothing_are_still_screened_in_a_batch(api: Api) -> None:
    """Once a set has matched, later sets near it probe it although they match nothing themselves: the batch's
    shortcut for unmatched sets must not skip them, or the walk would never be flagged."""
    rng = np.random.default_rng(3)
    (item,) = stored_items(api, rng, 1)
    anchor = flip(item["pdq"], list(range(20)))  # 20 bits from the item: a match, remembered as an anchor
    # 16 bits from the anchor (the probe radius) and 36 from the item: probes that match nothing
    unmatched = [flip(anchor, [*range(100, 115), bit]) for bit in range(120, 160)]
    probes = [flip(anchor, [bit]) for bit in range(40, 80)]  # 1 bit from the anchor, 21 from the item: matches
    sets = [{"pdq": code.hex()} for code in [anchor, *unmatched, *probes, anchor]]
    batch, alone = answers_both_ways(api, sets, "full")
    assert batch == alone
    assert batch[1]["decision"] == "allow"  # within the probe budget: its own answer
    assert batch[20]["decision"] == "block" and "distance" not in batch[20]["matches"][0]  # the flagged family's
    assert batch[-1]["decision"] == "block" and "distance" not in batch[-1]["matches"][0]


def test_hex_the_single_path_refuses_is_refused_in_a_batch_too(api: Api) -> None:
    stored_items(api, np.random.default_rng(5), 1)
    good = "ab" * 32
    # full length but with whitespace inside or around too few digits, non-hex, too short, too long, not a string
    spaced = ["ab" * 15 + "a b" + "ab" * 15 + "a", "ab" * 16 + "  " + "ab" * 15, "ab" * 31 + "  "]
    for bad in [*spaced, "zz" * 32, "ab" * 31, "ab" * 33, 5]:
        single = api.post_json("/v1/match/hashes", {"pdq": bad}, "match")
        batch = api.post_json("/v1/match/hashes", {"items": [{"pdq": good}, {"pdq": bad}]}, "match")
        assert single.status_code == batch.status_code == 400, bad
        assert single.json["error"]["code"] == batch.json["error"]["code"] == "invalid_hash"
        assert batch.json["error"]["message"].startswith("items[1].pdq: ")
