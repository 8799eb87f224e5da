"""Every benchmark script, run without the data it reads from ../shared, says in one line what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/hashsvc-data"

RUNS = {
    "bench_hashing.py": ["--corpus", MISSING],
    "bench_service.py": ["--corpus", MISSING],
    "bench_sandbox.py": ["--corpus", MISSING],
    "bench_hostile.py": ["--corpus", MISSING],
    "bench_offgrid_crops.py": [MISSING],
    "bench_robustness.py": [MISSING],
    "report_conformance.py": ["--data", MISSING],
    "bench_dihedral_short.py": [MISSING],
    "bench_feature_index.py": [MISSING],
    "bench_feature_stage.py": [MISSING],
    "bench_features.py": [MISSING],
    "bench_scan.py": ["--corpus", MISSING],
    "sweep_features.py": [MISSING],
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_a_missing_data_folder_is_one_line_not_a_traceback(script: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *RUNS[script]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert MISSING in last, done.stderr[-2000:]


@pytest.mark.parametrize("script", ["bench_service.py", "bench_hostile.py"])
def test_a_taken_port_is_one_line_not_a_measurement_of_another_server(script: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        from PIL import Image

        Image.new("RGB", (64, 48), "gray").save(corpus / "one.jpg")
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / script), "--corpus", str(corpus), "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"port {port} is in use" in done.stderr.strip().splitlines()[-1]
