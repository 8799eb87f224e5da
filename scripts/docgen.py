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
    (re.compile(r"cli:[A-Za-z0-9_.-]+"), "cli:$USER"),  # local changes are audited under the OS user
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
        """Run one shell line as shown (port 8080 rewritten to this session's port); return its output.

        `export NAME=value` lines set NAME for the lines after them, as in an interactive shell.
        """
        if command == "echo $?":  # each line runs in its own shell: answer for the line before
            return str(self.last_status)
        actual = command.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        exported = re.fullmatch(r"export ([A-Z_]+)=(.*)", command)
        if exported:
            name = exported.group(1)
            value = subprocess.run(
                ["bash", "-c", f'{actual}; printf %s "${name}"'],
                cwd=self.work,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            ).stdout
            self.env[name] = value
            return ""
        done = subprocess.run(
            ["bash", "-c", actual], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=300
        )
        self.last_status = done.returncode
        return (done.stdout + done.stderr).rstrip("\n")

    server: subprocess.Popen[bytes] | None = None
    last_status: int = 0

    def serve(self) -> None:
        """Start `hashsvc serve` on this session's store and port, and wait until it is ready."""
        log = (self.work / "serve.log").open("w")
        self.server = subprocess.Popen(
            [BIN / "hashsvc", "serve"], cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        _wait_ready(self.port, self.server)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)
            self.server = None

    def console(self, commands: list[str]) -> str:
        """A ```console block's body: each command after `$ `, then its output (volatile values elided)."""
        parts = []
        for command in commands:
            output = stable(self.run(command))
            time.sleep(1)  # a reader takes longer than the index's change-log poll (0.25 s) between lines
            parts.append(f"$ {command}" + (f"\n{output}" if output else ""))
        return "\n\n".join(parts)


@contextlib.contextmanager
def session(serve: bool = True, init: bool = True) -> Iterator[Session]:
    """A fresh folder with `.venv` linked in; with `init` the store and an admin key ($TOKEN), with `serve` a
    server. Without `init` the document shows `hashsvc init` itself (and may call `serve_now()` later)."""
    with tempfile.TemporaryDirectory(prefix="hashsvc-docs-") as tmp:
        work = Path(tmp)
        (work / ".venv").symlink_to(BIN.parent)  # commands say .venv/bin/..., as in a checkout
        env = {k: v for k, v in os.environ.items() if not k.startswith("HASHSVC_")}
        env |= {
            "HASHSVC_DATA_DIR": "index",  # relative to the session's folder, as in a checkout
            "HASHSVC_PORT": str(_free_port()),
            "HASHSVC_WORKERS": "1",
            "HASHSVC_REQUEST_LOG": "0",
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
        current = Session(work, env, int(env["HASHSVC_PORT"]), "")
        if init:
            done = subprocess.run(
                [BIN / "hashsvc", "init"], cwd=work, env=env, capture_output=True, text=True, check=True
            )
            current.token = env["TOKEN"] = done.stdout.strip().splitlines()[-1]
        try:
            if serve:
                current.serve()
            yield current
        finally:
            current.stop_server()


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


def workflow() -> None:
    """docs/workflow.md's session (scripts/workflow_session.py: a server, a webhook receiver, three keys)."""
    import workflow_session

    _out("```console\n" + workflow_session.session() + "\n```")


def help_text(*command: str) -> None:
    done = subprocess.run([BIN / "hashsvc", *command, "--help"], capture_output=True, text=True, check=True)
    _out("```console\n$ " + shlex.join(["hashsvc", *command, "--help"]) + "\n" + done.stdout.rstrip() + "\n```")


# A session that spans several cog blocks of one document (cog runs a file's blocks in order, in one process).
_open: list[tuple[contextlib.ExitStack, Session]] = []


def start(files: str | None = None, *, init: bool = True, serve: bool = True) -> None:
    """Open a session for the blocks that follow; `files` names a set of sample files to put in its folder."""
    stack = contextlib.ExitStack()
    opened = stack.enter_context(session(serve=serve, init=init))
    _open.append((stack, opened))
    if files == "analysts":
        analysts_files(opened.work)


def show(commands: list[str]) -> None:
    _out("```console\n" + _open[-1][1].console(commands) + "\n```")


def show_file(name: str) -> None:
    _out("```\n" + (_open[-1][1].work / name).read_text().rstrip("\n") + "\n```")


def serve_now() -> None:
    """Start the open session's server (for the remote-mode part of a document)."""
    _open[-1][1].serve()


def stop() -> None:
    stack, _ = _open.pop()
    stack.close()


PARTNER_CSV = """algorithm,hash,reference,category
pdq,a8e5b8abeeab14cef599cc052535d5cec0ad06783f60ec83760457a17c472a49,NCMEC-1001,A1
pdq,ed10c2fa0a67ce0d8f02264785762462c423399232b39168ce358d21b527970b,NCMEC-1002,A1
pdq,b48a4200a5627b0c90b818268101caff5536e4307fa901a76df710c04edc083c,NCMEC-1003,A1
pdq,f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b2,NCMEC-1099,A1
pdq,bdb5404808b9586fbf8a6343304464f943287f2d2133cee5d95535cc78861fd8,NCMEC-1004,A1
pdq,0e7fa01dd0a174645397c6a0adc1367e7e3976aa6b833bad348bb5a93fc4900f,NCMEC-1005,A1
md5,d35c785545392755e7e4164457657269,NCMEC-1006,B1
"""


def analysts_files(folder: Path) -> None:
    """A partner list with one bad line, a folder of seized images (and a README), and a re-encoded upload."""
    from matplotlib import cbook
    from PIL import Image

    (folder / "ncmec-2025-06.csv").write_text(PARTNER_CSV)
    seized = folder / "seized" / "2025-06"
    seized.mkdir(parents=True)
    hopper = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    fractal = Image.effect_mandelbrot((640, 480), (-0.8, 0.05, -0.7, 0.125), 256).convert("RGB")
    present = Image.open(cbook.get_sample_data("Minduka_Present_Blue_Pack.png", asfileobj=False))
    present = present.convert("RGB").resize((480, 480))
    for number, image in enumerate((hopper, fractal, present), start=1):
        image.save(seized / f"IMG_00{number}.jpg", quality=90)
    (folder / "seized" / "README.txt").write_text("evidence index, case INV-2291\n")
    fractal.resize((576, 432)).save(folder / "upload.jpg", quality=75)


# ------------------------------------------------------------------------------------------------ walkthrough


def walkthrough(photo: Path | None) -> None:
    with session() as s:
        sample_photos(s.work, photo)
        print(s.console(QUICKSTART))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "walkthrough":
        sys.exit("usage: python scripts/docgen.py walkthrough [PHOTO]   (the cog blocks call the functions)")
    walkthrough(Path(sys.argv[2]) if len(sys.argv) > 2 else None)
