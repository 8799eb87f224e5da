"""The secret that signs console session cookies, shared by every process that serves one data folder.

`hashsvc serve` runs several granian worker processes, each building its own app: a secret made up per process
would sign a user out whenever the next request reached another worker. So, unless HASHSVC_CONSOLE_SECRET_KEY
gives one, the first process to need it writes a random one to <data_dir>/console-secret (mode 0600) and the
others read it; a restart keeps it, so restarts sign nobody out either.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hashsvc.config import Settings
from hashsvc.errors import ValidationError
from hashsvc.private_files import open_private, private_dir

SECRET_FILE = "console-secret"
MIN_LENGTH = 32


def session_secret(settings: Settings) -> bytes:
    """The configured secret, else the data folder's (created on first use). Raises ValidationError if too short."""
    if settings.console_secret_key:
        return _checked(settings.console_secret_key, "setting console_secret_key")
    folder = private_dir(settings.data_dir)
    path = folder / SECRET_FILE
    if not path.exists():
        _create(folder, path)
    return _checked(path.read_text(encoding="utf-8").strip(), str(path))


def _create(folder: Path, path: Path) -> None:
    """Write a new secret beside `path`, then link it into place: a hard link fails if another worker won the
    race, so every process ends up reading the one secret that was linked first (never a half-written file)."""
    scratch = folder / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    with open_private(scratch, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink(missing_ok=True)


def _checked(secret: str, where: str) -> bytes:
    if len(secret) < MIN_LENGTH:
        raise ValidationError(f"{where}: the console secret must be at least {MIN_LENGTH} characters")
    return secret.encode()
