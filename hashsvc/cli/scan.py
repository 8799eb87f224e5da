"""`hashsvc scan`: hash and match every file a platform already stores, on a Dask cluster (service/scan.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from hashsvc.cli.app import main
from hashsvc.cli.options import json_option
from hashsvc.service import scan


def _storage_options(values: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--storage-option takes NAME=VALUE, got {value!r}")
        try:
            options[name] = json.loads(raw)  # numbers, booleans and objects as JSON ...
        except ValueError:
            options[name] = raw  # ... anything else as the string itself
    if "endpoint_url" in options:  # s3fs takes the endpoint inside client_kwargs
        options.setdefault("client_kwargs", {})["endpoint_url"] = options.pop("endpoint_url")
    return options


@main.command("scan")
@click.argument("sources", nargs=-1, required=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the results, the plan and the checkpoint; run again with it to resume.")
@click.option("--format", "fmt", type=click.Choice(scan.FORMATS), default="jsonl", show_default=True,
              help="Result files: JSON lines or Parquet.")
@click.option("--partition-files", type=int, default=scan.DEFAULT_PARTITION_FILES, show_default=True,
              help="Files per partition (one Dask task, one part file).")
@click.option("--scheduler", help="Address of an existing Dask scheduler (default: a local cluster).")
@click.option("--workers", type=int, help="Worker processes of the local cluster (default: one per core).")
@click.option("--storage-option", "storage_options", multiple=True, metavar="NAME=VALUE",
              help="fsspec option for the sources, e.g. endpoint_url=http://127.0.0.1:9000 or anon=true.")
@click.option("--url", envvar="HASHSVC_URL", help="Look up through this running service (env HASHSVC_URL).")
@click.option("--key", envvar="HASHSVC_KEY", help="API key with the match scope (env HASHSVC_KEY).")
@click.option("--database-url", help="Look up in this store (default: HASHSVC_DATABASE_URL or the embedded store).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@json_option
def scan_command(
    sources: tuple[str, ...],
    output: Path,
    fmt: str,
    partition_files: int,
    scheduler: str | None,
    workers: int | None,
    storage_options: tuple[str, ...],
    url: str | None,
    key: str | None,
    database_url: str | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Hash and match every file under SOURCES (folders, files, s3://bucket/prefix...) on Dask.

    Each worker hashes with the service's own code and limits and looks the hashes up in the store (default)
    or through a running service (--url/--key, batches of 1,000 hash sets). Results go to part files in
    --output, one per partition of files; a file that cannot be decoded is recorded with its error code. Run
    the same command again to resume a stopped scan: finished partitions are not scanned again.

    \b
    Example:
        hashsvc scan /srv/uploads --output scan-2026-11
        hashsvc scan s3://uploads/2019/ --storage-option endpoint_url=http://minio:9000 \\
            --scheduler tcp://10.0.0.5:8786 --url http://hashsvc:8080 --key hsk_... --format parquet -o scan
    """
    if url and database_url:
        raise click.UsageError("give either --url (remote) or --database-url (local), not both")
    if url and not key:
        raise click.UsageError("remote lookups need an API key: --key or HASHSVC_KEY")
    if workers is not None and (scheduler or workers < 1):
        raise click.UsageError("--workers is for the local cluster: a positive number, without --scheduler")
    options = _storage_options(storage_options)
    lookup = scan.Lookup(database_url=database_url, url=url, key=key)
    plan = scan.make_plan(
        output, list(sources), partition_files=partition_files, format=fmt, storage_options=options
    )
    summary = _run(plan, output, lookup, options, scheduler, workers, progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    body = summary.to_dict()
    click.echo(
        f"scanned {summary.scanned} of {summary.files} files in {summary.seconds:.1f} s"
        f" ({body['files_per_s'] or 0} files/s); {summary.partitions_skipped} of {summary.partitions}"
        " partitions were already done"
    )
    for decision, count in sorted(summary.decisions.items()):
        click.echo(f"  {decision}: {count}")
    for code, count in sorted(summary.errors.items()):
        click.echo(f"  error {code}: {count}")
    click.echo(f"results: {output}")


def _run(
    plan: scan.Plan,
    output: Path,
    lookup: scan.Lookup,
    options: dict[str, Any],
    scheduler: str | None,
    workers: int | None,
    progress: bool,
) -> scan.Summary:
    from hashsvc.service.dask_pool import dask_client

    with dask_client(scheduler, workers) as client:
        click.echo(f"Dask dashboard: {client.dashboard_link}", err=True)
        remaining = plan.partitions - len(scan.done_partitions(output, plan))
        with tqdm(total=remaining, unit="partition", disable=not progress, file=sys.stderr) as bar:
            return scan.run_scan(
                client, plan, output, lookup, storage_options=options, on_partition=lambda _result: bar.update()
            )
