"""Helpers for the CLI tests: run `hashsvc` in-process with a clean environment, write sample files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from images import encode, photo

from hashsvc.cli import main

CLEAN_ENV = {"HASHSVC_URL": None, "HASHSVC_KEY": None, "HASHSVC_DATABASE_URL": None, "HASHSVC_DATA_DIR": None}
PDQ = [f"{n * 0x9E3779B97F4A7C15 + 1:064x}" for n in range(1, 6)]
MD5 = "d35c785545392755e7e4164457657269"


class Cli:
    """`hashsvc` with fixed leading options (the mode: --database-url, or --url/--key)."""

    def __init__(self, env: dict[str, str | None], mode: list[str]) -> None:
        self.runner = CliRunner(env={**CLEAN_ENV, **env})
        self.mode = mode

    def __call__(self, *args: str, code: int = 0, input: str | None = None) -> Result:
        # options follow the sub-command: `hashsvc bank list --url ...`
        result = self.runner.invoke(main, [*args, *self.mode], input=input)
        assert result.exit_code == code, (args, result.exit_code, result.output, result.exception)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)

    def lines(self, *args: str, code: int = 0) -> list[Any]:
        return [json.loads(line) for line in self(*args, "--json", code=code).stdout.splitlines()]


def partner_csv(path: Path) -> Path:
    rows = ["algorithm,hash,reference,note,category"]
    rows += [f"pdq,{h},P{n},from partner,A1" for n, h in enumerate(PDQ[:4])]
    rows += ["pdq,not-a-hash,P9,,A1", f"md5,{MD5},P4,,B1"]
    path.write_text("\n".join(rows) + "\n")
    return path


def image_folder(path: Path) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "a.jpg").write_bytes(encode(photo(seed=11)))
    (path / "sub" / "b.png").write_bytes(encode(photo(seed=12), "PNG"))
    (path / "notes.txt").write_text("not an image")
    return path
