"""`hashsvc exchange add|list|show|sync|pause|resume|remove|run|rotate-credentials|new-key`: partner feeds.

Locally (the store) or remotely (the API, `--url/--key`); `run`, `rotate-credentials` and `new-key` are local only,
and a remote `sync` asks the server's scheduler to sync now rather than syncing in this process.
Credentials are read from a JSON file or stdin, never from the command line (where `ps` would show them), and
never printed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hashsvc.cli.app import main
from hashsvc.cli.backend import cli_actor
from hashsvc.cli.options import emit, json_option, table
from hashsvc.client import Client, _quote
from hashsvc.config import load_settings
from hashsvc.vocabulary import EXCHANGE_TYPES, LIST_FORMATS

# The store and the feed clients are imported where a command needs them: `hashsvc --help` must stay light.
if TYPE_CHECKING:
    from hashsvc.service.exchanges import ExchangeService, SyncResult

F = TypeVar("F", bound=Callable[..., Any])


class Feeds:
    """The exchange use cases, locally through ExchangeService or remotely through the API."""

    def __init__(self, url: str | None, key: str | None, database_url: str | None) -> None:
        self.client: Client | None = None
        self.local: ExchangeService | None = None
        self.store: Store | None = None
        if url:
            self.client = Client(url, key)
            return
        settings = load_settings({"database_url": database_url})
        from hashsvc.service.exchanges import ExchangeService
        from hashsvc.store import Store, check_schema

        check_schema(settings.resolved_database_url)
        self.store = Store(settings.resolved_database_url)
        self.local = ExchangeService(self.store, settings)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def need_local(self, what: str) -> ExchangeService:
        if self.local is None:
            raise click.UsageError(f"{what} works on the server's store only (drop --url)")
        return self.local

    def call(self, local: Callable[[ExchangeService], Any], method: str, path: str, body: Any = None) -> Any:
        if self.local is not None:
            return local(self.local)
        assert self.client is not None
        return self.client.request(method, "/v1/exchanges" + path, json_body=body)


def feed_options(func: F) -> F:
    import functools

    @click.option("--url", envvar="HASHSVC_URL", help="Service URL for remote mode (env HASHSVC_URL).")
    @click.option("--key", envvar="HASHSVC_KEY", help="API key for remote mode (env HASHSVC_KEY).")
    @click.option("--database-url", help="Local mode: the store's SQLAlchemy URL (default: the configured store).")
    @functools.wraps(func)
    def wrapper(*args: Any, url: str | None, key: str | None, database_url: str | None, **kwargs: Any) -> Any:
        if url and database_url:
            raise click.UsageError("give either --url (remote) or --database-url (local), not both")
        if url and not key:
            raise click.UsageError("remote mode needs an API key: --key or HASHSVC_KEY")
        feeds = Feeds(url, key, database_url)
        try:
            return func(*args, feeds=feeds, **kwargs)
        finally:
            feeds.close()

    return wrapper  # type: ignore[return-value]


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") + "Z" if value else "never"


def _every(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _show_text(exchange: dict[str, Any]) -> str:
    status = exchange["status"]
    config = ", ".join(f"{k}={v}" for k, v in exchange["config"].items()) or "-"
    totals = exchange.get("totals") or {}
    lines = [
        f"exchange     {exchange['name']} ({exchange['type']}) -> bank {exchange['bank']}",
        f"config       {config}",
        f"credentials  {exchange['credentials']}",
        f"every        {_every(exchange['every_s'])}{' (paused)' if exchange['paused'] else ''}",
        f"feedback     {'on' if exchange['feedback'] else 'off'}",
        f"state        {status['state']}",
        f"last success {_when(status['last_success_at'])}"
        + (f" ({status['lag_s']:.0f} s ago)" if status["lag_s"] is not None else ""),
        f"next run     {_when(status['next_run_at'])}",
        f"entries      {status['entries']} active in the bank, {status['kept_aside']} kept aside (signal types "
        "hashsvc does not store)",
    ]
    if status["last_error"]:
        lines.append(f"last error   {_when(status['last_error_at'])}: {status['last_error']}")
        lines.append(f"failures     {status['failures']} in a row")
    if totals:
        lines.append("totals       " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return "\n".join(lines)


def _sync_text(result: dict[str, Any]) -> str:
    counts = result["counts"]
    head = "synced" if result["ok"] else "sync FAILED"
    parts = ", ".join(
        f"{name} {counts.get(name, 0)}" for name in ("added", "updated", "retracted", "restored", "unchanged")
    )
    lines = [
        f"{head} {result['exchange']}: {result['pages']} pages, {counts.get('fetched', 0)} entries: {parts}; "
        f"kept aside {counts.get('unknown', 0)}, bad {counts.get('bad', 0)} ({result['seconds']:.1f} s)"
    ]
    lines += [f"bad entry {problem}" for problem in result.get("problems", [])[:10]]
    if result["error"]:
        lines.append(f"error: {result['error']}; next attempt {_when(result['next_run_at'])}")
    return "\n".join(lines)


def _credentials(path: str | None, from_stdin: bool) -> dict[str, Any] | None:
    if path and from_stdin:
        raise click.UsageError("give --credentials-file or --credentials-stdin, not both")
    if not path and not from_stdin:
        return None
    try:
        text = sys.stdin.read() if from_stdin else Path(path or "").read_text(encoding="utf-8")
        value = json.loads(text)
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"credentials must be a JSON object in a file or on stdin: {exc}") from None
    if not isinstance(value, dict):
        raise click.UsageError('credentials must be a JSON object such as {"username": ..., "password": ...}')
    return value


def credential_options(func: F) -> F:
    func = click.option("--credentials-stdin", is_flag=True, help="Read the credentials (JSON) from stdin.")(func)
    return click.option(  # type: ignore[return-value]
        "--credentials-file",
        type=click.Path(dir_okay=False),
        help='A JSON file with the partner credentials, e.g. {"username": "...", "password": "..."}.',
    )(func)


@main.group("exchange")
def exchange_group() -> None:
    """Partner hash feeds: NCMEC, StopNCII, Tech Against Terrorism, ThreatExchange, or a hash list at a URL.

    Each exchange feeds one bank on a schedule: additions, updates and retractions arrive by themselves.

    \b
    Example:
        hashsvc exchange new-key > /etc/hashsvc/exchange.key
        export HASHSVC_EXCHANGE_KEY_FILE=/etc/hashsvc/exchange.key
        hashsvc exchange add ncmec --type ncmec --bank ncmec-industry --every 1h --credentials-file ncmec.json
        hashsvc exchange sync ncmec
        hashsvc exchange list
    """


@exchange_group.command("add")
@click.argument("name")
@click.option("--type", "kind", required=True, type=click.Choice(sorted(EXCHANGE_TYPES)), help="The partner API.")
@click.option("--bank", required=True, help="The bank the feed fills (one feed per bank).")
@click.option(
    "--feed-url", "list_url", help="url type: the hash list's http(s) URL (--url is the service, for remote mode)."
)
@click.option("--format", "fmt", type=click.Choice(LIST_FORMATS), help="url type: the list's format (csv).")
@click.option("--algorithm", help="url type: the hash algorithm of hex / bare-hash lists.")
@click.option("--base-url", help="The partner API's base URL (its test or NGO environment, a proxy).")
@click.option("--privacy-group", help="threatexchange type: the privacy group id.")
@click.option("--every", default="1h", show_default=True, help="How often to sync: 15m, 1h, 1d...")
@click.option("--feedback/--no-feedback", default=False, help="Report false positives back (ncmec, stopncii).")
@credential_options
@feed_options
@json_option
def exchange_add(
    feeds: Feeds,
    name: str,
    kind: str,
    bank: str,
    list_url: str | None,
    fmt: str | None,
    algorithm: str | None,
    base_url: str | None,
    privacy_group: str | None,
    every: str,
    feedback: bool,
    credentials_file: str | None,
    credentials_stdin: bool,
    as_json: bool,
) -> None:
    """Configure a feed into an existing bank.

    \b
    Example:
        hashsvc exchange add ncmec --type ncmec --bank ncmec-industry --credentials-file ncmec.json
        hashsvc exchange add iwf-list --type url --bank iwf --feed-url https://lists.example/iwf.csv --every 6h
    """
    config = {
        "url": list_url,
        "format": fmt,
        "algorithm": algorithm,
        "base_url": base_url,
        "privacy_group": privacy_group,
    }
    body: dict[str, Any] = {
        "name": name,
        "type": kind,
        "bank": bank,
        "every": every,
        "feedback": feedback,
        "config": {k: v for k, v in config.items() if v is not None},
    }
    credentials = _credentials(credentials_file, credentials_stdin)
    if credentials is not None:
        body["credentials"] = credentials
    created = feeds.call(lambda s: s.add(body, cli_actor()), "POST", "", body)
    emit(
        as_json,
        created,
        f"added exchange {created['name']} ({created['type']} -> bank {created['bank']}, "
        f"every {_every(created['every_s'])}, credentials {created['credentials']})",
    )


@exchange_group.command("list")
@feed_options
@json_option
def exchange_list(feeds: Feeds, as_json: bool) -> None:
    """List the feeds with their status.

    \b
    Example:
        hashsvc exchange list
    """
    found = feeds.call(lambda s: s.list(), "GET", "")
    found = found if isinstance(found, list) else found["exchanges"]
    rows = [
        (
            e["name"],
            e["type"],
            e["bank"],
            e["status"]["state"],
            _every(e["every_s"]),
            _when(e["status"]["last_success_at"]),
            e["status"]["entries"],
            e["status"]["kept_aside"],
            (e["status"]["last_error"] or "")[:60],
        )
        for e in found
    ]
    headers = ("name", "type", "bank", "state", "every", "last success", "entries", "aside", "last error")
    emit(as_json, found, table(rows, headers) if rows else "no exchanges")


@exchange_group.command("show")
@click.argument("name")
@feed_options
@json_option
def exchange_show(feeds: Feeds, name: str, as_json: bool) -> None:
    """Show one feed: its configuration (never its credentials), status and running totals.

    \b
    Example:
        hashsvc exchange show ncmec
    """
    found = feeds.call(lambda s: s.show(name), "GET", f"/{_quote(name)}")
    emit(as_json, found, _show_text(found))


@exchange_group.command("sync")
@click.argument("name")
@feed_options
@json_option
def exchange_sync(feeds: Feeds, name: str, as_json: bool) -> None:
    """Sync a feed now (remotely: ask the server's scheduler to sync it now).

    The exit status is 1 if the sync failed; it resumes from its last page next time.

    \b
    Example:
        hashsvc exchange sync ncmec
    """
    if feeds.local is None:
        found = feeds.call(lambda s: None, "POST", f"/{_quote(name)}/sync")
        emit(as_json, found, f"sync of {name} requested; the server's scheduler runs it within seconds")
        return
    result: SyncResult = feeds.local.sync(name, f"cli:{socket.gethostname()}:{os.getpid()}")
    emit(as_json, result.to_dict(), _sync_text(result.to_dict()))
    if not result.ok:
        sys.exit(1)


def _toggle(verb: str, paused: bool) -> Callable[..., None]:
    @click.argument("name")
    @feed_options
    @json_option
    def command(feeds: Feeds, name: str, as_json: bool) -> None:
        found = feeds.call(
            lambda s: s.pause(name, cli_actor()) if paused else s.resume(name, cli_actor()),
            "POST",
            f"/{_quote(name)}/{verb}",
        )
        emit(as_json, found, f"{verb}d {name}" if verb == "pause" else f"resumed {name}; it syncs within seconds")

    command.__doc__ = f"{verb.capitalize()} a feed's schedule.\n\n\b\nExample:\n    hashsvc exchange {verb} ncmec\n"
    return command


exchange_group.command("pause")(_toggle("pause", True))
exchange_group.command("resume")(_toggle("resume", False))


@exchange_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@feed_options
@json_option
def exchange_remove(feeds: Feeds, name: str, yes: bool, as_json: bool) -> None:
    """Remove a feed. Its items stay in the bank (disable or delete them there if you want them gone).

    \b
    Example:
        hashsvc exchange remove old-list --yes
    """
    if not yes and not as_json:
        click.confirm(f"remove exchange {name}? its items stay in the bank", abort=True)
    feeds.call(lambda s: s.remove(name, cli_actor()), "DELETE", f"/{_quote(name)}")
    emit(as_json, {"removed": name}, f"removed exchange {name}")


@exchange_group.command("run")
@click.option("--once", is_flag=True, help="One pass over the due feeds, then exit.")
@click.option("--poll", default=5.0, show_default=True, help="Seconds between passes.")
@click.option("--owner", help="This process's name in the lease (default host:pid).")
@click.option("--metrics-port", type=int, help="Serve this process's Prometheus metrics on 127.0.0.1:PORT.")
@feed_options
@json_option
def exchange_run(
    feeds: Feeds, once: bool, poll: float, owner: str | None, metrics_port: int | None, as_json: bool
) -> None:
    """Run the feed scheduler: sync every feed when it is due, until stopped (SIGTERM or Ctrl-C).

    Run it on as many machines as you like against one PostgreSQL store: a lease in the store lets one
    process sync a feed at a time.

    \b
    Example:
        hashsvc exchange run
    """
    service = feeds.need_local("exchange run")
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    if once:
        for result in service.run_due(owner):
            emit(as_json, result.to_dict(), _sync_text(result.to_dict()))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        service.run_scheduler(owner, stop, poll)
    except KeyboardInterrupt:
        stop.set()


@exchange_group.command("rotate-credentials")
@feed_options
@json_option
def exchange_rotate(feeds: Feeds, as_json: bool) -> None:
    """Re-encrypt every feed's credentials with the newest key (the first in HASHSVC_EXCHANGE_KEY_FILE).

    \b
    Example:
        (hashsvc exchange new-key; cat exchange.key) > exchange.key.new && mv exchange.key.new exchange.key
        hashsvc exchange rotate-credentials   # then drop the old key from the file
    """
    count = feeds.need_local("rotate-credentials").rotate_credentials(cli_actor())
    emit(as_json, {"rotated": count}, f"re-encrypted the credentials of {count} exchange(s) with the newest key")


@exchange_group.command("new-key")
def exchange_new_key() -> None:
    """Print a new random key for HASHSVC_EXCHANGE_KEY_FILE (keep it 0600, next to no backup of the store).

    \b
    Example:
        hashsvc exchange new-key > /etc/hashsvc/exchange.key && chmod 600 /etc/hashsvc/exchange.key
    """
    from hashsvc.service.credentials import new_key

    click.echo(new_key())
