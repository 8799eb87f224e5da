"""Where a CLI command's work happens: the local store (through `Service` and the service modules) or the
HTTP API (through `hashsvc.client`). Both answer with the API's JSON shapes, so commands print one way."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hashsvc.client import Client
from hashsvc.config import load_settings
from hashsvc.errors import NotFoundError, ValidationError

# The service layer pulls in the store (SQLAlchemy) and the index (numba): seconds of imports that `hashsvc
# --help` or a remote command must not pay. They are imported where a local backend is built or used.
if TYPE_CHECKING:
    from hashsvc.service import transfer
    from hashsvc.store import Actor

Progress = Callable[[int], None] | None


class Backend(Protocol):
    remote: bool

    def close(self) -> None: ...
    def list_banks(self) -> list[dict[str, Any]]: ...
    def get_bank(self, name: str) -> dict[str, Any]: ...
    def create_bank(self, fields: dict[str, Any]) -> dict[str, Any]: ...
    def update_bank(self, name: str, fields: dict[str, Any]) -> dict[str, Any]: ...
    def delete_bank(self, name: str) -> None: ...
    def add_image(self, bank: str, data: bytes, fields: dict[str, Any]) -> dict[str, Any]: ...
    def import_records(
        self, bank: str, records: Iterable[transfer.Record | transfer.BadLine], dry_run: bool, progress: Progress
    ) -> transfer.ImportSummary: ...
    def iter_items(self, bank: str, include_disabled: bool) -> Iterator[dict[str, Any]]: ...
    def get_item(self, item_id: int) -> dict[str, Any]: ...
    def set_status(self, item_id: int, status: str, reason: str | None) -> dict[str, Any]: ...
    def delete_item(self, item_id: int) -> None: ...
    def search(self, algorithm: str, value: str, max_distance: int | None, limit: int) -> dict[str, Any]: ...
    def match_image(self, data: bytes) -> dict[str, Any]: ...
    def create_key(self, name: str, scopes: list[str], options: dict[str, Any]) -> dict[str, Any]: ...
    def update_key(self, name_or_id: str, options: dict[str, Any]) -> dict[str, Any]: ...
    def list_keys(self) -> list[dict[str, Any]]: ...
    def revoke_key(self, name_or_id: str) -> dict[str, Any]: ...
    def audit_page(self, filters: dict[str, Any]) -> dict[str, Any]: ...
    def rotate_key(self, name_or_id: str, grace_s: int | None) -> dict[str, Any]: ...


def cli_actor() -> Actor:
    """Local changes are audited under the operating-system user who made them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    from hashsvc.store import Actor

    return Actor(f"cli:{user}")


