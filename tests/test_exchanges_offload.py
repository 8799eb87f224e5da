"""A large feed's pages parsed in a child process (hashsvc.exchanges.offload): the same entries as parsing
in-process, errors raised the same way, back to in-process parsing if the child dies, no child left behind by a
parent killed with SIGKILL; and the provenance JSON built from quoted strings is the text json.dumps gives."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from exchange_fakes import FakeNcmec

from hashsvc.exchanges import MalformedFeedError
from hashsvc.exchanges import offload as offload_module
from hashsvc.exchanges.ncmec import pack_entries, parse_entries, unpack_entries
from hashsvc.exchanges.offload import ParseWorker
from hashsvc.store import exchanges as feeds
from hashsvc.store.exchanges import FeedEntry

ROOT = Path(__file__).resolve().parents[1]


def ncmec_page(first: int, count: int, *, next_link: str = "") -> bytes:
    """A <queryResult> page as the fake NCMEC server renders it."""
    with FakeNcmec() as fake:  # its entry XML, without serving it
        for n in range(first, first + count):
            md5 = hashlib.md5(f"m{n}".encode()).hexdigest()
            pdq = hashlib.sha256(f"p{n}".encode()).hexdigest()
            fake.add(1_700_000_000 + n, f"img{n}", md5=md5, pdq=pdq, classification="A1" if n % 3 else "B1")
        fake.add(1_700_000_000 + first + count, f"img{first}", deleted=True)
        fake.add(1_700_000_000 + first + count + 1, "bad", md5="not-hex")
        body = b"".join(xml.encode() for _, xml in fake.rendered)
    paging = f"<paging><next>{next_link}</next></paging>".encode() if next_link else b""
    return (
        b'<?xml version="1.0"?><queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        b"<images>" + body + b"</images>" + paging + b"</queryResult>"
    )


def offloaded_worker() -> ParseWorker[Any]:
    """A worker that hands every page to its child once the child has started."""
    worker = ParseWorker(parse_entries, pack=pack_entries, unpack=unpack_entries, warm_bytes=0)
    deadline = time.monotonic() + 60
    while not worker.offloaded:
        assert time.monotonic() < deadline, "the parser process did not start within 60 s"
        worker(ncmec_page(0, 1))
        time.sleep(0.05)
    return worker


def test_pages_parsed_in_the_child_are_the_entries_parsed_in_process() -> None:
    worker = offloaded_worker()
    try:
        for first in (0, 50, 100):
            page = ncmec_page(first, 50, next_link="/v2/entries?start=2")
            assert worker(page) == parse_entries(page)
        assert worker.offloaded
    finally:
        worker.close()


def test_a_small_sync_never_starts_a_process() -> None:
    worker = ParseWorker(parse_entries, warm_bytes=10 << 20)
    try:
        page = ncmec_page(0, 20)
        assert worker(page) == parse_entries(page)
        assert worker._process is None and not worker.offloaded
    finally:
        worker.close()


def test_a_page_the_child_cannot_parse_raises_as_in_process() -> None:
    worker = offloaded_worker()
    try:
        with pytest.raises(MalformedFeedError, match="not XML"):
            worker(b"<queryResult><images>")
        page = ncmec_page(0, 5)
        assert worker(page) == parse_entries(page)  # the child goes on after an error
    finally:
        worker.close()


def test_if_the_child_dies_the_page_is_parsed_in_process() -> None:
    worker = offloaded_worker()
    try:
        os.kill(worker._process.pid, signal.SIGKILL)
        worker._process.join(timeout=10)
        page = ncmec_page(0, 30)
        assert worker(page) == parse_entries(page)
        assert not worker.offloaded and worker._process is None
        assert worker(page) == parse_entries(page)  # and stays in-process
    finally:
        worker.close()


def test_close_ends_the_child() -> None:
    worker = offloaded_worker()
    process = worker._process
    worker.close()
    assert not process.is_alive()


def test_a_parent_killed_with_sigkill_leaves_no_parser_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from test_exchanges_offload import offloaded_worker
        if __name__ == "__main__":
            worker = offloaded_worker()
            print(worker._process.pid, flush=True)
            time.sleep(600)
        """
    )
    (tmp_path / "parent.py").write_text(script)
    command = [sys.executable, str(tmp_path / "parent.py")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert _running(child)
            parent.kill()
            parent.wait(timeout=10)
            deadline = time.monotonic() + 20
            while _running(child):
                assert time.monotonic() < deadline, "the parser process outlived its parent"
                time.sleep(0.1)
        finally:
            parent.kill()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has ended (init reaps it)
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    "entry",
    [
        FeedEntry("42-img1", (("md5", "0" * 32),), labels=("A1",), metadata={"member_id": "42", "id": "img1"}),
        FeedEntry("q\"uote\\back/slash", labels=(), metadata={"ctl": "\x01\t\n", "uni": "é☃𝄞"}),
        FeedEntry("x", labels=("a", "b"), unknown={"pdna": "ab" * 10, "sha1": "c" * 40}),
        FeedEntry("y", metadata={"cases": 3, "tags": ["t"]}),  # not flat strings: json's encoder
        FeedEntry("z", labels=("é",), metadata={}),
    ],
)
def test_provenance_text_is_the_json_of_the_provenance(entry: FeedEntry) -> None:
    text = feeds._provenance_text(json.encoder.encode_basestring("feed"), "feed", entry)
    assert text == json.dumps(feeds._provenance("feed", entry), ensure_ascii=False)
    assert json.loads(text) == feeds._provenance("feed", entry)


