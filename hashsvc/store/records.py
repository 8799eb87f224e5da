"""What the store hands back: small frozen records, no ORM objects, no open connections."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Actor:
    """Who makes a change (the API key's name, or a CLI user) and from where; goes into the audit log."""

    name: str
    remote_addr: str | None = None


@dataclass(frozen=True)
class Bank:
    id: int
    name: str
    description: str
    category: str
    action: str
    enabled: bool
    thresholds: dict[str, int]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class ItemHash:
    id: int
    algorithm: str
    code: bytes
    view: bool = False  # a hash of an edited view (crop, trimmed picture), not of the item itself

    @property
    def hex(self) -> str:
        return self.code.hex()


@dataclass(frozen=True)
class Item:
    id: int
    bank_id: int
    bank: str
    external_ref: str | None
    source: str | None
    note: str | None
    status: str
    status_reason: str | None
    status_by: str | None
    status_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    metadata: dict[str, Any]
    hashes: tuple[ItemHash, ...]

    @property
    def active(self) -> bool:
        return self.status == "active"


HashInput = Sequence[tuple[str, "str | bytes"]] | Mapping[str, "str | bytes | Sequence[str | bytes]"]


@dataclass(frozen=True)
class NewItem:
    """One item to add: its hashes as [(algorithm, hex or packed bytes), ...] or {algorithm: hex | [hex, ...]}."""

    hashes: HashInput
    external_ref: str | None = None
    source: str | None = None
    note: str | None = None
    metadata: Mapping[str, Any] | None = None
    views: HashInput = ()  # hashes of edited views of the item's image: matched, but not exported by default
    video: bool = False  # a video item: its frame PDQs may number up to validation.MAX_VIDEO_HASHES


@dataclass(frozen=True)
class HashRow:
    """One stored hash as the index sees it."""

    hash_id: int
    item_id: int
    bank_id: int
    algorithm: str
    code: bytes


@dataclass(frozen=True)
class Change:
    """One change-log row, with everything an index needs to apply it.

    `effect` says what happens to matching:
    * 'activate': the hashes in `hashes` become matchable (for an item-level change, the item's hashes; for a
      bank-level change, the hashes of the bank's active items, as the store holds them when the tail is read);
    * 'deactivate': every hash of the items `item_ids` (when set) or of bank `bank_id` (when `item_id` is None)
      stops matching; `hashes` is empty (the rows may be gone);
    * 'none': metadata only (bank renamed or re-thresholded, note edited, item added to a disabled bank...).
    Applying the changes in sequence order, idempotently (activate = upsert by hash id, deactivate = remove), to an
    index built from `Store.active_hashes()` at sequence S yields the store's state.
    """

    sequence: int
    kind: str
    bank_id: int
    item_id: int | None  # the first item of the change; None for bank-level changes
    last_item_id: int | None  # the last (a bulk add covers item_id..last_item_id); equals item_id otherwise
    effect: str
    created_at: dt.datetime
    hashes: tuple[HashRow, ...] = ()

    @property
    def item_ids(self) -> range:
        """The items this change is about (empty for a bank-level change)."""
        if self.item_id is None or self.last_item_id is None:
            return range(0)
        return range(self.item_id, self.last_item_id + 1)


@dataclass(frozen=True)
class HashChunk:
    """A slice of the active hashes of one algorithm, as numpy arrays (row i of each array is one hash)."""

    ids: np.ndarray  # int64 hash row ids
    item_ids: np.ndarray  # int64
    bank_ids: np.ndarray  # int64
    codes: np.ndarray  # uint8, shape (n, algorithm bytes)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ActiveHashes:
    """The active hashes of one algorithm, consistent with change-log sequence `sequence`; iterate for chunks."""

    algorithm: str
    sequence: int
    _chunks: Iterator[HashChunk] = field(repr=False)

    def __iter__(self) -> Iterator[HashChunk]:
        return self._chunks


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool
    revoked_at: dt.datetime | None
    disclosure: str = "full"  # 'full' (distances and thresholds) or 'decision' (decisions and lists only)
    # Per-key overrides of the serving limits; None means the server's settings.
    rate_per_s: float | None = None
    burst: int | None = None
    max_inflight: int | None = None
    expires_at: dt.datetime | None = None  # None: never
    previous_expires_at: dt.datetime | None = None  # after a rotation: until when the old secret still works

    def allows(self, scope: str) -> bool:
        """Scopes are explicit (an admin key that should also curate carries both): no implied hierarchy."""
        return not self.revoked and scope in self.scopes

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @property
    def decision_only(self) -> bool:
        return self.disclosure == "decision"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    bank: str | None
    item_id: int | None
    remote_addr: str | None
    details: dict[str, Any]
