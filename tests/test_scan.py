"""`hashsvc scan` on Dask: the same decisions as `hashsvc match`, on a local cluster, on a real scheduler with
two workers, over S3 (moto's server), and a scan killed half-way resumes with nothing done twice or missed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli
from images import encode, photo
from PIL import Image

from hashsvc.service.scan import read_results
from hashsvc.store import upgrade

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A store whose bank `known` holds 10 images, and a folder of 200 files to scan: those 10, rotated and
    re-encoded copies of 10 more of them, 170 unrelated images, and 10 files that are not images."""
    root = tmp_path_factory.mktemp("scan")
    url = f"sqlite:///{root}/store.db"
    upgrade(url)
    cli = Cli({"HASHSVC_DATA_DIR": str(root / "data")}, ["--database-url", url])
    known = root / "known"
    known.mkdir()
    folder = root / "uploads"
    (folder / "deep" / "er").mkdir(parents=True)
    for n in range(190):
        image = photo(96, 72, seed=n)
        sub = folder if n % 3 else folder / "deep" / "er"
        if n < 20:
            (known / f"k{n}.png").write_bytes(encode(image, "PNG"))
        if 10 <= n < 20:  # stored, uploaded again rotated and re-encoded: found through the rotations
            image = image.transpose(Image.Transpose.ROTATE_90)
        (sub / f"img{n:03d}.jpg").write_bytes(encode(image, quality=85))
    for n in range(4):
        (folder / f"broken{n}.jpg").write_bytes(encode(photo(96, 72, seed=900 + n))[: 40 + 30 * n])
    for n in range(3):
        (folder / f"notes{n}.txt").write_text("not an image " * n)
    (folder / "empty.png").write_bytes(b"")
    (folder / "sub").mkdir()
    (folder / "sub" / "garbage.gif").write_bytes(os.urandom(500))
    (folder / "sub" / "short.bmp").write_bytes(b"BM" + b"\0" * 100)
    (folder / ".hidden.jpg").write_bytes(b"skipped like `hashsvc match` skips it")
    cli("bank", "create", "known", "--category", "csam")
    cli("add", "--bank", "known", *sorted(str(p) for p in known.iterdir()))
    return url, folder


def scan_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


_expected: dict[str, dict[str, dict[str, Any]]] = {}


def expected(url: str, folder: Path) -> dict[str, dict[str, Any]]:
    """What `hashsvc match` answers file by file: path -> {"decision"} or {"error": code} (asked once per store)."""
    if url not in _expected:
        cli = Cli({}, ["--database-url", url])
        answers = cli.lines("match", *map(str, scan_files(folder)), code=1)
        _expected[url] = {a["file"]: _outcome(a) for a in answers}
    return _expected[url]


def _outcome(record: dict[str, Any]) -> dict[str, Any]:
    if "error" in record:
        return {"error": record["error"]["code"]}
    return {"decision": record["decision"], "items": sorted({m["item_id"] for m in record["matches"]})}


def outcomes(output: Path, strip: str = "") -> dict[str, dict[str, Any]]:
    records = list(read_results(output))
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths)), "a file was recorded twice"
    return {r["path"].replace(strip, ""): _outcome(r) for r in records}


def test_local_cluster_scan_decides_like_match_file_by_file(store: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = store
    out = tmp_path / "out"
    summary = Cli({}, [])
    result = summary.json(
        "scan", str(folder), "--output", str(out), "--database-url", url, "--workers", "2",
        "--partition-files", "32", "--no-progress",
    )
    want = expected(url, folder)
    assert outcomes(out) == want
    assert result["files"] == result["scanned"] == len(want) == 200
    assert result["decisions"]["block"] == 20  # the 10 stored and the 10 rotated copies
    assert result["partitions"] == 7 and result["partitions_skipped"] == 0
    assert sum(result["errors"].values()) == 10  # corrupt, empty, text: recorded, not fatal
    assert result["dashboard"].startswith("http")
    first = next(r for r in read_results(out) if "error" not in r)
    assert set(first) >= {"path", "content_id", "size", "hashes", "decision", "matches"}
    # run again: everything is done already, nothing is scanned
    again = summary.json("scan", str(folder), "--output", str(out), "--database-url", url, "--no-progress")
    assert again["scanned"] == 0 and again["partitions_skipped"] == 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and two `dask worker` processes (one thread each), as on a cluster."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = (tmp_path / "dask.log").open("wb")
    processes = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
            stdout=logs, stderr=logs, start_new_session=True,
        )
    ]
    try:
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-nanny"],
                    stdout=logs, stderr=logs, start_new_session=True,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):  # workers first: without their scheduler they linger, reconnecting
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            _stop(process)
        logs.close()


def _stop(process: subprocess.Popen) -> None:
    """Wait for a process told to stop; one that has not gone after 30 s (a loaded machine) is killed."""
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def test_scan_on_a_scheduler_with_two_worker_processes(
    store: tuple[str, Path], dask_cluster: str, tmp_path: Path
) -> None:
    url, folder = store
    out = tmp_path / "out"
    result = Cli({}, []).json(
        "scan", str(folder), "--output", str(out), "--database-url", url, "--scheduler", dask_cluster,
        "--partition-files", "20", "--no-progress",
    )
    assert result["scanned"] == 200
    assert outcomes(out) == expected(url, folder)
    from distributed import Client

    with Client(dask_cluster) as client:  # both worker processes took part
        logs = client.run(lambda: __import__("hashsvc.service.scan").service.scan._services.keys())
    assert len(logs) == 2 and all(logs.values())