def test_provenance_text_refuses_nul_and_lone_surrogates() -> None:
    quoted = json.encoder.encode_basestring("feed")
    with pytest.raises(feeds.ValidationError, match="NUL"):
        feeds._provenance_text(quoted, "feed", FeedEntry("a", metadata={"x": "a\x00b"}))
    with pytest.raises(feeds.ValidationError, match="surrogate"):
        feeds._provenance_text(quoted, "feed", FeedEntry("a", metadata={"x": "\ud800"}))


def test_a_sync_whose_pages_go_to_the_parser_process_gives_the_same_bank(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The whole path: a sync that offloads from its first page leaves the bank an in-process sync leaves."""
    from test_exchanges import ADMIN, Clock, add_ncmec, bank_state, make_service

    from hashsvc.store import Store, upgrade

    in_child: list[int] = []
    parse_in_child = ParseWorker._in_child

    def counted(worker: ParseWorker[Any], body: bytes) -> Any:
        in_child.append(len(body))
        return parse_in_child(worker, body)

    monkeypatch.setattr(ParseWorker, "_in_child", counted)
    monkeypatch.setattr(offload_module, "READY_WAIT_S", 60.0)  # the first page waits for the child
    states = []
    for warm in (1 << 40, 0):
        monkeypatch.setattr(offload_module, "WARM_BYTES", warm)
        url = f"sqlite:///{tmp_path}/warm{warm}.db"
        upgrade(url)
        store = Store(url)
        store.create_bank("ncmec", category="csam", actor=ADMIN)
        with FakeNcmec(page_size=40) as fake:
            for n in range(400):
                fake.add(1_700_000_000 + n, f"img{n}", md5=hashlib.md5(f"m{n}".encode()).hexdigest())
            fake.add(1_700_000_500, "img7", deleted=True)
            fake.add(1_700_000_501, "bad", md5="zz")
            service = make_service(store, Clock(1_700_001_000), [], exchange_parse_process="on")
            add_ncmec(service, fake)
            result = service.sync("ncmec-feed", "worker")
        assert result.ok and result.counts["added"] == 400 and result.counts["bad"] == 1
        states.append(bank_state(store))
        store.close()
    assert len(in_child) == 11  # 402 entries, 40 a page: every page of the second sync went to the child
    assert states[0] == states[1]
    assert states[1]["42-img7"][0] == "disabled"


@pytest.mark.parametrize(
    ("setting", "dialect", "cores", "wanted"),
    [
        ("auto", "sqlite", 2, True),  # parsing moves to the core the syncing process does not use
        ("auto", "sqlite", 1, False),  # one core: a child only adds the cost of passing pages
        ("auto", "postgresql", 2, False),  # PostgreSQL's backend already works on the second core
        ("auto", "postgresql", 4, True),
        ("on", "postgresql", 1, True),
        ("off", "sqlite", 8, False),
    ],
)
def test_when_a_sync_parses_in_a_child_process(setting: str, dialect: str, cores: int, wanted: bool) -> None:
    from hashsvc.service.exchanges import parse_process_wanted

    assert parse_process_wanted(setting, dialect, cores) is wanted


def test_a_sync_with_the_parse_process_off_never_starts_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from test_exchanges import ADMIN, Clock, add_ncmec, make_service

    from hashsvc.store import Store, upgrade

    started: list[ParseWorker[Any]] = []
    monkeypatch.setattr(ParseWorker, "_start", lambda worker: started.append(worker))
    monkeypatch.setattr(offload_module, "WARM_BYTES", 0)  # it would start at the first page
    url = f"sqlite:///{tmp_path}/off.db"
    upgrade(url)
    store = Store(url)
    store.create_bank("ncmec", category="csam", actor=ADMIN)
    with FakeNcmec(page_size=40) as fake:
        for n in range(120):
            fake.add(1_700_000_000 + n, f"img{n}", md5=hashlib.md5(f"m{n}".encode()).hexdigest())
        service = make_service(store, Clock(1_700_001_000), [], exchange_parse_process="off")
        add_ncmec(service, fake)
        result = service.sync("ncmec-feed", "worker")
    store.close()
    assert result.ok and result.counts["added"] == 120
    assert started == []
