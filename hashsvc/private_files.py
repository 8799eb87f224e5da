"""Files only this service's user may read: the store and index snapshots hold the hash lists, which would let
anyone who reads them test evasions offline (see DESIGN.md, Security posture).

Modes are set when a file or directory is created, never by changing the process umask (a server is threaded,
and the umask is process-wide). Existing directories are left alone, with one exception: `hashsvc init` and
`migrate` tighten the data folder itself (`tighten=True`), because the default one, `index/`, comes with the
repository as 0755. Even then a sticky folder (such as /tmp) or one owned by another user is left alone; the
parent of a SQLite file may be a shared one.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str], *, tighten: bool = False) -> Path:
    """`path` as a directory, creating it and any missing parents with mode 0700; with `tighten`, an existing
    `path` of ours (owned by this user, not sticky) is set to 0700 too."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process may have created it meanwhile
            directory.mkdir(mode=PRIVATE_DIR_MODE)
    if tighten:
        info = path.stat()
        if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX:
            path.chmod(PRIVATE_DIR_MODE)
    return path


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create `path` empty with mode 0600 unless it exists (an existing file keeps its mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def open_private(path: str | os.PathLike[str], mode: str = "wb") -> IO[Any]:
    """Open `path` for writing ('wb' or 'w'), truncating it, creating it with mode 0600 if it is new."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    return os.fdopen(fd, mode)
