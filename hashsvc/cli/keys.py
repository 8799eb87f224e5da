"""`hashsvc keys create|list|revoke`: API keys, locally or through the admin API."""

from __future__ import annotations

import json

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import Backend
from hashsvc.cli.options import backend_options, emit, json_option, table


@main.group("keys")
def keys_group() -> None:
    """Manage API keys (locally in the store, or remotely with an admin key).

    \b
    Example:
        hashsvc keys create --name upload-pipeline --scope match
        hashsvc keys list
        hashsvc keys revoke upload-pipeline
    """


@keys_group.command("create")
@click.option("--name", required=True, help="A lower-case name for the key (shows in the audit log).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["match", "curate", "admin"]),
    help="Repeat for several scopes.",
)
@json_option
@backend_options
def keys_create(backend: Backend, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create an API key and print it once (only its hash is stored).

    \b
    Example:
        hashsvc keys create --name analyst-anna --scope curate
    """
    key = backend.create_key(name, list(scopes))
    emit(as_json, key, key["key"])


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
    rows = [(k["id"], k["name"], ",".join(k["scopes"]), "revoked" if k["revoked"] else "active") for k in keys]
    click.echo(table(rows, ("ID", "NAME", "SCOPES", "STATUS")))


def emit_line(key: dict[str, object]) -> str:
    return json.dumps({k: key[k] for k in ("id", "name", "scopes", "revoked", "created_at", "last_used_at")})


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
