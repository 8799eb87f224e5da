"""Shared CLI options (decorators) and output helpers: `--json`, the backend options, tables."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from hashsvc.cli.backend import Backend, LocalBackend, RemoteBackend

F = TypeVar("F", bound=Callable[..., Any])


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta["hashsvc.json"] = value  # the group's error handler answers in JSON too
    return value


def json_option(func: F) -> F:
    option = click.option(
        "--json", "as_json", is_flag=True, callback=_remember_json, help="Machine-readable JSON output."
    )
    return option(func)  # type: ignore[return-value]


def backend_options(func: F) -> F:
    """Add --url/--key (remote, through the API) and --database-url (local store); pass `backend` instead."""

    @click.option("--url", envvar="HASHSVC_URL", help="Service URL for remote mode (env HASHSVC_URL).")
    @click.option("--key", envvar="HASHSVC_KEY", help="API key for remote mode (env HASHSVC_KEY).")
    @click.option(
        "--database-url",
        help="Local mode: the store's SQLAlchemy URL (default: HASHSVC_DATABASE_URL or the embedded store).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, url: str | None, key: str | None, database_url: str | None, **kwargs: Any) -> Any:
        if url and database_url:
            raise click.UsageError("give either --url (remote) or --database-url (local), not both")
        if url and not key:
            raise click.UsageError("remote mode needs an API key: --key or HASHSVC_KEY")
        backend: Backend = RemoteBackend(url, key or "") if url else LocalBackend(database_url)
        try:
            return func(*args, backend=backend, **kwargs)
        finally:
            backend.close()

    return wrapper  # type: ignore[return-value]


def emit(as_json: bool, value: Any, human: str) -> None:
    click.echo(json.dumps(value) if as_json else human)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)
