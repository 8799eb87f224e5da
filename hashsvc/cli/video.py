"""`hashsvc video rules|import|export`: a bank's vPDQ rules and vPDQ hash lists, on the local store.

Adding, hashing and matching videos need no command of their own: `hashsvc add`, `hashsvc hash` and
`hashsvc match` take video files and tell them from images by content.
"""

from __future__ import annotations

from pathlib import Path

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import LocalBackend
from hashsvc.cli.options import emit, json_option

_DATABASE_URL = click.option(
    "--database-url", help="The store's SQLAlchemy URL (default: HASHSVC_DATABASE_URL or the embedded store)."
)


@main.group("video")
def video_group() -> None:
    """Video banks: vPDQ match rules per bank, and vPDQ hash lists in python-threatexchange's format.

    \b
    Example:
        hashsvc video rules gifct --query-share 70
        hashsvc video export gifct > gifct.vpdq.txt
        hashsvc video import partner-videos partner.vpdq.txt
    """


@video_group.command("rules")
@click.argument("bank")
@click.option("--query-share", type=click.FloatRange(0, 100), help="Percent of the query's frames that must match.")
@click.option("--item-share", type=click.FloatRange(0, 100), help="Percent of the item's frames that must match.")
@click.option("--quality", type=click.IntRange(0, 100), help="Frames of lower PDQ quality are ignored.")
@_DATABASE_URL
@json_option
def rules_command(
    bank: str,
    query_share: float | None,
    item_share: float | None,
    quality: int | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Show a bank's vPDQ rule, or set it (fields not given go back to Meta's defaults: 80, 0, 50).

    \b
    Example:
        hashsvc video rules gifct
        hashsvc video rules gifct --query-share 70 --item-share 10
    """
    backend = LocalBackend(database_url)
    try:
        video = backend.service.video
        given = {"query_share": query_share, "item_share": item_share, "quality": quality}
        if all(value is None for value in given.values()):
            result = video.get_rules(bank)
        else:
            result = video.set_rules(bank, {k: v for k, v in given.items() if v is not None}, backend.actor)
    finally:
        backend.close()
    human = f"{bank}: query share >= {result['query_share']:g} %, item share >= {result['item_share']:g} %, " \
        f"frames of quality >= {result['quality']}"  # fmt: skip
    emit(as_json, result, human)


@video_group.command("import")
@click.argument("bank")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@_DATABASE_URL
@json_option
def import_command(bank: str, file: click.File, database_url: str | None, as_json: bool) -> None:
    """Add one item per line of `vpdq <signal>` (python-threatexchange's local_file layout; a bare signal, the
    JSON list of "pdq,quality,timestamp", works too). Bad lines are reported; exit status 1 if any.

    \b
    Example:
        hashsvc video import partner-videos partner.vpdq.txt
    """
    backend = LocalBackend(database_url)
    try:
        result = backend.service.video.import_lines(bank, file, backend.actor)  # type: ignore[arg-type]
    finally:
        backend.close()
    human = "\n".join(
        [f"added {len(result['accepted'])} video items"]
        + [f"line {bad['line']}: {bad['code']}: {bad['message']}" for bad in result["rejected"]]
    )
    emit(as_json, result, human)
    if result["rejected"]:
        raise SystemExit(1)


@video_group.command("export")
@click.argument("bank")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="File to write (default stdout).")
@_DATABASE_URL
def export_command(bank: str, output: Path | None, database_url: str | None) -> None:
    """Write the bank's active video items as `vpdq <signal>` lines (python-threatexchange's local_file layout).

    \b
    Example:
        hashsvc video export gifct -o gifct.vpdq.txt
    """
    backend = LocalBackend(database_url)
    try:
        backend.store.record_audit(backend.actor, "items.export", bank=bank, details={"format": "vpdq"})
        lines = backend.service.video.export_lines(bank)
        if output is None:
            for line in lines:
                click.echo(line)
        else:
            with output.open("w", encoding="utf-8") as handle:
                for line in lines:
                    handle.write(line + "\n")
    finally:
        backend.close()
