"""Snapshot file format: a versioned header, then the live ids and codes; tables are rebuilt on load.

Layout (little-endian):

    header  magic "HSVCHIX\\0" | version u32 | bits u32 | tables u32 | reserved u32 | sequence i64 |
            count u64 | payload crc32 u32 | header crc32 u32 (of the bytes before it)
    payload ids int64[count] (sorted ascending) | codes uint8[count, bits / 8] (packed MSB-first)

Only ids and codes are stored: the tables are a pure function of them and rebuilding is an O(n) counting
sort (a few seconds at 10M), while storing them would nearly triple the file. No pickle: a snapshot is
data, never code. Writes are atomic (temporary file in the same directory, fsync, os.replace, fsync of the
directory), so a crash leaves the previous snapshot intact.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashsvc.errors import HashsvcError
from hashsvc.private_files import open_private

MAGIC = b"HSVCHIX\0"
VERSION = 1
_HEAD = struct.Struct("<8sIIIIqQI")
_HEAD_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _HEAD_CRC.size
_CHUNK = 64 << 20  # checksum and write in 64 MB pieces: no second copy of a multi-GB payload


class SnapshotError(HashsvcError):
    """A snapshot file is missing, truncated, corrupt or of a format version this code does not read."""

    code = "snapshot_corrupt"
    http_status = 500


@dataclass(frozen=True)
class Snapshot:
    bits: int
    tables: int
    sequence: int
    ids: np.ndarray  # int64 (n,), ascending
    codes: np.ndarray  # uint8 (n, bits / 8)


def _chunks(array: np.ndarray) -> list[memoryview]:
    raw = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    return [raw[i : i + _CHUNK] for i in range(0, len(raw), _CHUNK)]


def write(path: str | os.PathLike[str], snap: Snapshot) -> None:
    path = Path(path)
    ids = np.ascontiguousarray(snap.ids, dtype="<i8")
    codes = np.ascontiguousarray(snap.codes, dtype=np.uint8)
    crc = 0
    for piece in _chunks(ids) + _chunks(codes):
        crc = zlib.crc32(piece, crc)
    head = _HEAD.pack(MAGIC, VERSION, snap.bits, snap.tables, 0, snap.sequence, ids.shape[0], crc)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_private(tmp) as f:  # a snapshot is the hash list: owner-only, like the store
            f.write(head + _HEAD_CRC.pack(zlib.crc32(head)))
            for piece in _chunks(ids) + _chunks(codes):
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def read(path: str | os.PathLike[str]) -> Snapshot:
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, errors mapped to SnapshotError
    except OSError as e:
        raise SnapshotError(f"cannot open index snapshot {path}: {e.strerror}") from e
    with f:
        raw = f.read(HEADER_SIZE)
        if len(raw) < HEADER_SIZE:
            raise SnapshotError(f"index snapshot {path} is truncated (header)")
        head, (head_crc,) = raw[: _HEAD.size], _HEAD_CRC.unpack(raw[_HEAD.size :])
        magic, version, bits, tables, _reserved, sequence, count, crc = _HEAD.unpack(head)
        if magic != MAGIC:
            raise SnapshotError(f"{path} is not a hashsvc index snapshot (bad magic)")
        if zlib.crc32(head) != head_crc:
            raise SnapshotError(f"index snapshot {path} has a corrupt header (checksum mismatch)")
        if version != VERSION:
            raise SnapshotError(f"index snapshot {path} has format version {version}; this code reads {VERSION}")
        if bits == 0 or bits % 64:
            raise SnapshotError(f"index snapshot {path} declares an invalid code size of {bits} bits")
        expected = HEADER_SIZE + count * (8 + bits // 8)
        actual = os.fstat(f.fileno()).st_size
        if actual != expected:
            raise SnapshotError(f"index snapshot {path} is {actual} bytes, header says {expected}: truncated?")
        ids = np.empty(count, dtype="<i8")
        codes = np.empty((count, bits // 8), dtype=np.uint8)
        got = 0
        for piece in _chunks(ids) + _chunks(codes):
            n = f.readinto(piece)
            got = zlib.crc32(piece[:n], got)
            if n != len(piece):
                raise SnapshotError(f"index snapshot {path} is truncated (payload)")
        if got != crc:
            raise SnapshotError(f"index snapshot {path} is corrupt (payload checksum mismatch)")
    if count > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise SnapshotError(f"index snapshot {path} is corrupt (ids not strictly ascending)")
    return Snapshot(bits=bits, tables=tables, sequence=sequence, ids=ids.astype(np.int64, copy=False), codes=codes)
