"""hashsvc.store: the source of truth (banks, items, hashes, change log, API keys, audit log).

SQLite (WAL) by default, PostgreSQL for several replicas; chosen by URL. Start-up calls `upgrade(url)`, then
builds one `Store(url)` per process. See docs/store.md.
"""

from hashsvc.store.errors import SchemaOutOfDateError
from hashsvc.store.migrate import check_schema, current_revision, head_revision, revision_of, schema_problem, upgrade
from hashsvc.store.records import (
    ActiveHashes,
    Actor,
    ApiKey,
    AuditEntry,
    Bank,
    Change,
    HashChunk,
    HashRow,
    Item,
    ItemHash,
    NewItem,
)
from hashsvc.store.store import UNSET, Store

__all__ = [
    "UNSET",
    "ActiveHashes",
    "Actor",
    "ApiKey",
    "AuditEntry",
    "Bank",
    "Change",
    "HashChunk",
    "HashRow",
    "Item",
    "ItemHash",
    "NewItem",
    "SchemaOutOfDateError",
    "Store",
    "check_schema",
    "current_revision",
    "head_revision",
    "revision_of",
    "schema_problem",
    "upgrade",
]
