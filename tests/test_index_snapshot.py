"""Index snapshots: round trip with the change-log sequence, atomic writes, and loud failure when damaged."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from hashsvc.errors import HashsvcError
from hashsvc.index import HammingIndex, SnapshotError
from hashsvc.index.snapshot import HEADER_SIZE


def sorted_result(index: HammingIndex, codes: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
    return [sorted(zip(i.tolist(), d.tolist(), strict=True)) for i, d in index.range_search(codes, radius)]


@pytest.fixture
def index_and_codes() -> tuple[HammingIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)
    index = HammingIndex(256, merge_threshold=2000, background_merge=False)
    index.add(np.arange(2500), codes[:2500])  # main segment
    index.add(np.arange(2500, 3000), codes[2500:])  # delta
    index.remove(np.arange(0, 3000, 10))
    index.add(np.array([5]), codes[6][None, :])  # replaced code
    return index, codes


def test_round_trip_keeps_results_and_sequence(
    index_and_codes: tuple[HammingIndex, np.ndarray], tmp_path: Path
) -> None:
    index, codes = index_and_codes
    path = tmp_path / "pdq.hix"
    index.save(path, sequence=42)
    assert index.sequence == 42
    loaded = HammingIndex.load(path)
    assert loaded.sequence == 42
    assert loaded.bits == 256 and len(loaded) == len(index)
    queries = codes[::97]
    assert sorted_result(loaded, queries, 40) == sorted_result(index, queries, 40)
    assert [p.name for p in tmp_path.iterdir()] == ["pdq.hix"]  # no temporary file left behind


def test_loaded_index_accepts_updates(index_and_codes: tuple[HammingIndex, np.ndarray], tmp_path: Path) -> None:
    index, codes = index_and_codes
    index.save(tmp_path / "s", sequence=7)
    loaded = HammingIndex.load(tmp_path / "s")
    loaded.remove(np.array([1]))
    loaded.add(np.array([10**12]), codes[1][None, :])
    assert sorted_result(loaded, codes[1][None, :], 0) == [[(10**12, 0)]]


@pytest.mark.parametrize("bits", [64, 128, 256])
def test_empty_and_small_indexes_round_trip(bits: int, tmp_path: Path) -> None:
    empty = HammingIndex(bits)
    empty.save(tmp_path / "e", sequence=0)
    assert len(HammingIndex.load(tmp_path / "e")) == 0
    one = HammingIndex(bits)
    code = np.full((1, bits // 8), 0xA5, dtype=np.uint8)
    one.add(np.array([-3]), code)
    one.save(tmp_path / "o", sequence=-1)
    loaded = HammingIndex.load(tmp_path / "o")
    assert loaded.sequence == -1
    assert sorted_result(loaded, code, 0) == [[(-3, 0)]]


def test_saving_again_replaces_the_snapshot(index_and_codes: tuple[HammingIndex, np.ndarray], tmp_path: Path) -> None:
    index, _ = index_and_codes
    path = tmp_path / "s"
    index.save(path, sequence=1)
    index.remove(np.arange(100))
    index.save(path, sequence=2)
    loaded = HammingIndex.load(path)
    assert loaded.sequence == 2 and len(loaded) == len(index)


def corrupt(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: corrupt(p, HEADER_SIZE + 100), "checksum"),  # an id
        (lambda p: corrupt(p, p.stat().st_size - 1), "checksum"),  # the last code byte
        (lambda p: corrupt(p, 24), "header"),  # the sequence field
        (lambda p: corrupt(p, 0), "magic"),
        (lambda p: p.write_bytes(p.read_bytes()[:-5]), "truncated"),
        (lambda p: p.write_bytes(p.read_bytes()[:10]), "truncated"),
        (lambda p: p.write_bytes(b""), "truncated"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "bytes"),
    ],
    ids=["id-byte", "code-byte", "header-byte", "magic", "truncated-payload", "truncated-header", "empty", "extended"],
)
def test_damaged_snapshot_raises_snapshot_error(
    index_and_codes: tuple[HammingIndex, np.ndarray], tmp_path: Path, damage, message: str
) -> None:
    index, _ = index_and_codes
    path = tmp_path / "s"
    index.save(path, sequence=3)
    damage(path)
    with pytest.raises(SnapshotError, match=message) as info:
        HammingIndex.load(path)
    assert isinstance(info.value, HashsvcError)
    assert info.value.code == "snapshot_corrupt"


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    index = HammingIndex(64)
    index.add(np.array([1]), np.zeros((1, 8), dtype=np.uint8))
    path = tmp_path / "s"
    index.save(path, sequence=1)
    data = bytearray(path.read_bytes())
    data[8:12] = struct.pack("<I", 99)  # the version field, with a recomputed header checksum
    data[HEADER_SIZE - 4 : HEADER_SIZE] = struct.pack("<I", zlib.crc32(bytes(data[: HEADER_SIZE - 4])))
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="version 99"):
        HammingIndex.load(path)


def test_missing_snapshot_raises_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot open"):
        HammingIndex.load(tmp_path / "absent")


def test_sequence_must_be_an_int64(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        HammingIndex(64).save(tmp_path / "s", sequence="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HammingIndex(64).save(tmp_path / "s", sequence=2**63)
    assert not (tmp_path / "s").exists()
