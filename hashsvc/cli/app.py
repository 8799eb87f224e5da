"""The `hashsvc` command group, and the one place where errors become messages and exit codes.

Exit codes: 0 success; 1 something failed (a domain error, a refused request, a bad line, a file that could not
be added); 2 usage (click's own); 3 the store's schema is missing or old (run `hashsvc migrate`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hashsvc.client import ApiError
from hashsvc.errors import HashsvcError


class HashsvcGroup(click.Group):
    """A click group that turns HashsvcError / ApiError into one clean line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HashsvcError as exc:
            _fail(ctx, exc.to_dict(), exc.exit_code)
        except ApiError as exc:
            _fail(ctx, exc.to_dict(), 1)


def _fail(ctx: click.Context, error: dict[str, str], code: int) -> None:
    if ctx.meta.get("hashsvc.json"):  # set by the --json option: scripts get the error as JSON on stdout too
        click.echo(json.dumps({"error": error}))
    click.echo(f"error: {error['code']}: {error['message']}", err=True)
    sys.exit(code)


@click.group(cls=HashsvcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hashsvc")
def main() -> None:
    """hashsvc: perceptual-hash matching of uploads against banks of known illegal images.

    Curation commands work locally against the store (--database-url, default the embedded store) or
    remotely through the HTTP API (--url and --key, or HASHSVC_URL and HASHSVC_KEY).

    \b
    Example:
        hashsvc bank create ncmec --category csam
        hashsvc import --bank ncmec --format csv ncmec.csv
        HASHSVC_URL=http://127.0.0.1:8080 HASHSVC_KEY=hsk_... hashsvc bank list
    """
