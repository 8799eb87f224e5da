"""Scanning what a platform already stores: every file under some sources hashed and matched, on Dask.

The plan: the files under the sources (local folders or any fsspec URL, e.g. `s3://bucket/prefix`) are listed
once, sorted, and cut into partitions of `partition_files` files; the list is written to the output folder
(`plan.json`), so a resumed scan works on exactly the same partitions even if files were added since.

The work: each partition is one Dask task. A worker process reads each file (never more than the upload limit),
hashes it with the service's own hashing code and limits, and looks it up either
* in a store (`database_url`): the worker builds a `Service` once per process (the index from the data folder's
  snapshot or the store, then the change log), and each file gets exactly what `hashsvc match` would answer; or
* through a running service (`url`/`key`): the original hash set of every file goes to `/v1/match/hashes` in
  batches of up to 1,000. Only the image's own hashes are looked up then, not its rotations and trimmed views
  that an upload to `/v1/match` is also matched by.
A file that cannot be read or decoded is a record with its error code; it never stops the scan.
Either way, `block` and `review` decisions become match events (hashsvc.service.events) whose content_id is the
file's path or URL, so what a scan found shows up in `hashsvc events`, the review queue and webhooks like an upload
would: in local mode the worker's service records them and writes them before its partition counts as done; in
remote mode the service answering `/v1/match/hashes` does, from the content_id sent with each hash set.
A partition that is scanned again (a crash before its part file was written) records its events again.

The checkpoint: the client writes each finished partition's records to `part-NNNNN.jsonl` (or `.parquet`) in
one atomic rename. A part file exists entirely or not at all, so a scan that is stopped or crashes resumes
with the missing partitions only: no file is hashed twice, none is missed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hashsvc.errors import HashsvcError, MediaError, ValidationError

PLAN_FILE = "plan.json"
PLAN_VERSION = 1
DEFAULT_PARTITION_FILES = 256
MAX_PARTITION_FILES = 100_000
FORMATS = ("jsonl", "parquet")
LOOKUP_BATCH = 1000  # hash sets per /v1/match/hashes call: the API's own maximum
MAX_CONTENT_ID = 255  # as the API's content_id


def event_content_id(path: str) -> str:
    """The content_id of a scanned file's events: its path or URL, or `sha256:<hex of it>` when that is too long
    or not printable (a content_id is 1-255 printable characters)."""
    if 1 <= len(path) <= MAX_CONTENT_ID and path.isprintable():
        return path
    return "sha256:" + hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str  # a local path, or the URL fsspec opens (s3://bucket/key)
    size: int


@dataclass(frozen=True)
class Lookup:
    """Where workers look hashes up: a store (local mode) or a running service (remote mode)."""

    database_url: str | None = None
    url: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if self.url and self.database_url:
            raise ValidationError("look up either in a store (database_url) or through a service (url), not both")
        if self.url and not self.key:
            raise ValidationError("remote lookups need an API key")


@dataclass(frozen=True)
class Plan:
    sources: list[str]
    partition_files: int
    format: str
    files: list[FileEntry]

    @property
    def partitions(self) -> int:
        return (len(self.files) + self.partition_files - 1) // self.partition_files

    def partition(self, number: int) -> list[FileEntry]:
        return self.files[number * self.partition_files : (number + 1) * self.partition_files]


@dataclass
class PartitionResult:
    number: int
    records: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)  # read / hash / lookup time spent by the worker


@dataclass
class Summary:
    files: int = 0
    partitions: int = 0
    partitions_skipped: int = 0  # already done by an earlier run (resumed)
    scanned: int = 0  # files this run read and hashed
    decisions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    worker_seconds: dict[str, float] = field(default_factory=dict)
    dashboard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files_per_s"] = round(self.scanned / self.seconds, 1) if self.seconds else None
        return out


# ------------------------------------------------------------------------------------------------ planning


def list_files(sources: Iterable[str], storage_options: Mapping[str, Any] | None = None) -> list[FileEntry]:
    """Every file under the sources (folders recursively), sorted by path; raises ValidationError if a source
    does not exist."""
    import fsspec

    found: dict[str, int] = {}
    for source in sources:
        fs, root = fsspec.core.url_to_fs(source, **dict(storage_options or {}))
        local = "file" in _protocols(fs)
        if fs.isdir(root):
            entries = fs.find(root, detail=True).items()
        elif fs.isfile(root):
            entries = [(root, fs.info(root))]
        else:
            raise ValidationError(f"{source}: no such file or folder")
        for path, info in entries:
            hidden = any(part.startswith(".") for part in path[len(root) :].split("/"))
            if info.get("type", "file") != "file" or hidden:  # as `hashsvc match` and `add`: dot-files skipped
                continue
            found[path if local else fs.unstrip_protocol(path)] = int(info.get("size") or 0)
    return [FileEntry(path, size) for path, size in sorted(found.items())]


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def make_plan(
    output: Path,
    sources: list[str],
    *,
    partition_files: int = DEFAULT_PARTITION_FILES,
    format: str = "jsonl",
    storage_options: Mapping[str, Any] | None = None,
) -> Plan:
    """The scan's plan: read from `output` when an earlier run wrote one (resume), else listed and written.

    Raises ValidationError when the output folder holds a plan for other sources or another format."""
    if not 1 <= partition_files <= MAX_PARTITION_FILES:
        raise ValidationError(f"partition size must be from 1 to {MAX_PARTITION_FILES} files")
    if format not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}")
    path = output / PLAN_FILE
    if path.exists():
        plan = _read_plan(path)
        if plan.sources != sources or plan.format != format:
            raise ValidationError(
                f"{output} holds a scan of {', '.join(plan.sources)} as {plan.format}; resume it with the same "
                "sources and format, or choose another output folder"
            )
        return plan
    plan = Plan(sources, partition_files, format, list_files(sources, storage_options))
    output.mkdir(parents=True, exist_ok=True)
    body = {
        "version": PLAN_VERSION,
        "sources": plan.sources,
        "partition_files": plan.partition_files,
        "format": plan.format,
        "files": [[f.path, f.size] for f in plan.files],
    }
    _write_atomically(path, json.dumps(body).encode())
    return plan


def _read_plan(path: Path) -> Plan:
    try:
        body = json.loads(path.read_text())
        if body.get("version") != PLAN_VERSION:
            raise ValueError(f"version {body.get('version')!r}")
        files = [FileEntry(str(p), int(s)) for p, s in body["files"]]
        return Plan(list(body["sources"]), int(body["partition_files"]), str(body["format"]), files)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"{path} is not a scan plan this version can resume: {exc}") from None


def part_path(output: Path, number: int, format: str) -> Path:
    return output / f"part-{number:05d}.{format}"


def done_partitions(output: Path, plan: Plan) -> set[int]:
    """Partitions whose part file exists: the checkpoint (a part file is renamed into place whole)."""
    return {n for n in range(plan.partitions) if part_path(output, n, plan.format).exists()}


# ------------------------------------------------------------------------------------------ worker side

_services: dict[str, Any] = {}  # one Service per worker process and store, built on first use
_services_lock = threading.Lock()


def scan_partition(
    number: int, entries: list[FileEntry], lookup: Lookup, storage_options: Mapping[str, Any] | None = None
) -> PartitionResult:
    """Read, hash and look up one partition's files (runs in a Dask worker). Never raises for a bad file."""
    from hashsvc.config import load_settings

    settings = load_settings({"database_url": lookup.database_url, "sandbox": False})
    seconds = Counter[str]()
    records: list[dict[str, Any]] = []
    if lookup.url:
        from hashsvc.service.hashing import hash_image
        from hashsvc.service.service import limits_from

        limits = limits_from(settings)
        pending: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (record, hash set to look up)
        for entry in entries:
            record, data = _read(entry, settings.max_upload_bytes, storage_options, seconds)
            if data is not None:
                started = time.perf_counter()
                try:
                    hashes = hash_image(data, limits).to_dict()
                    del hashes["width"], hashes["height"]
                    record["hashes"] = hashes
                    pending.append((record, {**hashes, "content_id": event_content_id(entry.path)}))
                except HashsvcError as exc:
                    record["error"] = exc.to_dict()
                seconds["hash"] += time.perf_counter() - started
            records.append(record)
        started = time.perf_counter()
        _remote_lookup(lookup, pending)
        seconds["lookup"] += time.perf_counter() - started
    else:
        from hashsvc.service.events import MatchContext

        service = _local_service(settings, lookup)
        for entry in entries:
            record, data = _read(entry, settings.max_upload_bytes, storage_options, seconds)
            if data is not None:
                started = time.perf_counter()
                try:
                    result = service.match_image(data, context=MatchContext(event_content_id(entry.path)))
                    record.update(hashes=result["hashes"], decision=result["decision"], matches=result["matches"])
                except HashsvcError as exc:
                    record["error"] = exc.to_dict()
                seconds["hash_and_lookup"] += time.perf_counter() - started
            records.append(record)
        started = time.perf_counter()
        service.after.events.flush()  # the partition's events are in the store before it counts as done
        seconds["events"] += time.perf_counter() - started
    return PartitionResult(number, records, dict(seconds))


