"""`hashsvc keys create|list|update|rotate|revoke`: API keys, locally or through the admin API."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend
from hashsvc.cli.options import backend_options, emit, json_option, table
from hashsvc.vocabulary import SCOPES


@main.group("keys")
def keys_group() -> None:
    """Manage API keys (locally in the store, or remotely with an admin key).

    \b
    Example:
        hashsvc keys create --name upload-pipeline --scope match
        hashsvc keys create --name prometheus --scope metrics
        hashsvc keys create --name partner-x --scope match --decision-only --rate 20 --burst 40 --max-inflight 1
        hashsvc keys list
        hashsvc keys update partner-x --rate default
        hashsvc keys create --name contractor --scope curate --expires 30d
        hashsvc keys rotate upload-pipeline --grace 2d
        hashsvc keys revoke upload-pipeline
    """


_DURATION = re.compile(r"(\d{1,6})([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_s(text: str) -> int:
    """'90d', '12h', '30m', '45s' -> seconds."""
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"{text!r} is not a duration such as 90d, 12h, 30m or 0s")
    return int(found.group(1)) * _SECONDS[found.group(2)]


def _expiry(text: str) -> str | None:
    """--expires: 'never', a duration from now (90d), or an ISO 8601 date or time; sent on as ISO text."""
    if text == "never":
        return None
    if _DURATION.fullmatch(text.strip()):
        return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=_duration_s(text))).isoformat()
    return text  # the store validates dates and times, for the API and the CLI alike


def _rate(text: str) -> float | None:
    return None if text == "default" else float(text)


def _count(text: str) -> int | None:
    return None if text == "default" else int(text)


def limit_options(command: Any) -> Any:
    """--rate, --burst, --max-inflight: per-key overrides of the server's settings ('default' clears one)."""
    for option in reversed(
        [
            click.option("--rate", "rate_per_s", type=_rate, help="Queries per second (per process); 'default'."),
            click.option("--burst", type=_count, help="Queries at once before the rate applies; 'default'."),
            click.option(
                "--max-inflight", type=_count, help="Slots this key may hold at once (per process); 'default'."
            ),
        ]
    ):
        command = option(command)
    return command


@keys_group.command("create")
@click.option("--name", required=True, help="A lower-case name for the key (shows in the audit log).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="Repeat for several scopes; a key holds exactly these (an admin key does not get metrics implicitly).",
)
@click.option(
    "--decision-only",
    is_flag=True,
    help="Match answers carry decisions and lists only: no distances, thresholds or notes (for partners).",
)
@click.option("--expires", type=_expiry, help="When the key stops working: 90d, 12h, or an ISO date/time.")
@limit_options
@json_option
@backend_options
def keys_create(
    backend: Backend,
    name: str,
    scopes: tuple[str, ...],
    decision_only: bool,
    expires: str | None,
    rate_per_s: float | None,
    burst: int | None,
    max_inflight: int | None,
    as_json: bool,
) -> None:
    """Create an API key and print it once (only its hash is stored).

    \b
    Example:
        hashsvc keys create --name analyst-anna --scope curate
        hashsvc keys create --name partner-x --scope match --decision-only --rate 20 --burst 40 --max-inflight 1
    """
    options = {"rate_per_s": rate_per_s, "burst": burst, "max_inflight": max_inflight}
    options = {k: v for k, v in options.items() if v is not None}
    if decision_only:
        options["disclosure"] = "decision"
    if expires is not None:
        options["expires_at"] = expires
    key = backend.create_key(name, list(scopes), options)
    emit(as_json, key, key["key"])


@keys_group.command("update")
@click.argument("name")
@click.option("--disclosure", type=click.Choice(["full", "decision"]), help="What its match answers carry.")
@click.option("--expires", "expires_at", type=_expiry, help="New end of life: 90d, an ISO date/time, or 'never'.")
@limit_options
@json_option
@backend_options
def keys_update(backend: Backend, name: str, as_json: bool, **options: Any) -> None:
    """Change a key's disclosure or limits, by name (or id); 'default' puts a limit back to the server's.

    \b
    Example:
        hashsvc keys update partner-x --disclosure decision --rate 5
        hashsvc keys update partner-x --max-inflight default
    """
    ctx = click.get_current_context()
    given = {k: v for k, v in options.items() if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    if not given:
        raise click.UsageError("give at least one of --disclosure, --expires, --rate, --burst, --max-inflight")
    key = backend.update_key(name, given)
    emit(as_json, key, f"updated {key['name']}: {_limits_text(key)}")


@keys_group.command("list")
@json_option
@backend_options
def keys_list(backend: Backend, as_json: bool) -> None:
    """List API keys (never their secrets).

    \b
    Example:
        hashsvc keys list --json
    """
    keys = backend.list_keys()
    if as_json:  # one object per line, as before
        for key in keys:
            click.echo(emit_line(key))
        return
    rows = [(k["id"], k["name"], ",".join(k["scopes"]), _status(k), _limits_text(k)) for k in keys]
    click.echo(table(rows, ("ID", "NAME", "SCOPES", "STATUS", "DISCLOSURE AND LIMITS")))


def _status(key: dict[str, Any]) -> str:
    if key["revoked"]:
        return "revoked"
    expires = key.get("expires_at")
    if expires is None:
        return "active"
    ended = dt.datetime.fromisoformat(expires) <= dt.datetime.now(dt.UTC)
    return f"expired {expires[:16]}" if ended else f"active until {expires[:16]}"


LISTED = (
    "id",
    "name",
    "scopes",
    "revoked",
    "created_at",
    "last_used_at",
    "disclosure",
    "rate_per_s",
    "burst",
    "expires_at",
    "previous_valid_until",
)


def emit_line(key: dict[str, object]) -> str:
    return json.dumps({k: key[k] for k in (*LISTED, "max_inflight")})


def _limits_text(key: dict[str, Any]) -> str:
    """'decision, 20/s, burst 40, 1 in flight'; limits left to the server say 'default'."""

    def shown(value: Any, unit: str) -> str:
        if value is None:
            return "default" + unit
        return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    return ", ".join(
        [
            key["disclosure"],
            shown(key["rate_per_s"], "/s"),
            "burst " + shown(key["burst"], ""),
            shown(key["max_inflight"], " in flight"),
        ]
    )


@keys_group.command("revoke")
@click.argument("name")
@json_option
@backend_options
def keys_revoke(backend: Backend, name: str, as_json: bool) -> None:
    """Revoke an API key by name (or id), for good.

    \b
    Example:
        hashsvc keys revoke upload-pipeline
    """
    key = backend.revoke_key(name)
    emit(as_json, key, f"revoked {key['name']}")


@keys_group.command("rotate")
@click.argument("name")
@click.option(
    "--grace",
    type=_duration_s,
    default="1d",
    show_default=True,
    help="How long the old secret keeps working (at most 30d; 0s stops it now).",
)
@json_option
@backend_options
def keys_rotate(backend: Backend, name: str, grace: int, as_json: bool) -> None:
    """Give a key a new secret, printed once; the old one keeps working for the grace period.

    Deploy the new secret to every client within the grace period; after it only the new one works.

    \b
    Example:
        hashsvc keys rotate upload-pipeline --grace 2d
    """
    key = backend.rotate_key(name, grace)
    emit(as_json, key, key["key"])
    if not as_json:
        click.echo(f"the previous secret of {key['name']} works until {key['previous_valid_until']}", err=True)
