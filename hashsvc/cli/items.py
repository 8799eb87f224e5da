"""Item commands: add images, disable/enable/delete an item, search for a hash, match files, reindex."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend, require_local
from hashsvc.cli.basic import _read_limited
from hashsvc.cli.options import backend_options, emit, json_option, table
from hashsvc.client import ApiError
from hashsvc.config import load_settings
from hashsvc.errors import HashsvcError


def _files(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, and every file under the directories named (recursively, hidden ones skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts))
            )
        else:
            found.append(path)
    return found


def _progress(paths: list[Path]) -> Iterator[Path]:
    yield from tqdm(paths, unit="file", file=sys.stderr, disable=not sys.stderr.isatty() or len(paths) < 2)


def _reference(template: str | None, path: Path) -> str | None:
    if template is None:
        return None
    return template.format(name=path.name, stem=path.stem)


def _add_one(backend: Backend, bank: str, path: Path, fields: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    try:
        data = _read_limited(path, max_bytes)
        item = backend.add_image(bank, data, fields)  # the service answers with the holder if the bytes are known
        status = "present" if item.get("already_present") else "added"
        return {"file": str(path), "status": status, "item_id": item["id"]}
    except (HashsvcError, ApiError) as exc:
        if getattr(exc, "code", "") in ("not_found", "unauthorized", "forbidden", "unreachable"):
            raise  # the bank or the service is the problem, not this file: stop now
        return {"file": str(path), "status": "failed", "error": exc.to_dict()}
    except OSError as exc:
        return {"file": str(path), "status": "failed", "error": {"code": "unreadable", "message": str(exc)}}


@main.command("add")
@click.option("--bank", required=True, help="The bank to add to.")
@click.option("--reference", help="The item's reference; with several files use {name} or {stem}, e.g. case-7/{name}.")
@click.option("--note", help="A note stored with every item added.")
@click.option("--source", help="Where the images came from (stored with each item).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
@backend_options
def add_command(
    backend: Backend,
    bank: str,
    reference: str | None,
    note: str | None,
    source: str | None,
    paths: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Hash image files (directories recursively) and add them to a bank; images themselves are never stored.

    A file whose exact bytes (SHA-256) are already in the bank is reported as present, not added twice.
    Exits with 1 if any file failed.

    \b
    Example:
        hashsvc add --bank investigations --note "case 2291" ./seized/
        hashsvc add --bank investigations --reference "case-2291/{name}" a.jpg b.png
    """
    files = _files(paths)
    if reference and len(files) > 1 and "{" not in reference:
        raise click.UsageError("several files need a --reference template with {name} or {stem}, or no reference")
    max_bytes = load_settings().max_upload_bytes
    backend.get_bank(bank)
    counts = {"added": 0, "present": 0, "failed": 0}
    for path in _progress(files):
        fields = {"reference": _reference(reference, path), "note": note, "source": source}
        result = _add_one(backend, bank, path, {k: v for k, v in fields.items() if v is not None}, max_bytes)
        counts[result["status"]] += 1
        if as_json:
            click.echo(json.dumps(result))
        elif result["status"] == "failed":
            click.echo(f"failed   {path}: {result['error']['code']}: {result['error']['message']}")
        else:
            click.echo(f"{result['status']:<8} {path} (item {result['item_id']})")
    emit(
        as_json,
        {"summary": counts},
        f"{counts['added']} added, {counts['present']} already present, {counts['failed']} failed",
    )
    if counts["failed"]:
        sys.exit(1)


def _item_text(item: dict[str, Any]) -> str:
    lines = [
        f"item     {item['id']} in bank {item['bank']}",
        f"status   {item['status']}"
        + (f" ({item['status_reason']}, by {item['status_by']})" if item["status_reason"] else ""),
        f"ref      {item['reference'] or '-'}",
        f"note     {item['note'] or '-'}",
    ]
    lines += [f"{h['algorithm']:<8} {h['value']}" for h in item["hashes"]]
    return "\n".join(lines)


@main.command("disable")
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Why (goes into the item and the audit log).")
@json_option
@backend_options
def disable_command(backend: Backend, item_id: int, reason: str, as_json: bool) -> None:
    """Stop an item from matching (a false positive, say); reversible with `enable`.

    \b
    Example:
        hashsvc disable 4711 --reason "false positive: company logo, ticket SUP-118"
    """
    item = backend.set_status(item_id, "disabled", reason)
    emit(as_json, item, _item_text(item))


