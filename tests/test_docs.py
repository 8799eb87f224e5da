"""The examples with output in README.md and docs/ are what the commands print today (scripts/docgen.py, cog)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COG = Path(sys.executable).with_name("cog")


def _documents() -> list[str]:
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


# One cog run over every document: 141-190 s alone in CI, 290-300 s on a machine loaded by other jobs, which the
# suite's 300 s default cut off; the subprocess's own bound stays under the test's.
@pytest.mark.timeout(900)
def test_every_generated_example_matches_what_its_commands_print_now() -> None:
    """On failure: run `.venv/bin/cog -r -I scripts README.md docs/*.md`, read the diff, commit it if intended."""
    done = subprocess.run(
        [str(COG), "--check", "--diff", "-I", "scripts", *_documents()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def test_the_readme_links_only_to_documents_that_exist() -> None:
    import re

    for document in _documents():
        text = (ROOT / document).read_text()
        for target in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", text):
            base = ROOT if document == "README.md" else ROOT / "docs"
            assert (base / target).exists(), f"{document} links to missing {target}"
