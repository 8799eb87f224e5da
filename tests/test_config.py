"""Settings: defaults, HASHSVC_* environment variables, overrides; bad values fail fast; all documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from hashsvc.config import SETTINGS, Settings, load_settings, percentages
from hashsvc.errors import ValidationError


def test_defaults_are_safe() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.max_pixels == 100_000_000
    assert settings.resolved_database_url == "sqlite:///index/hashsvc.db"


def test_environment_then_overrides() -> None:
    environ = {"HASHSVC_MAX_PIXELS": "1000", "HASHSVC_DECODE_TIMEOUT_S": "0.5"}
    settings = load_settings({"max_pixels": 2000, "max_frames": None}, environ=environ)
    assert settings.max_pixels == 2000
    assert settings.decode_timeout_s == 0.5
    assert settings.max_frames == Settings().max_frames


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"HASHSVC_MAX_PIXELS": "lots"}, "HASHSVC_MAX_PIXELS"),
        ({"HASHSVC_MAX_FRAMES": "-1"}, "negative"),
    ],
)
def test_bad_values_fail_fast_naming_the_setting(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        load_settings(environ=environ)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown setting"):
        load_settings({"max_pixelz": 1}, environ={})


def test_every_setting_has_help_and_is_in_the_configuration_docs() -> None:
    readme = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    for field in SETTINGS:
        assert field.metadata.get("help"), field.name
        assert f"HASHSVC_{field.name.upper()}" in readme, field.name


def test_index_crops_are_percentages() -> None:
    assert percentages("index_crops", "95, 90,80") == (0.95, 0.9, 0.8)
    assert percentages("index_crops", "") == ()
    assert load_settings(environ={"HASHSVC_INDEX_CROPS": "90"}).index_crops == "90"
    for bad in ("ninety", "0", "100", "120", "99,98,97,96,95,94,93,92,91"):
        with pytest.raises(ValidationError, match="index_crops"):
            load_settings(environ={"HASHSVC_INDEX_CROPS": bad})
