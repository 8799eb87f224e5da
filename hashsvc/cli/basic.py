"""Commands that set up and run the service: hash, migrate, init, serve."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from tqdm import tqdm

from hashsvc import media
from hashsvc.cli.app import main
from hashsvc.config import load_settings
from hashsvc.errors import HashsvcError, MediaError
from hashsvc.media_sniff import video_kind
from hashsvc.private_files import private_dir

PROGRESS_MIN_FILES = 20


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """Read a file, refusing to pull more than the upload limit into memory."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise MediaError("too_large", f"the file is larger than the {max_bytes}-byte limit")
    return data


def _hash_file(path: Path, limits: media.Limits, rules: media.PixelRules) -> dict[str, object]:
    # The hashing stack (and PyAV for videos) is seconds of imports: not for --help.
    from hashsvc.service.hashing import hash_image
    from hashsvc.service.video import video_limits_from
    from hashsvc.service.video_hashing import hash_video

    try:
        data = _read_limited(path, limits.max_bytes)
        if video_kind(data):  # a video or an animation: vPDQ, as the service hashes it
            settings = load_settings()
            hashes = hash_video(
                data, video_limits_from(settings), seconds_per_hash=settings.video_seconds_per_hash
            )
            return {"file": str(path), **hashes.to_dict()}
        return {"file": str(path), **hash_image(data, limits, rules=rules).to_dict()}
    except HashsvcError as exc:
        return {"file": str(path), "error": exc.to_dict()}
    except OSError as exc:
        return {"file": str(path), "error": {"code": "unreadable", "message": exc.strerror or str(exc)}}


def _with_progress(paths: list[Path]) -> Iterator[Path]:
    show = len(paths) >= PROGRESS_MIN_FILES and sys.stderr.isatty()
    yield from tqdm(paths, unit="file", file=sys.stderr, disable=not show)


def _human(result: dict[str, object]) -> str:
    if "error" in result:
        error = result["error"]
        assert isinstance(error, dict)
        return f"{result['file']}: error {error['code']}: {error['message']}"
    if result.get("media") == "video":
        frames = result["vpdq"]
        assert isinstance(frames, list)
        return "\n".join(
            [
                f"{result['file']} ({result['format']} {result['width']}x{result['height']}, "
                f"{result['duration_s']} s, {len(frames)} frames hashed)",
                *(f"  vpdq    {line}" for line in frames),
                *(f"  {name:<7} {result[name]}" for name in ("md5", "sha256")),
            ]
        )
    pdq = result["pdq"]
    assert isinstance(pdq, dict)
    return "\n".join(
        [
            f"{result['file']} ({result['width']}x{result['height']})",
            f"  pdq     {pdq['value']}  quality {pdq['quality']}",
            *(f"  {name:<7} {result[name]}" for name in ("phash", "dhash", "md5", "sha256")),
        ]
    )


@main.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.option(
    "--pixel-rules",
    type=click.Choice([r.value for r in media.PixelRules]),
    default=media.PixelRules.HASHSVC.value,
    show_default=True,
    help="'threatexchange' reproduces python-threatexchange's conversions for transparent and 16-bit images.",
)
def hash_command(files: tuple[Path, ...], as_json: bool, pixel_rules: str) -> None:
    """Print the PDQ, pHash, dHash, MD5 and SHA-256 of image files; for a video or an animation (told by
    content), its vPDQ frame hashes ("pdq,quality,timestamp", one per second) and MD5 and SHA-256.

    Exits with status 1 if any file could not be hashed (its line then carries an error).

    \b
    Example:
        hashsvc hash photo.jpg
        hashsvc hash --json uploads/*.jpg > hashes.jsonl
    """
    from hashsvc.service.service import limits_from

    limits = limits_from(load_settings())
    failed = 0
    for path in _with_progress(list(files)):
        result = _hash_file(path, limits, media.PixelRules(pixel_rules))
        failed += "error" in result
        click.echo(json.dumps(result) if as_json else _human(result))
    if failed:
        sys.exit(1)


@main.command("migrate")
def migrate_command() -> None:
    """Create the store's schema, or upgrade it to this version (safe to run again).

    Uses HASHSVC_DATABASE_URL, or the embedded SQLite file in HASHSVC_DATA_DIR.

    \b
    Example:
        hashsvc migrate
        HASHSVC_DATABASE_URL=postgresql+psycopg://hashsvc@db/hashsvc hashsvc migrate
    """
    from hashsvc.store.migrate import upgrade  # the store pulls in SQLAlchemy; only this command needs it

    settings = load_settings()
    if not settings.database_url:
        private_dir(settings.data_dir, tighten=True)
    try:
        upgrade(settings.resolved_database_url)
    except HashsvcError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"store ready: {_redacted(settings.resolved_database_url)}")


@main.command("init")
def init_command() -> None:
    """Prepare a fresh installation: create or upgrade the store, and create an admin key if there is none.

    The admin key (scopes admin, curate, match) is printed once; the store keeps only its hash.

    \b
    Example:
        hashsvc init
    """
    from hashsvc.service.live_index import warm_up_kernels
    from hashsvc.store import Store, upgrade

    settings = load_settings()
    if not settings.database_url:
        private_dir(settings.data_dir, tighten=True)
    upgrade(settings.resolved_database_url)
    # numba compiles the index kernels on a machine's first use and caches them (about a minute on 2 cores): done
    # here, before the key is shown, both serving workers of the `hashsvc serve` that follows load them in about a
    # second each instead of compiling them side by side while a newcomer's first requests get 503 not_ready.
    warm_up_kernels()
    with Store(settings.resolved_database_url) as store:
        if any(not key.revoked and key.allows("admin") for key in store.list_api_keys()):
            click.echo("store ready; an admin key exists already (create more with 'hashsvc keys create')")
            return
        _, token = store.create_api_key("admin", ["admin", "curate", "match"], actor="hashsvc-init")
    click.echo("store ready; created API key 'admin' (scopes admin, curate, match). It is shown only now:")
    click.echo(token)


@main.command("serve")
@click.option("--host", help="Address to bind (default 127.0.0.1, setting HASHSVC_HOST).")
@click.option("--port", type=int, help="Port (default 8080, setting HASHSVC_PORT).")
@click.option("--workers", type=int, help="Worker processes (default 2, setting HASHSVC_WORKERS).")
@click.option("--threads", type=int, help="Threads per worker (default 8, setting HASHSVC_THREADS).")
def serve_command(host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Serve the HTTP API with granian (worker processes, each with its own index and hashing sandbox).

    Each worker loads the newest index snapshot, replays the change log, and keeps tailing it; /readyz is
    200 once it has caught up.

    \b
    Example:
        hashsvc serve --port 8080 --workers 2
    """
    from hashsvc.server import serve

    settings = load_settings({"host": host, "port": port, "workers": workers, "threads": threads})
    serve(settings)


def _redacted(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