def _read(
    entry: FileEntry, max_bytes: int, storage_options: Mapping[str, Any] | None, seconds: Counter[str]
) -> tuple[dict[str, Any], bytes | None]:
    """A file's record and bytes (None, with the error in the record, when it cannot be read within the limit)."""
    import fsspec

    record: dict[str, Any] = {"path": entry.path, "size": entry.size}
    started = time.perf_counter()
    try:
        with fsspec.open(entry.path, "rb", **dict(storage_options or {})) as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise MediaError("too_large", f"the file is larger than the {max_bytes}-byte limit")
        record["size"] = len(data)
        record["content_id"] = hashlib.sha256(data).hexdigest()
        return record, data
    except HashsvcError as exc:
        record["error"] = exc.to_dict()
    except OSError as exc:
        record["error"] = {"code": "unreadable", "message": str(exc) or type(exc).__name__}
    finally:
        seconds["read"] += time.perf_counter() - started
    return record, None


def _local_service(settings: Any, lookup: Lookup) -> Any:
    from hashsvc.service.live_index import LiveIndex
    from hashsvc.service.service import Service
    from hashsvc.store import Store

    url = settings.resolved_database_url
    with _services_lock:
        service = _services.get(url)
        if service is None:
            store = Store(url)
            # As `hashsvc match`: the data folder's snapshots describe the configured store only.
            snapshots = None if lookup.database_url else Path(settings.data_dir) / "snapshots"
            service = Service(settings, store=store, live=LiveIndex(store, snapshots))
            service.live.load()
            _services[url] = service
    return service


