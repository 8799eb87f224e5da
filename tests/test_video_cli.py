"""Videos through the `hashsvc` command, in local mode: hash, add, match, per-bank rules, vPDQ export/import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import Cli
from videos import clip, clip_frames, encode

from hashsvc.cli import main
from hashsvc.hashes import vpdq
from hashsvc.store import upgrade


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    return Cli({"HASHSVC_DATA_DIR": str(tmp_path / "data"), "HASHSVC_SANDBOX": "0"}, ["--database-url", url])


def test_hash_add_match_rules_export_import(cli: Cli, tmp_path: Path) -> None:
    original = tmp_path / "original.mp4"
    original.write_bytes(clip(6.0, seed=31))
    edited = tmp_path / "edited.webm"  # another container and codec, the first second cut
    edited.write_bytes(encode(list(clip_frames(6.0, seed=31))[10:], container="webm", codec="libvpx-vp9"))
    unrelated = tmp_path / "other.mp4"
    unrelated.write_bytes(clip(6.0, seed=32))

    hashed = json.loads(cli.runner.invoke(main, ["hash", "--json", str(original)]).stdout)
    assert hashed["media"] == "video" and len(vpdq.loads(hashed["vpdq"])) == 6
    assert "vpdq    " in cli.runner.invoke(main, ["hash", str(original)]).stdout

    cli("bank", "create", "videos", "--category", "terror")
    cli("add", "--bank", "videos", "--reference", "clip-31", str(original))
    [result] = cli.lines("match", str(edited))
    assert result["decision"] == "block" and result["matches"][0]["reference"] == "clip-31"
    assert cli.lines("match", str(unrelated))[0]["decision"] == "allow"

    assert cli.json("video", "rules", "videos") == {"bank": "videos", "query_share": 80.0, "item_share": 0.0,
                                                    "quality": 50}  # fmt: skip
    assert cli.json("video", "rules", "videos", "--query-share", "70")["query_share"] == 70.0

    exported = tmp_path / "videos.vpdq.txt"
    cli("video", "export", "videos", "-o", str(exported))
    [line] = exported.read_text().splitlines()
    kind, signal = line.split(" ", 1)
    assert kind == "vpdq" and vpdq.loads(signal) == vpdq.loads(hashed["vpdq"])[: len(vpdq.loads(signal))]
    cli("bank", "create", "copy", "--category", "terror")
    (tmp_path / "partner.txt").write_text(line + "\nvpdq [\"not,a,hash\"]\n")
    imported = cli.json("video", "import", "copy", str(tmp_path / "partner.txt"), code=1)
    assert len(imported["accepted"]) == 1 and imported["rejected"][0]["line"] == 2
    matched = cli.lines("match", str(edited))[0]["matches"]
    assert {m["bank"] for m in matched} == {"videos", "copy"}
