"""Files only this service's user may read: the store and index snapshots hold the hash lists, which would let
anyone who reads them test evasions offline (see DESIGN.md, Security posture).

Modes are set when a file or directory is created, never by changing the process umask (a server is threaded,
and the umask is process-wide). Existing directories are left alone: the data folder may be one an operator made
on purpose, and the parent of a SQLite file may be a shared one such as /tmp.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """`path` as a directory, creating it and any missing parents with mode 0700."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process may have created it meanwhile
            directory.mkdir(mode=PRIVATE_DIR_MODE)
    return path


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create `path` empty with mode 0600 unless it exists (an existing file keeps its mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def open_private(path: str | os.PathLike[str], mode: str = "wb") -> IO[Any]:
    """Open `path` for writing ('wb' or 'w'), truncating it, creating it with mode 0600 if it is new."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    return os.fdopen(fd, mode)
