"""Feature-index snapshot file: a versioned header, the rows' owners and positions, then FAISS's own
serialization of the binary index (data, never pickle).

Layout (little-endian):

    header  magic "HSVCFTX\\0" | version u32 | kind u32 (0 flat, 1 hnsw, 2 ivf) | sequence i64 | rows u64 |
            faiss bytes u64 | payload crc32 u32 | header crc32 u32 (of the bytes before it)
    payload owner int64[rows] (-1: a removed item's row) | positions float32[rows, 2] | faiss index bytes

Storing FAISS's serialization rather than only the descriptors saves rebuilding the HNSW graph at start-up
(minutes at a million descriptors). Writes are atomic like the hash snapshots (hashsvc.index.snapshot): a
temporary file, fsync, os.replace, fsync of the folder; a crash leaves the previous snapshot.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from hashsvc.features import native
from hashsvc.features.index import HNSW_EF_SEARCH, FeatureIndex, IndexKind
from hashsvc.index.snapshot import SnapshotError
from hashsvc.private_files import open_private

MAGIC = b"HSVCFTX\0"
VERSION = 1
KINDS: tuple[IndexKind, ...] = ("flat", "hnsw", "ivf")
_HEAD = struct.Struct("<8sIIqQQI")
_HEAD_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _HEAD_CRC.size


def save(path: str | os.PathLike[str], index: FeatureIndex, sequence: int) -> None:
    path = Path(path)
    faiss_index, owner, positions, _ = index.raw()
    blob = native.faiss().serialize_index_binary(faiss_index)
    pieces = [np.ascontiguousarray(owner, "<i8").tobytes(), np.ascontiguousarray(positions, "<f4").tobytes(),
              blob.tobytes()]
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    head = _HEAD.pack(MAGIC, VERSION, KINDS.index(index.kind), sequence, len(owner), len(blob), crc)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_private(tmp) as f:  # features describe the stored images: owner-only, like the store
            f.write(head + _HEAD_CRC.pack(zlib.crc32(head)))
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str | os.PathLike[str]) -> FeatureIndex:
    """Raises SnapshotError for a missing, truncated, corrupt or foreign file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SnapshotError(f"cannot open feature snapshot {path}: {e.strerror}") from e
    if len(raw) < HEADER_SIZE:
        raise SnapshotError(f"feature snapshot {path} is truncated (header)")
    head, (head_crc,) = raw[: _HEAD.size], _HEAD_CRC.unpack_from(raw, _HEAD.size)
    magic, version, kind, sequence, rows, faiss_bytes, crc = _HEAD.unpack(head)
    if magic != MAGIC:
        raise SnapshotError(f"{path} is not a hashsvc feature snapshot (bad magic)")
    if zlib.crc32(head) != head_crc:
        raise SnapshotError(f"feature snapshot {path} has a corrupt header (checksum mismatch)")
    if version != VERSION or kind >= len(KINDS):
        raise SnapshotError(f"feature snapshot {path} has format version {version}, kind {kind}; unreadable here")
    expected = HEADER_SIZE + rows * 16 + faiss_bytes
    if len(raw) != expected:
        raise SnapshotError(f"feature snapshot {path} is {len(raw)} bytes, header says {expected}: truncated?")
    payload = memoryview(raw)[HEADER_SIZE:]
    if zlib.crc32(payload) != crc:
        raise SnapshotError(f"feature snapshot {path} is corrupt (payload checksum mismatch)")
    owner = np.frombuffer(payload, "<i8", count=rows)
    positions = np.frombuffer(payload, "<f4", count=rows * 2, offset=rows * 8).reshape(rows, 2)
    blob = np.frombuffer(payload, np.uint8, offset=rows * 16)
    try:
        faiss_index = native.faiss().deserialize_index_binary(blob)
    except RuntimeError as e:
        raise SnapshotError(f"feature snapshot {path}: FAISS cannot read its index ({e})") from e
    if KINDS[kind] == "hnsw":  # the search-time setting is this code's, not the one saved with the file
        faiss_index.hnsw.efSearch = HNSW_EF_SEARCH
    if faiss_index.ntotal != rows:
        raise SnapshotError(f"feature snapshot {path} is corrupt ({faiss_index.ntotal} descriptors for {rows} rows)")
    index = FeatureIndex.from_raw(KINDS[kind], faiss_index, owner, positions)
    index.sequence = sequence
    return index
