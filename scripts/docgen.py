"""The command-and-output examples of README.md and docs/, produced by running them, so that they cannot go stale.

The Markdown files hold cog blocks (https://nedbatchelder.com/code/cog/) that call the functions below; cog
replaces each block's output with what the commands print now. `tests/test_docs.py` runs the check, so a change
in any output shown fails the build until the docs are regenerated:

    .venv/bin/cog -r -I scripts README.md docs/*.md        # regenerate after a deliberate change
    .venv/bin/cog --check -I scripts README.md docs/*.md   # what the test runs

Every session runs in a fresh temporary data folder against its own `hashsvc serve` on a free port; the commands
are shown exactly as a reader types them (with port 8080). Values that differ on every run are elided as `…`:
timestamps, timings, request ids, and the API key (shown as `$TOKEN`).

`python scripts/docgen.py walkthrough [PHOTO]` runs the README's quickstart end to end and prints it (the old
scripts/walkthrough.sh).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from sample_photos import sample_photos  # scripts/ is on the path: cog -I scripts, or run from scripts/

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHOWN_URL = "http://127.0.0.1:8080"

# The README's quickstart, as typed in the second terminal (after TOKEN=... and the sample photos).
QUICKSTART = [
    """.venv/bin/python -c "from PIL import Image, ImageOps; im = Image.open('photo.jpg'); """
    """ImageOps.mirror(im).resize((im.width // 2, im.height // 2)).save('edited.jpg', quality=60)\"""",
    """curl -s -X POST http://127.0.0.1:8080/v1/banks -H "Authorization: Bearer $TOKEN" """
    """-H 'Content-Type: application/json' -d '{"name": "demo", "category": "csam", "action": "block"}'""",
    """curl -s -X POST http://127.0.0.1:8080/v1/banks/demo/items -H "Authorization: Bearer $TOKEN" """
    """-F image=@photo.jpg -F reference=CASE-1""",
    """curl -s -X POST http://127.0.0.1:8080/v1/match -H "Authorization: Bearer $TOKEN" -F image=@edited.jpg""",
    """curl -s -X POST http://127.0.0.1:8080/v1/match -H "Authorization: Bearer $TOKEN" -F image=@other.png""",
]

_VOLATILE = [
    (re.compile(r'"(created_at|updated_at|status_at|last_used_at|at|expires_at)": ?"[^"]+"'), r'"\1":"…"'),
    (re.compile(r'"took_ms": ?[0-9.]+'), '"took_ms":…'),
    (re.compile(r"hsk_[A-Za-z0-9_-]{20,}"), "$TOKEN"),
]


def stable(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


# ------------------------------------------------------------------------------------------------ sessions


@dataclasses.dataclass
class Session:
    """A fresh data folder, an admin token and (when started) a server; commands run in `work`."""

    work: Path
    env: dict[str, str]
    port: int
    token: str

    def run(self, command: str) -> str:
        """Run one shell line as shown (port 8080 rewritten to this session's port); return its output."""
        actual = command.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        done = subprocess.run(
            ["bash", "-c", actual], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=300
        )
        return (done.stdout + done.stderr).rstrip("\n")

    def console(self, commands: list[str]) -> str:
        """A ```console block's body: each command after `$ `, then its output (volatile values elided)."""
        parts = []
        for command in commands:
            output = stable(self.run(command))
            time.sleep(1)  # a reader takes longer than the index's change-log poll (0.25 s) between lines
            parts.append(f"$ {command}" + (f"\n{output}" if output else ""))
        return "\n\n".join(parts)


@contextlib.contextmanager
def session(serve: bool = True) -> Iterator[Session]:
    with tempfile.TemporaryDirectory(prefix="hashsvc-docs-") as tmp:
        work = Path(tmp)
        (work / ".venv").symlink_to(BIN.parent)  # commands say .venv/bin/..., as in a checkout
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HASHSVC_")}
        env |= {
            "HASHSVC_DATA_DIR": str(work / "index"),
            "HASHSVC_PORT": str(port),
            "HASHSVC_WORKERS": "1",
            "HASHSVC_REQUEST_LOG": "0",
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
        init = subprocess.run([BIN / "hashsvc", "init"], env=env, capture_output=True, text=True, check=True)
        token = init.stdout.strip().splitlines()[-1]
        env["TOKEN"] = token
        server = None
        if serve:
            log = (work / "serve.log").open("w")
            server = subprocess.Popen([BIN / "hashsvc", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
            _wait_ready(port, server)
        try:
            yield Session(work, env, port, token)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, server: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"hashsvc serve exited with {server.returncode} before it was ready")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("hashsvc serve was not ready in time")


# ------------------------------------------------------------------------------------------------ cog blocks


def _out(text: str) -> None:
    import cog  # only inside a cog run

    cog.outl(text)


def quickstart() -> None:
    with session() as s:
        sample_photos(s.work)
        _out("```console\n" + s.console(QUICKSTART) + "\n```")


def settings_table() -> None:
    """The configuration table, from the settings' own definitions (hashsvc.config)."""
    from hashsvc.config import SETTINGS

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for field in SETTINGS:
        default = field.default
        shown = "empty" if default == "" else f"`{int(default) if isinstance(default, bool) else default}`"
        rows.append(f"| `HASHSVC_{field.name.upper()}` | {shown} | {field.metadata['help']} |")
    _out("\n".join(rows))


def console(commands: list[str], *, serve: bool = True) -> None:
    """Any session for the docs: commands typed in order in a fresh data folder (with sample photos)."""
    with session(serve=serve) as s:
        sample_photos(s.work)
        _out("```console\n" + s.console(commands) + "\n```")


def help_text(*command: str) -> None:
    done = subprocess.run([BIN / "hashsvc", *command, "--help"], capture_output=True, text=True, check=True)
    _out("```console\n$ " + shlex.join(["hashsvc", *command, "--help"]) + "\n" + done.stdout.rstrip() + "\n```")


# ------------------------------------------------------------------------------------------------ walkthrough


def walkthrough(photo: Path | None) -> None:
    with session() as s:
        sample_photos(s.work, photo)
        print(s.console(QUICKSTART))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "walkthrough":
        sys.exit("usage: python scripts/docgen.py walkthrough [PHOTO]   (the cog blocks call the functions)")
    walkthrough(Path(sys.argv[2]) if len(sys.argv) > 2 else None)
