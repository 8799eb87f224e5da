"""Exchange syncs as real processes: SIGKILL in the middle of a sync, and two schedulers on one store."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from exchange_fakes import FakeNcmec

from hashsvc.config import load_settings
from hashsvc.service.exchanges import ExchangeService
from hashsvc.store import Actor, Store
from hashsvc.store import exchanges as feeds

ADMIN = Actor("admin")
T0 = 1_750_000_000
HASHSVC = [str(Path(sys.executable).parent / "hashsvc")]


def md5(n: int) -> str:
    return hashlib.md5(f"entry{n}".encode()).hexdigest()


def fill(fake: FakeNcmec, count: int) -> None:
    """A feed with additions, later updates and retractions of earlier entries, and entries kept aside."""
    for n in range(count):
        fake.add(T0 + n, f"img{n}", md5=md5(n), classification="A1" if n % 3 else "B1")
    for n in range(0, count, 7):
        fake.add(T0 + count + n, f"img{n}", md5=md5(n), classification="A2")
    for n in range(3, count, 11):
        fake.add(T0 + 2 * count + n, f"img{n}", deleted=True)
    for n in range(5):
        fake.add(T0 + 3 * count + n, f"aside{n}", other={"pdna": "ab" * 72})


def bank_state(store: Store, bank: str) -> dict[str, tuple[str, tuple[str, ...], object]]:
    state = {}
    after = 0
    while chunk := store.list_items(bank, after_id=after, limit=1000):
        for item in chunk:
            assert item.external_ref not in state, "an entry is in the bank twice"
            hashes = tuple(sorted(f"{h.algorithm}:{h.hex}" for h in item.hashes))
            state[item.external_ref] = (item.status, hashes, item.metadata.get("labels"))
        after = chunk[-1].id
    return state


@pytest.fixture
def env(store_url: str) -> Iterator[dict[str, str]]:
    yield {
        **os.environ,
        "HASHSVC_DATABASE_URL": store_url,
        "HASHSVC_EXCHANGE_KEY": Fernet.generate_key().decode(),
        "HASHSVC_EXCHANGE_LEASE_S": "2",
        "HASHSVC_EXCHANGE_ALLOWED_NETWORKS": "127.0.0.0/8",  # the fake NCMEC listens on loopback
        "HASHSVC_EXCHANGE_BATCH_ENTRIES": "100",  # pages of 40: a kill lands between batches of three pages
    }


def configure(store: Store, env: dict[str, str], fake: FakeNcmec, name: str, every: str = "1h") -> ExchangeService:
    settings = load_settings(
        {"exchange_key": env["HASHSVC_EXCHANGE_KEY"], "exchange_allowed_networks": "127.0.0.0/8"}, environ={}
    )
    service = ExchangeService(store, settings)
    store.create_bank(name, category="csam", actor=ADMIN)
    service.add(
        {
            "name": name,
            "type": "ncmec",
            "bank": name,
            "config": {"base_url": fake.url},
            "every": every,
            "credentials": {"username": "esp", "password": "secret"},
        },
        ADMIN,
    )
    return service


def test_sigkill_during_a_sync_then_a_restart_gives_what_one_uninterrupted_sync_gives(
    store: Store, env: dict[str, str]
) -> None:
    with FakeNcmec(page_size=40) as fake:
        fill(fake, 600)
        # the reference: one uninterrupted sync into another bank
        configure(store, env, fake, "reference")
        done = subprocess.run([*HASHSVC, "exchange", "sync", "reference"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        expected = bank_state(store, "reference")
        assert len(expected) == 600 and sum(status == "disabled" for status, _, _ in expected.values()) == 55

        configure(store, env, fake, "killed")
        fake.request_delay_s = 0.05  # a few seconds of paging: time to kill it in the middle
        process = subprocess.Popen(
            [*HASHSVC, "exchange", "sync", "killed"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while feeds.get_exchange(store, "killed").stats.get("pages", 0) < 5:
            assert time.monotonic() < deadline and process.poll() is None, "the sync ended before it could be killed"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        interrupted = feeds.get_exchange(store, "killed")
        assert interrupted.checkpoint is not None and interrupted.checkpoint["next"], "killed mid-range"
        assert 0 < len(bank_state(store, "killed")) < 600

        # the dead process's lease lapses (HASHSVC_EXCHANGE_LEASE_S=2); the restart resumes from the checkpoint
        time.sleep(2.1)
        fake.request_delay_s = 0
        resumed = subprocess.run([*HASHSVC, "exchange", "sync", "killed"], env=env, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert bank_state(store, "killed") == expected
    assert feeds.get_exchange(store, "killed").kept_aside == feeds.get_exchange(store, "reference").kept_aside == 5


def test_two_schedulers_sync_each_exchange_one_at_a_time(store: Store, env: dict[str, str]) -> None:
    fakes = [FakeNcmec(page_size=5) for _ in range(3)]
    schedulers: list[subprocess.Popen[bytes]] = []
    try:
        services = []
        for n, fake in enumerate(fakes):
            fake.__enter__()
            fake.request_delay_s = 0.03
            fill(fake, 40)
            services.append(configure(store, env, fake, f"feed{n}", every="60s"))
        for n in range(2):
            schedulers.append(
                subprocess.Popen(
                    [*HASHSVC, "exchange", "run", "--poll", "0.1", "--owner", f"replica-{n}"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        owners: set[str] = set()
        # Until both schedulers have synced and every feed has been synced a few times (a CLI process takes
        # several seconds to start on a loaded machine).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            len(owners) == 2 and all(feeds.get_exchange(store, f"feed{n}").stats.get("pages", 0) > 12 for n in range(3))
        ):
            for n, fake in enumerate(fakes):
                now = int(time.time())
                fake.add(max(now, fake.stamps[-1]), f"new{n}-{now}-{time.monotonic_ns()}", md5=md5(now + n))
                record = feeds.get_exchange(store, f"feed{n}")
                if record.lease_owner:
                    owners.add(record.lease_owner)
                if record.lease_owner is None:
                    services[n].request_sync(f"feed{n}", ADMIN)  # make it due again at once
            time.sleep(0.05)
    finally:
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        for process in schedulers:
            process.wait(timeout=30)
        for fake in fakes:
            fake.__exit__()
    assert owners == {"replica-0", "replica-1"}, owners
    for n, fake in enumerate(fakes):
        assert fake.most_at_once == 1, f"feed{n} was synced by two processes at once"
        record = feeds.get_exchange(store, f"feed{n}")
        assert record.stats["pages"] > 1 and record.last_success_at is not None
        bank_state(store, f"feed{n}")  # no entry twice
