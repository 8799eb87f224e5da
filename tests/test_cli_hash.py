"""`hashsvc hash`: one line per file, JSON on request, a non-zero exit when any file fails."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from images import encode, photo

from hashsvc.cli import main
from hashsvc.hashes import normalize_hex


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_json_lines_have_the_documented_shape(tmp_path: Path) -> None:
    image = write(tmp_path / "a.jpg", encode(photo(400, 300)))
    result = CliRunner().invoke(main, ["hash", "--json", str(image)])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output)
    assert list(line) == ["file", "pdq", "phash", "dhash", "md5", "sha256", "width", "height"]
    assert line["file"] == str(image)
    assert set(line["pdq"]) == {"value", "quality"}
    assert normalize_hex("pdq", line["pdq"]["value"]) == line["pdq"]["value"]
    for name in ("phash", "dhash", "md5", "sha256"):
        assert normalize_hex(name, line[name]) == line[name]
    assert (line["width"], line["height"]) == (400, 300)


def test_a_file_that_cannot_be_hashed_gets_an_error_line_and_exit_1(tmp_path: Path) -> None:
    good = write(tmp_path / "a.jpg", encode(photo()))
    bad = write(tmp_path / "b.bin", b"not an image at all")
    result = CliRunner().invoke(main, ["hash", "--json", str(good), str(bad)])
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert "pdq" in first
    assert second == {
        "file": str(bad),
        "error": {"code": "unsupported_format", "message": second["error"]["message"]},
    }


def test_format_is_told_by_content_not_by_name(tmp_path: Path) -> None:
    png_named_jpg = write(tmp_path / "really-a-png.jpg", encode(photo(), "PNG"))
    text_named_png = write(tmp_path / "really-text.png", b"hello")
    result = CliRunner().invoke(main, ["hash", "--json", str(png_named_jpg), str(text_named_png)])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert "pdq" in lines[0]
    assert lines[1]["error"]["code"] == "unsupported_format"


def test_missing_file_is_reported_as_an_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["hash", "--json", str(tmp_path / "gone.jpg")])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] == "unreadable"


def test_human_output_names_every_hash(tmp_path: Path) -> None:
    image = write(tmp_path / "a.png", encode(photo(), "PNG"))
    result = CliRunner().invoke(main, ["hash", str(image)])
    assert result.exit_code == 0
    for name in ("pdq", "phash", "dhash", "md5", "sha256", "quality"):
        assert name in result.output


def test_upload_limit_applies_to_files_too(tmp_path: Path) -> None:
    image = write(tmp_path / "a.png", encode(photo(), "PNG"))
    result = CliRunner(env={"HASHSVC_MAX_UPLOAD_BYTES": "100"}).invoke(main, ["hash", "--json", str(image)])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] == "too_large"


def test_no_files_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["hash"]).exit_code == 2


def test_migrate_creates_the_embedded_store(tmp_path: Path) -> None:
    env = {"HASHSVC_DATA_DIR": str(tmp_path / "data"), "HASHSVC_DATABASE_URL": ""}
    first = CliRunner(env=env).invoke(main, ["migrate"])
    assert first.exit_code == 0, (first.output, first.exception)
    assert (tmp_path / "data" / "hashsvc.db").exists()
    again = CliRunner(env=env).invoke(main, ["migrate"])
    assert again.exit_code == 0, again.output
