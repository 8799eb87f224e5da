"""`hashsvc video rules|import|export`: a bank's vPDQ rules and vPDQ hash lists.

Adding, hashing and matching videos need no command of their own: `hashsvc add`, `hashsvc hash` and
`hashsvc match` take video files and tell them from images by content.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any, TextIO

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend, LocalBackend, RemoteBackend, require_local
from hashsvc.cli.options import backend_options, emit, json_option
from hashsvc.client import ApiError
from hashsvc.errors import HashsvcError
from hashsvc.vocabulary import VPDQ_SIGNAL_TYPE as SIGNAL_TYPE


@main.group("video")
def video_group() -> None:
    """Video banks: vPDQ match rules per bank, and vPDQ hash lists in python-threatexchange's format.

    \b
    Example:
        hashsvc video rules gifct --query-share 70
        hashsvc video export gifct > gifct.vpdq.txt
        hashsvc video import partner-videos partner.vpdq.txt
    """


def _rules_path(bank: str) -> str:
    return f"/v1/banks/{urllib.parse.quote(bank, safe='')}/video-rules"


@video_group.command("rules")
@click.argument("bank")
@click.option("--query-share", type=click.FloatRange(0, 100), help="Percent of the query's frames that must match.")
@click.option("--item-share", type=click.FloatRange(0, 100), help="Percent of the item's frames that must match.")
@click.option("--quality", type=click.IntRange(0, 100), help="Frames of lower PDQ quality are ignored.")
@backend_options
@json_option
def rules_command(
    bank: str, query_share: float | None, item_share: float | None, quality: int | None, backend: Backend,
    as_json: bool,
) -> None:  # fmt: skip
    """Show a bank's vPDQ rule, or set it (fields not given go back to Meta's defaults: 80, 0, 50).

    \b
    Example:
        hashsvc video rules gifct
        hashsvc video rules gifct --query-share 70 --item-share 10
    """
    given = {k: v for k, v in {"query_share": query_share, "item_share": item_share, "quality": quality}.items()
             if v is not None}  # fmt: skip
    if isinstance(backend, RemoteBackend):
        method = "PUT" if given else "GET"
        result = backend.client.request(method, _rules_path(bank), json_body=given if given else None)
    else:
        local = require_local(backend, "video rules")
        video = local.service.video
        result = video.set_rules(bank, given, local.actor) if given else video.get_rules(bank)
    human = f"{bank}: query share >= {result['query_share']:g} %, item share >= {result['item_share']:g} %, " \
        f"frames of quality >= {result['quality']}"  # fmt: skip
    emit(as_json, result, human)


@video_group.command("import")
@click.argument("bank")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@backend_options
@json_option
def import_command(bank: str, file: TextIO, backend: Backend, as_json: bool) -> None:
    """Add one video item per line of `vpdq <signal>` (python-threatexchange's local_file layout; a bare
    signal, the JSON list of "pdq,quality,timestamp", works too). Bad lines are reported; exit status 1 if any.

    \b
    Example:
        hashsvc video import partner-videos partner.vpdq.txt
    """
    if isinstance(backend, LocalBackend):
        result = backend.service.video.import_lines(bank, file, backend.actor)
    else:
        result = _import_remote(backend, bank, file)
    human = "\n".join(
        [f"added {len(result['accepted'])} video items"]
        + [f"line {bad['line']}: {bad['code']}: {bad['message']}" for bad in result["rejected"]]
    )
    emit(as_json, result, human)
    if result["rejected"]:
        raise SystemExit(1)


def _import_remote(backend: Backend, bank: str, lines: TextIO) -> dict[str, Any]:
    assert isinstance(backend, RemoteBackend)
    backend.client.get_bank(bank)  # 404 before reading the file
    accepted, rejected = [], []
    path = f"/v1/banks/{urllib.parse.quote(bank, safe='')}/items"
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith(SIGNAL_TYPE):
            text = text[len(SIGNAL_TYPE) :].strip()
        try:
            signal = json.loads(text)
        except ValueError:
            rejected.append({"line": number, "code": "invalid_hash", "message": "not a JSON list"})
            continue
        try:
            item = backend.client.request("POST", path, json_body={"hashes": {"vpdq": signal}})
            accepted.append({"line": number, "item_id": item["id"]})
        except (HashsvcError, ApiError) as exc:  # the server refused this line
            rejected.append({"line": number, **exc.to_dict()})
    return {"accepted": accepted, "rejected": rejected}


@video_group.command("export")
@click.argument("bank")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="File to write (default stdout).")
@backend_options
@json_option
def export_command(bank: str, output: Path | None, backend: Backend, as_json: bool) -> None:
    """Write the bank's active video items as `vpdq <signal>` lines (python-threatexchange's local_file
    layout). Runs against the store (local mode); `--json` writes {"item_id", "vpdq"} objects instead.

    \b
    Example:
        hashsvc video export gifct -o gifct.vpdq.txt
    """
    local = require_local(backend, "video export")
    local.store.get_bank(bank)
    local.store.record_audit(local.actor, "items.export", bank=bank, details={"format": "vpdq"})
    lines = local.service.video.export_lines(bank)
    if as_json:
        lines = (json.dumps({"vpdq": json.loads(line.split(" ", 1)[1])}) for line in lines)
    if output is None:
        for line in lines:
            click.echo(line)
        return
    with output.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