@main.command("enable")
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Why (goes into the item and the audit log).")
@json_option
@backend_options
def enable_command(backend: Backend, item_id: int, reason: str, as_json: bool) -> None:
    """Let a disabled item match again.

    \b
    Example:
        hashsvc enable 4711 --reason "re-reviewed: confirmed match"
    """
    item = backend.set_status(item_id, "active", reason)
    emit(as_json, item, _item_text(item))


@main.command("delete")
@click.argument("item_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@backend_options
def delete_command(backend: Backend, item_id: int, yes: bool, as_json: bool) -> None:
    """Delete an item and its hashes for good (prefer `disable`, which keeps the record).

    \b
    Example:
        hashsvc delete 4711 --yes
    """
    if not yes:
        item = backend.get_item(item_id)
        click.confirm(
            f"delete item {item_id} ({item['reference'] or 'no reference'}) from {item['bank']}?", abort=True, err=True
        )
    backend.delete_item(item_id)
    emit(as_json, {"deleted": item_id}, f"deleted item {item_id}")


@main.command("search")
@click.argument("hash_value", metavar="HASH")
@click.option("--algorithm", default="pdq", show_default=True, help="pdq, phash, dhash, md5 or sha256.")
@click.option("--max-distance", type=int, help="Largest Hamming distance (default: the algorithm's threshold).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@backend_options
def search_command(
    backend: Backend, hash_value: str, algorithm: str, max_distance: int | None, limit: int, as_json: bool
) -> None:
    """Which items hold this hash, or one near it, with their distances (nearest first).

    Active items are searched within the distance; exact holders are listed whatever their status.

    \b
    Example:
        hashsvc search f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22 --max-distance 40
    """
    found = backend.search(algorithm, hash_value, max_distance, limit)
    rows = [(m["item_id"], m["bank"], m["reference"], m["status"], m["distance"]) for m in found["matches"]]
    emit(as_json, found, table(rows, ("ITEM", "BANK", "REFERENCE", "STATUS", "DISTANCE")) if rows else "no items")


@main.command("match")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@json_option
@backend_options
def match_command(backend: Backend, files: tuple[Path, ...], as_json: bool) -> None:
    """What the service would decide about image files (block / review / allow), and which items matched.

    Exits with 1 if any file could not be matched (unreadable, not an image...).

    \b
    Example:
        hashsvc match suspicious.jpg
        hashsvc match --json uploads/*.jpg
    """
    max_bytes = load_settings().max_upload_bytes
    failed = 0
    for path in files:
        try:
            result = {"file": str(path), **backend.match_image(_read_limited(path, max_bytes))}
        except (HashsvcError, ApiError) as exc:
            if getattr(exc, "code", "") in ("unauthorized", "forbidden", "unreachable"):
                raise
            result = {"file": str(path), "error": exc.to_dict()}
        except OSError as exc:
            result = {"file": str(path), "error": {"code": "unreadable", "message": str(exc)}}
        failed += "error" in result
        if as_json:
            click.echo(json.dumps(result))
        elif "error" in result:
            click.echo(f"{path}: error {result['error']['code']}: {result['error']['message']}")
        else:
            click.echo(f"{path}: {result['decision']}")
            for m in result["matches"]:
                click.echo(f"  {m['bank']} item {m['item_id']} ({m.get('reference') or '-'}) {_evidence_text(m)}")
    if failed:
        sys.exit(1)


@main.command("reindex")
@click.option("--snapshot-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: DATA_DIR/snapshots.")
@json_option
@backend_options
def reindex_command(backend: Backend, snapshot_dir: Path | None, as_json: bool) -> None:
    """Rebuild the index snapshots from the store, so serving processes start fast after a big import.

    Runs on the server machine (local mode only).

    \b
    Example:
        hashsvc reindex
    """
    result = require_local(backend, "reindex").reindex(snapshot_dir)
    sizes = ", ".join(f"{k} {v}" for k, v in result["sizes"].items())
    emit(as_json, result, f"wrote snapshots to {result['snapshot_dir']} at sequence {result['sequence']}: {sizes}")


def _evidence_text(match: dict[str, Any]) -> str:
    """One match's evidence: a hash distance, a local-feature verification, or video frame shares."""
    action = match.get("action", "-")
    if "distance" in match:
        return f"{match['algorithm']} distance {match['distance']}/{match['threshold']} {match['variant']} -> {action}"
    if "inliers" in match:
        return f"{match['algorithm']} {match['inliers']} inliers, ratio {match['ratio']:.2f} -> {action}"
    shown = {k: v for k, v in match.items() if k not in ("bank", "item_id", "reference", "category", "action")}
    return f"{json.dumps(shown, sort_keys=True)} -> {action}"

