"""Hash codecs: hex in the ecosystem's formats, validation of client input, Hamming distance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashsvc.errors import InvalidHashError
from hashsvc.hashes import ALGORITHMS, bits_to_bytes, bytes_to_bits, hamming, normalize_hex, parse_hex, to_hex

algorithm_names = st.sampled_from(sorted(ALGORITHMS))


@st.composite
def codes(draw: st.DrawFn, nbytes: int | None = None) -> tuple[str, bytes]:
    name = draw(algorithm_names)
    size = ALGORITHMS[name].nbytes if nbytes is None else nbytes
    return name, draw(st.binary(min_size=size, max_size=size))


@given(codes())
def test_hex_round_trips_through_bytes(case: tuple[str, bytes]) -> None:
    name, code = case
    assert parse_hex(name, to_hex(code)) == code
    assert len(to_hex(code)) == ALGORITHMS[name].hex_length


@given(codes())
def test_bits_round_trip_msb_first(case: tuple[str, bytes]) -> None:
    _, code = case
    bits = bytes_to_bits(code)
    assert bits_to_bytes(bits) == code
    assert bits[0] == code[0] >> 7


@given(codes(), st.sampled_from(["upper", "spaces", "newline"]))
def test_client_hashes_are_normalized(case: tuple[str, bytes], mangling: str) -> None:
    name, code = case
    text = to_hex(code)
    mangled = {"upper": text.upper(), "spaces": f"  {text} ", "newline": f"{text}\n"}[mangling]
    assert normalize_hex(name, mangled) == text


@pytest.mark.parametrize(
    ("algorithm", "text", "complaint"),
    [
        ("pdq", "abc", "64 hex digits"),
        ("pdq", "g" * 64, "only hex digits"),
        ("pdq", "0" * 65, "got 65"),
        ("phash", "0" * 64, "16 hex digits"),
        ("md5", "0x" + "0" * 30, "only hex digits"),
        ("pdq", "ab cd" + "0" * 59, "only hex digits"),
        ("nope", "00", "unknown hash algorithm"),
    ],
)
def test_bad_client_hashes_are_rejected_with_a_reason(algorithm: str, text: str, complaint: str) -> None:
    with pytest.raises(InvalidHashError, match=complaint) as info:
        normalize_hex(algorithm, text)
    assert info.value.code == "invalid_hash"
    assert info.value.http_status == 400


def test_non_string_hash_is_rejected() -> None:
    with pytest.raises(InvalidHashError, match="hex string"):
        normalize_hex("pdq", 12345)  # type: ignore[arg-type]


@given(codes(nbytes=32), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_hamming_is_a_metric(case: tuple[str, bytes], b: bytes, c: bytes) -> None:
    _, a = case
    assert hamming(a, a) == 0
    assert hamming(a, b) == hamming(b, a)
    assert hamming(a, c) <= hamming(a, b) + hamming(b, c)
    assert (hamming(a, b) == 0) == (a == b)
    assert 0 <= hamming(a, b) <= 256


def test_hamming_counts_differing_bits() -> None:
    assert hamming(bytes([0b1010_0000]), bytes([0b0110_0001])) == 3


def test_hamming_refuses_codes_of_different_lengths() -> None:
    with pytest.raises(InvalidHashError):
        hamming(b"\x00" * 8, b"\x00" * 32)


def test_every_algorithm_declares_consistent_metadata() -> None:
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.name == name
        assert algorithm.bits % 8 == 0
        assert algorithm.perceptual == (algorithm.default_threshold > 0)