@pytest.fixture
def s3_bucket(store: tuple[str, Path]) -> Iterator[tuple[str, str]]:
    """Moto's S3-compatible server on loopback, with the scan folder uploaded under s3://uploads/2019/."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        s3.create_bucket(Bucket="uploads")
        _, folder = store
        for path in scan_files(folder):
            s3.put_object(Bucket="uploads", Key=f"2019/{path.relative_to(folder)}", Body=path.read_bytes())
        yield endpoint, "s3://uploads/2019"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        _stop(server)


def test_scan_of_an_s3_bucket_as_parquet(store: tuple[str, Path], s3_bucket: tuple[str, str], tmp_path: Path) -> None:
    url, folder = store
    endpoint, prefix = s3_bucket
    out = tmp_path / "out"
    result = Cli({}, []).json(
        "scan", prefix, "--output", str(out), "--database-url", url, "--format", "parquet", "--workers", "2",
        "--storage-option", f"endpoint_url={endpoint}", "--storage-option", "key=test",
        "--storage-option", "secret=test", "--partition-files", "64", "--no-progress",
    )
    assert result["scanned"] == 200
    assert sorted(p.name for p in out.glob("part-*")) == [f"part-{n:05d}.parquet" for n in range(4)]
    got = outcomes(out, strip=prefix + "/")
    want = {str(Path(p).relative_to(folder)): o for p, o in expected(url, folder).items()}
    assert got == want


def test_a_scan_killed_half_way_resumes_with_nothing_done_twice_or_missed(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = store
    out = tmp_path / "out"
    command = [
        str(BIN / "hashsvc"), "scan", str(folder), "--output", str(out), "--database-url", url, "--workers", "1",
        "--partition-files", "8", "--no-progress", "--json",
    ]
    scan = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("part-*"))) < 6:
            assert scan.poll() is None, "the scan ended before it could be killed"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
    finally:
        os.killpg(scan.pid, signal.SIGKILL)  # the CLI and its cluster's worker processes, without warning
        scan.wait(30)
    done_before = {p.name: p.read_bytes() for p in out.glob("part-*")}
    assert 6 <= len(done_before) < 25
    result = subprocess.run(command, capture_output=True, check=True, timeout=600)
    summary = json.loads(result.stdout)
    assert summary["partitions_skipped"] == len(done_before)
    assert summary["scanned"] == 200 - 8 * len(done_before)  # nothing finished before is hashed again
    assert {p.name: p.read_bytes() for p in out.glob("part-*") if p.name in done_before} == done_before
    assert len(list(out.glob("part-*"))) == 25
    assert outcomes(out) == expected(url, folder)  # every file exactly once, each decided as `match` decides


def test_scanned_block_and_review_decisions_are_match_events_named_by_path(tmp_path: Path) -> None:
    """Local mode: a partition's events (content_id = the file's path) are in the store when it is done."""
    import hashlib

    import sqlalchemy as sa

    from hashsvc.service.scan import FileEntry, Lookup, event_content_id, scan_partition
    from hashsvc.store import Store
    from hashsvc.store.schema import events

    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    files = {}
    for name, seed in (("blocked.png", 1), ("reviewed.png", 2), ("unknown.png", 3)):
        files[name] = tmp_path / name
        files[name].write_bytes(encode(photo(64, 48, seed=seed), "PNG"))
    with Store(url) as store:
        store.create_bank("known", category="csam", actor="test")
        store.create_bank("maybe", category="csam", action="review", actor="test")
        for bank, name in (("known", "blocked.png"), ("maybe", "reviewed.png")):
            store.add_item(bank, {"md5": hashlib.md5(files[name].read_bytes()).hexdigest()}, actor="test")
    entries = [FileEntry(str(path), path.stat().st_size) for path in files.values()]
    result = scan_partition(0, entries, Lookup(database_url=url))
    assert [r["decision"] for r in result.records] == ["block", "review", "allow"]
    with Store(url) as store, store.engine.connect() as conn:
        recorded = conn.execute(sa.select(events.c.content_id, events.c.decision).order_by(events.c.id)).all()
    want = [(str(files["blocked.png"]), "block"), (str(files["reviewed.png"]), "review")]
    assert [tuple(r) for r in recorded] == want
    assert event_content_id("s3://b/" + "k" * 300).startswith("sha256:")
    assert event_content_id("s3://bucket/a.jpg") == "s3://bucket/a.jpg"

    # Remote mode: the service answering /v1/match/hashes records them, under the scan key's name.
    from live_server import LiveServer

    with Store(url) as store:
        key = store.create_api_key("scanner", ["match"], actor="test")[1]
    with LiveServer(url, tmp_path / "served") as server:  # leaving it, a clean shutdown writes the buffered events
        result = scan_partition(0, entries, Lookup(url=server.url, key=key))
        assert [r["decision"] for r in result.records] == ["block", "review", "allow"]
    with Store(url) as store, store.engine.connect() as conn:
        recorded = conn.execute(
            sa.select(events.c.content_id, events.c.decision, events.c.key_name).where(events.c.key_name == "scanner")
        ).all()
    assert sorted(tuple(r) for r in recorded) == sorted((*pair, "scanner") for pair in want)
