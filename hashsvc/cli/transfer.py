"""`hashsvc import` and `hashsvc export`: partner hash lists in and out, streamed (see service/transfer.py)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
from tqdm import tqdm

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend
from hashsvc.cli.options import backend_options, emit, json_option
from hashsvc.vocabulary import LIST_FORMATS

EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".hex": "hex", ".te": "threatexchange"}
FORMAT = click.Choice(LIST_FORMATS)


def _guess_format(path: str, given: str | None) -> str:
    if given:
        return given
    guessed = EXTENSIONS.get(Path(path).suffix.lower())
    if guessed is None:
        raise click.UsageError(f"cannot tell the format of {path!r} from its name: pass --format")
    return guessed


@contextlib.contextmanager
def _lines(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdin
        return
    # newline="" lets the csv module see quoted line breaks; bad bytes become U+FFFD and then fail validation
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        yield handle


@main.command("import")
@click.option("--bank", required=True, help="The bank to import into.")
@click.option("--format", "fmt", type=FORMAT, help="File format (default: from the file name's extension).")
@click.option("--algorithm", help="The hash algorithm, for files that do not say (hex; optional for csv).")
@click.option("--dry-run", is_flag=True, help="Validate and count, change nothing.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@json_option
@backend_options
def import_command(
    backend: Backend, bank: str, fmt: str | None, algorithm: str | None, dry_run: bool, file: str, as_json: bool
) -> None:
    """Import a partner hash list: every line validated, bad lines reported (line number, reason), good ones
    added in batches. Items already in the bank (same reference, or the same hashes) are skipped, so importing
    a file twice adds nothing. Exits with 1 if any line was bad.

    \b
    Formats: csv (header: algorithm,hash,reference,source,note,...), jsonl, hex (one hash per line,
    needs --algorithm), threatexchange (python-threatexchange local_file: "pdq <hash>" per line).

    \b
    Example:
        hashsvc import --bank ncmec-hashes --format csv ncmec-2025-06.csv
        hashsvc import --bank gifct --format hex --algorithm pdq --dry-run gifct-pdq.txt
    """
    from hashsvc.service import transfer  # the store's SQLAlchemy: only when a list is read

    fmt = _guess_format(file, fmt)
    transfer.check_format(fmt, algorithm)
    show = sys.stderr.isatty()
    with _lines(file) as lines, tqdm(unit=" items", file=sys.stderr, disable=not show) as bar:
        records = transfer.read_records(lines, fmt, algorithm)
        summary = backend.import_records(bank, records, dry_run, bar.update)
    for bad in summary.bad_lines if not as_json else ():
        click.echo(f"line {bad['line']}: {bad['code']}: {bad['message']}", err=True)
    if summary.bad > len(summary.bad_lines) and not as_json:
        click.echo(f"... and {summary.bad - len(summary.bad_lines)} more bad lines", err=True)
    verb = "would add" if dry_run else "added"
    emit(
        as_json,
        summary.to_dict(),
        f"{verb} {summary.added}, already present {summary.present}, skipped (disabled) {summary.skipped_disabled}, "
        f"bad lines {summary.bad}",
    )
    if summary.bad:
        sys.exit(1)


@main.command("export")
@click.option("--bank", required=True, help="The bank to export.")
@click.option("--format", "fmt", type=FORMAT, default="csv", show_default=True)
@click.option("--algorithm", help="Only this algorithm's hashes (required for hex; threatexchange is PDQ only).")
@click.option("--include-disabled", is_flag=True, help="Also export disabled items (with a status column).")
@click.option(
    "--include-views",
    is_flag=True,
    help="Also export the hashes of edited views (crops, trimmed picture) stored with image items.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-", help="Default: stdout.")
@json_option
@backend_options
def export_command(
    backend: Backend,
    bank: str,
    fmt: str,
    algorithm: str | None,
    include_disabled: bool,
    include_views: bool,
    output: str,
    as_json: bool,
) -> None:
    """Export a bank's hashes, streamed page by page (an export is audited: hash lists are sensitive).

    Without --output the list goes to stdout and the summary to stderr. Each item's own hashes are exported;
    the crops and trimmed views stored to match edited re-uploads only with --include-views.

    \b
    Example:
        hashsvc export --bank ncmec-hashes --format csv -o ncmec.csv
        hashsvc export --bank gifct --format threatexchange > gifct.te
    """
    from hashsvc.service import transfer

    transfer.check_export(fmt, algorithm, include_disabled)  # before anything is read or audited
    items = 0

    def counted() -> Iterator[dict[str, object]]:
        nonlocal items
        for record in backend.iter_items(bank, include_disabled):
            items += 1
            yield record

    lines = transfer.write_records(
        counted(), fmt, algorithm, include_status=include_disabled, include_views=include_views
    )
    if output == "-":
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
    else:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines)
    summary = {"bank": bank, "format": fmt, "items": items, "output": output}
    text = json.dumps(summary) if as_json else f"exported {items} items of {bank} as {fmt}"
    click.echo(text, err=output == "-")