class LocalBackend:
    remote = False

    def __init__(self, database_url: str | None) -> None:
        from hashsvc.service.live_index import LiveIndex
        from hashsvc.service.service import Service
        from hashsvc.store import Store, check_schema

        self.settings = load_settings({"database_url": database_url})
        check_schema(self.settings.resolved_database_url)  # a clear "run hashsvc migrate" instead of SQL errors
        store = Store(self.settings.resolved_database_url)
        # The data folder's snapshots belong to the configured store; with another --database-url they could
        # describe a different store, so then the index is built from the store itself.
        snapshots = None if database_url else Path(self.settings.data_dir) / "snapshots"
        self.service = Service(self.settings, store=store, live=LiveIndex(store, snapshots), warm_sandbox=False)
        self.store = store
        self.actor = cli_actor()

    def close(self) -> None:
        self.service.close()

    def list_banks(self) -> list[dict[str, Any]]:
        return self.service.list_banks()

    def get_bank(self, name: str) -> dict[str, Any]:
        return self.service.get_bank(name)

    def create_bank(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self.service.create_bank(fields, self.actor)

    def update_bank(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.service.update_bank(name, fields, self.actor)

    def delete_bank(self, name: str) -> None:
        self.service.delete_bank(name, self.actor)

    def add_image(self, bank: str, data: bytes, fields: dict[str, Any]) -> dict[str, Any]:
        return self.service.add_item_from_image(bank, data, fields, self.actor)

    def import_records(
        self, bank: str, records: Iterable[transfer.Record | transfer.BadLine], dry_run: bool, progress: Progress
    ) -> transfer.ImportSummary:
        from hashsvc.service import transfer

        return transfer.import_records(self.store, bank, records, self.actor, dry_run=dry_run, progress=progress)

    def iter_items(self, bank: str, include_disabled: bool) -> Iterator[dict[str, Any]]:
        from hashsvc.service import transfer

        self.store.get_bank(bank)  # fail before the first line is written
        # Hash lists are sensitive: who exported which bank goes into the audit log.
        self.store.record_audit(self.actor, "items.export", bank=bank, details={"include_disabled": include_disabled})
        for item in transfer.iter_bank_items(self.store, bank, include_disabled=include_disabled):
            yield transfer.item_record(item)

    def get_item(self, item_id: int) -> dict[str, Any]:
        return self.service.get_item(item_id)

    def set_status(self, item_id: int, status: str, reason: str | None) -> dict[str, Any]:
        body = {"status": status, **({"reason": reason} if reason else {})}
        return self.service.update_item(item_id, body, self.actor)

    def delete_item(self, item_id: int) -> None:
        self.service.delete_item(item_id, self.actor)

    def search(self, algorithm: str, value: str, max_distance: int | None, limit: int) -> dict[str, Any]:
        from hashsvc.service import search

        return search.search_hash(
            self.store, search.scan_store(self.store), algorithm, value, max_distance, limit=limit
        )

    def match_image(self, data: bytes) -> dict[str, Any]:
        if not self.service.live.ready:
            self.service.live.load()  # snapshots from the data folder when present, then the change log
        return self.service.match_image(data)

    def create_key(self, name: str, scopes: list[str], options: dict[str, Any]) -> dict[str, Any]:
        return self.service.create_key(name, scopes, self.actor, options)

    def update_key(self, name_or_id: str, options: dict[str, Any]) -> dict[str, Any]:
        return self.service.update_key(_key_id(self.list_keys(), name_or_id), options, self.actor)

    def list_keys(self) -> list[dict[str, Any]]:
        return self.service.list_keys()

    def revoke_key(self, name_or_id: str) -> dict[str, Any]:
        return self.service.revoke_key(_key_id(self.list_keys(), name_or_id), self.actor)

    def audit_page(self, filters: dict[str, Any]) -> dict[str, Any]:
        return self.service.audit_page(filters)

    def rotate_key(self, name_or_id: str, grace_s: int | None) -> dict[str, Any]:
        body = {} if grace_s is None else {"grace_s": grace_s}
        return self.service.rotate_key(_key_id(self.list_keys(), name_or_id), body, self.actor)

    def reindex(self, snapshot_dir: Path | None = None) -> dict[str, Any]:
        """Rebuild the index snapshots from the store (serving processes then start from them)."""
        from hashsvc.service.live_index import LiveIndex

        live = LiveIndex(self.store, snapshot_dir or Path(self.settings.data_dir) / "snapshots")
        live.load()
        live.save_snapshots()
        assert live.snapshot_dir is not None
        return {"snapshot_dir": str(live.snapshot_dir), "sequence": live.sequence, "sizes": live.sizes()}


class RemoteBackend:
    remote = True

    def __init__(self, url: str, key: str) -> None:
        self.client = Client(url, key)

    def close(self) -> None:
        pass

    def list_banks(self) -> list[dict[str, Any]]:
        return self.client.list_banks()

    def get_bank(self, name: str) -> dict[str, Any]:
        return self.client.get_bank(name)

    def create_bank(self, fields: dict[str, Any]) -> dict[str, Any]:
        fields = dict(fields)
        return self.client.create_bank(fields.pop("name"), fields.pop("category"), **fields)

    def update_bank(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.client.update_bank(name, **fields)

    def delete_bank(self, name: str) -> None:
        self.client.delete_bank(name)

    def add_image(self, bank: str, data: bytes, fields: dict[str, Any]) -> dict[str, Any]:
        return self.client.add_image(bank, data, **fields)

    def import_records(
        self, bank: str, records: Iterable[transfer.Record | transfer.BadLine], dry_run: bool, progress: Progress
    ) -> transfer.ImportSummary:
        from hashsvc.service import transfer

        self.client.get_bank(bank)  # 404 before reading the file
        summary = transfer.ImportSummary(dry_run=dry_run)
        for good, bad in transfer.batches(records):
            for line in bad:
                summary.reject(line)
            if good:
                answer = self.client.import_lines(bank, transfer.records_to_jsonl(good), dry_run=dry_run)
                summary.merge(answer, line_map=[record.line for record in good])
            if progress is not None:
                progress(len(good) + len(bad))
        return summary

    def iter_items(self, bank: str, include_disabled: bool) -> Iterator[dict[str, Any]]:
        self.client.get_bank(bank)
        yield from self.client.iter_items(bank, status=None if include_disabled else "active")

    def get_item(self, item_id: int) -> dict[str, Any]:
        return self.client.get_item(item_id)

    def set_status(self, item_id: int, status: str, reason: str | None) -> dict[str, Any]:
        return self.client.update_item(item_id, status=status, reason=reason)

    def delete_item(self, item_id: int) -> None:
        self.client.delete_item(item_id)

    def search(self, algorithm: str, value: str, max_distance: int | None, limit: int) -> dict[str, Any]:
        return self.client.search(value, algorithm=algorithm, max_distance=max_distance, limit=limit)

    def match_image(self, data: bytes) -> dict[str, Any]:
        return self.client.match_image(data)

    def create_key(self, name: str, scopes: list[str], options: dict[str, Any]) -> dict[str, Any]:
        return self.client.create_key(name, scopes, **options)

    def update_key(self, name_or_id: str, options: dict[str, Any]) -> dict[str, Any]:
        return self.client.update_key(_key_id(self.list_keys(), name_or_id), **options)

    def list_keys(self) -> list[dict[str, Any]]:
        return self.client.list_keys()

    def revoke_key(self, name_or_id: str) -> dict[str, Any]:
        return self.client.revoke_key(_key_id(self.list_keys(), name_or_id))

    def audit_page(self, filters: dict[str, Any]) -> dict[str, Any]:
        return self.client.audit_page(**filters)

    def rotate_key(self, name_or_id: str, grace_s: int | None) -> dict[str, Any]:
        return self.client.rotate_key(_key_id(self.list_keys(), name_or_id), grace_s)


def _key_id(keys: list[dict[str, Any]], name_or_id: str) -> int:
    for key in keys:
        if key["name"] == name_or_id or str(key["id"]) == name_or_id:
            return int(key["id"])
    raise NotFoundError(f"no API key named {name_or_id!r}")


def require_local(backend: Backend, what: str) -> LocalBackend:
    if not isinstance(backend, LocalBackend):
        raise ValidationError(f"{what} runs on the server machine, against the store: drop --url")
    return backend
