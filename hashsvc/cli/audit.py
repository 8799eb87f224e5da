"""`hashsvc audit`: read the audit log (who changed, exported or probed what, and when), or export it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend
from hashsvc.cli.options import backend_options, json_option, table


@main.command("audit")
@click.option("--actor", help="Only this actor (a key name, or cli:<user> for local commands).")
@click.option("--action", help="Only this action (item.disable), or a family (item.*).")
@click.option("--bank", help="Only entries about this bank.")
@click.option("--item", "item_id", type=int, help="Only entries about this item id.")
@click.option("--since", help="From this time on (ISO 8601; a date alone is its midnight UTC).")
@click.option("--until", help="Before this time (ISO 8601).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Entries to show.")
@click.option(
    "--export",
    "export_format",
    type=click.Choice(["csv", "jsonl"]),
    help="Write every matching entry (all pages, newest first) in this format instead of a page.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-", help="With --export.")
@json_option
@backend_options
def audit_command(
    backend: Backend,
    actor: str | None,
    action: str | None,
    bank: str | None,
    item_id: int | None,
    since: str | None,
    until: str | None,
    limit: int,
    export_format: str | None,
    output: str,
    as_json: bool,
) -> None:
    """Show the audit log, newest first: every change to banks, items and keys, exports, suspected probing.

    Locally it reads the store; remotely it needs a key with the admin scope.

    \b
    Example:
        hashsvc audit --bank ncmec --since 2026-11-01
        hashsvc audit --action "item.*" --json
        hashsvc audit --export csv -o audit-2026-11.csv --since 2026-11-01 --until 2026-12-01
    """
    filters = {"actor": actor, "action": action, "bank": bank, "item_id": item_id, "since": since, "until": until}
    if export_format is not None:
        written = _export(backend, filters, export_format, output)
        click.echo(json.dumps({"entries": written, "output": output}) if as_json else f"{written} entries", err=True)
        return
    page = backend.audit_page({**filters, "limit": limit})
    if as_json:
        click.echo(json.dumps(page))
        return
    rows = [
        (
            e["id"],
            e["at"][:19].replace("T", " "),
            e["actor"],
            e["action"],
            e["bank"] or "-",
            e["item_id"] or "-",
            _details(e["details"]),
        )
        for e in page["entries"]
    ]
    click.echo(table(rows, ("ID", "AT (UTC)", "ACTOR", "ACTION", "BANK", "ITEM", "DETAILS")))
    if page["next_before"] is not None:
        click.echo(f"(more: add --until or export with --export; next page before id {page['next_before']})", err=True)


def _export(backend: Backend, filters: dict[str, Any], fmt: str, output: str) -> int:
    from hashsvc.service.audit import csv_lines  # it imports the store: not at `--help` time

    lines = csv_lines if fmt == "csv" else _jsonl_lines
    written = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal written
        for entry in _all_entries(backend, filters):
            written += 1
            yield entry

    if output == "-":
        sys.stdout.writelines(lines(counted()))
        sys.stdout.flush()
    else:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines(counted()))
    return written


def _all_entries(backend: Backend, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    before = None
    while True:
        page = backend.audit_page({**filters, "limit": 1000, "before": before})
        yield from page["entries"]
        if page["next_before"] is None:
            return
        before = page["next_before"]


def _jsonl_lines(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(entry) + "\n"




def _details(details: dict[str, Any]) -> str:
    text = json.dumps(details, sort_keys=True) if details else "-"
    return text if len(text) <= 60 else text[:57] + "..."