def _remote_lookup(lookup: Lookup, pending: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    from hashsvc.client import ApiError, Client

    client = Client(lookup.url or "", key=lookup.key)
    for start in range(0, len(pending), LOOKUP_BATCH):
        chunk = pending[start : start + LOOKUP_BATCH]
        try:
            answer = client.match_hashes([hashes for _, hashes in chunk])
        except ApiError as exc:
            for record, _ in chunk:
                record["error"] = {"code": f"lookup_{exc.code}", "message": exc.message}
            continue
        for (record, _), result in zip(chunk, answer["results"], strict=True):
            record.update(decision=result["decision"], matches=result["matches"])


# ------------------------------------------------------------------------------------------ client side


def run_scan(
    client: Any,
    plan: Plan,
    output: Path,
    lookup: Lookup,
    *,
    storage_options: Mapping[str, Any] | None = None,
    on_partition: Callable[[PartitionResult], None] | None = None,
) -> Summary:
    """Submit every partition not done yet to the Dask `client`, write each result as it arrives, summarise."""
    from distributed import as_completed

    started = time.perf_counter()
    done = done_partitions(output, plan)
    todo = [n for n in range(plan.partitions) if n not in done]
    summary = Summary(files=len(plan.files), partitions=plan.partitions, partitions_skipped=len(done))
    summary.dashboard = getattr(client, "dashboard_link", None)
    futures = [
        client.submit(
            scan_partition, n, plan.partition(n), lookup, storage_options, key=f"hashsvc-scan-{n}", pure=False
        )
        for n in todo
    ]
    worker_seconds = Counter[str]()
    for future in as_completed(futures):
        result: PartitionResult = future.result()
        write_part(part_path(output, result.number, plan.format), result.records)
        future.release()
        summary.scanned += len(result.records)
        worker_seconds.update(result.seconds)
        for record in result.records:
            if "error" in record:
                summary.errors[record["error"]["code"]] = summary.errors.get(record["error"]["code"], 0) + 1
            else:
                summary.decisions[record["decision"]] = summary.decisions.get(record["decision"], 0) + 1
        if on_partition is not None:
            on_partition(result)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.worker_seconds = {name: round(value, 3) for name, value in worker_seconds.items()}
    return summary


def write_part(path: Path, records: list[dict[str, Any]]) -> None:
    """One partition's records, renamed into place whole (the checkpoint)."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = _parquet_columns()
        columns: dict[str, list[Any]] = {name: [] for name in types}
        for record in records:
            for name, value in parquet_row(record).items():
                columns[name].append(value)
        table = pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        _fsync_and_rename(tmp, path)
    else:
        body = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
        _write_atomically(path, body.encode())


def _parquet_columns() -> dict[str, Any]:
    import pyarrow as pa

    return {
        "path": pa.string(),
        "content_id": pa.string(),
        "size": pa.int64(),
        "hashes": pa.string(),  # JSON, as in the JSON lines
        "decision": pa.string(),
        "matches": pa.string(),  # JSON list
        "error_code": pa.string(),
        "error_message": pa.string(),
    }


def parquet_row(record: Mapping[str, Any]) -> dict[str, Any]:
    error = record.get("error") or {}
    return {
        "path": record["path"],
        "content_id": record.get("content_id"),
        "size": record.get("size"),
        "hashes": json.dumps(record["hashes"]) if "hashes" in record else None,
        "decision": record.get("decision"),
        "matches": json.dumps(record["matches"]) if "matches" in record else None,
        "error_code": error.get("code"),
        "error_message": error.get("message"),
    }


def read_results(output: Path) -> Iterator[dict[str, Any]]:
    """Every record of a scan's part files, partition by partition (Parquet rows in the JSON lines' shape)."""
    for path in sorted(output.glob("part-*.*")):
        if path.suffix == ".jsonl":
            with path.open() as handle:
                for line in handle:
                    yield json.loads(line)
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for row in pq.read_table(path).to_pylist():
                record: dict[str, Any] = {"path": row["path"], "size": row["size"]}
                if row["content_id"] is not None:
                    record["content_id"] = row["content_id"]
                if row["hashes"] is not None:
                    record["hashes"] = json.loads(row["hashes"])
                if row["error_code"] is not None:
                    record["error"] = {"code": row["error_code"], "message": row["error_message"]}
                else:
                    record.update(decision=row["decision"], matches=json.loads(row["matches"]))
                yield record


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
    _fsync_and_rename(tmp, path)


def _fsync_and_rename(tmp: Path, path: Path) -> None:
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
