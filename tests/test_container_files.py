"""The container and systemd files stay in step with the code they configure.

Building the image takes minutes and a container engine, so CI does not do it (`scripts/container_smoke.sh`
does, by hand). What can drift silently is checked here instead: a renamed setting that the image, compose or
the unit still sets, a file the Dockerfile copies that .dockerignore keeps out of the build, a data folder the
unit does not let the service write.
"""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path

import pytest
import yaml

from hashsvc.config import ENV_PREFIX, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {ENV_PREFIX + field.name.upper() for field in SETTINGS}


def dockerfile_env() -> dict[str, str]:
    """The ENV values of the Dockerfile's last stage (the image that runs)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    last_stage = text.split("\nFROM ")[-1]
    values: dict[str, str] = {}
    for line in last_stage.splitlines():
        if line.startswith("ENV "):
            values.update(re.findall(r"(\w+)=(\S+)", line))
    return values


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive in units
    parser.read(ROOT / "deploy" / "hashsvc.service")
    return parser


def unit_environment() -> dict[str, str]:
    # configparser keeps only the last of several Environment= lines, so read them from the text.
    text = (ROOT / "deploy" / "hashsvc.service").read_text()
    return dict(re.findall(r"^Environment=(\w+)=(\S+)$", text, re.MULTILINE))


def compose_service(name: str) -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"][name]


def test_every_hashsvc_variable_the_image_compose_and_unit_set_is_a_setting() -> None:
    given = {
        "Dockerfile": set(dockerfile_env()),
        "compose.yaml": set(compose_service("hashsvc")["environment"]),
        "deploy/hashsvc.service": set(unit_environment()),
    }
    for where, names in given.items():
        unknown = {n for n in names if n.startswith(ENV_PREFIX)} - SETTING_NAMES
        assert not unknown, f"{where} sets {sorted(unknown)}, which hashsvc does not read"


def test_compose_points_the_service_at_its_postgresql_and_publishes_the_image_port() -> None:
    service = compose_service("hashsvc")
    assert service["environment"]["HASHSVC_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert service["depends_on"]["db"]["condition"] == "service_healthy"
    port = dockerfile_env()["HASHSVC_PORT"]
    assert all(mapping.startswith("127.0.0.1:") for mapping in service["ports"])  # never on every interface
    assert all(mapping.endswith(f":{port}") for mapping in service["ports"])
    data_dir = dockerfile_env()["HASHSVC_DATA_DIR"]
    assert any(volume.endswith(f":{data_dir}") for volume in service["volumes"])
    assert service["read_only"] is True
    assert any(mount.split(":")[0] == "/tmp" for mount in service["tmpfs"])


def test_the_image_runs_as_an_unprivileged_user_with_its_caches_in_tmp() -> None:
    last_stage = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]
    user = re.findall(r"^USER (\S+)$", last_stage, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"0", "root"}
    env = dockerfile_env()
    # compose mounts the root file system read-only: numba and matplotlib must write to the tmpfs.
    assert env["NUMBA_CACHE_DIR"].startswith("/tmp/")
    assert env["MPLCONFIGDIR"].startswith("/tmp/")
    assert "HEALTHCHECK" in last_stage


@pytest.mark.parametrize("path", ["deploy/container-entrypoint.sh", "deploy/container-healthcheck"])
def test_every_file_the_dockerfile_copies_is_in_the_build_context_and_executable(path: str) -> None:
    copied = re.findall(r"^COPY (?!--from)(\S+) ", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"}
    assert path in copied
    assert set(copied) <= allowed, f".dockerignore keeps {sorted(set(copied) - allowed)} out of the build"
    assert os.access(ROOT / path, os.X_OK)


def test_the_systemd_unit_lets_the_service_write_its_data_and_cache_folders_only() -> None:
    service = unit()["Service"]
    env = unit_environment()
    writable = service["ReadWritePaths"].split()
    assert service["ProtectSystem"] == "strict"
    assert env["HASHSVC_DATA_DIR"] == "/var/lib/" + service["StateDirectory"]
    assert env["HASHSVC_DATA_DIR"] in writable
    assert any(env["NUMBA_CACHE_DIR"].startswith(path + "/") for path in writable)
    assert service["NoNewPrivileges"] == "yes"
    assert service["User"] not in {"root", "0"}
    # numba compiles the index kernels at run time into memory that is written, then executed.
    assert service.get("MemoryDenyWriteExecute", "no") == "no"
