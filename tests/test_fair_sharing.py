"""Fair sharing on a real server: one key floods expensive but valid uploads from several threads, and another
key's ordinary matches are still answered.

One server process with the default 2 slots and 0.25 s queue timeout. The flood is 16-megapixel PNGs (about a
quarter of a second of decoding and hashing each) from 4 threads, more than the process can take; the other key
uploads ordinary photos one after another, as a pipeline does.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from images import encode, photo
from live_server import LiveServer

from hashsvc.store import Store, upgrade

pytestmark = pytest.mark.slow

FLOOD_THREADS = 4
DURATION_S = 8.0


def test_a_flooding_key_does_not_starve_another_keys_matches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        flooder = store.create_api_key("flooder", ["match"], actor="test")[1]
        pipeline = store.create_api_key("pipeline", ["match"], actor="test")[1]
    expensive = encode(photo(4000, 4000, seed=4), "PNG")
    normal = [encode(photo(640, 480, seed=n)) for n in range(5)]
    server = LiveServer(url, tmp_path / "data", max_inflight=2, queue_timeout_s=0.25).start()
    try:
        server.wait_for("/readyz", 60)
        # Warm the server first (a fresh checkout compiles the index kernels and starts the sandbox on first
        # use), so that what is measured is the sharing, not one-off start-up costs.
        for token, body, kind in ((pipeline, normal[0], "image/jpeg"), (flooder, expensive, "image/png")):
            assert server.request("POST", "/v1/match", token=token, data=body, content_type=kind)[0] == 200
        flood_statuses: Counter[int] = Counter()
        normal_statuses: Counter[int] = Counter()
        stop = time.monotonic() + DURATION_S

        def flood() -> None:
            while time.monotonic() < stop:
                status, _ = server.request("POST", "/v1/match", token=flooder, data=expensive, content_type="image/png")
                flood_statuses[status] += 1

        threads = [threading.Thread(target=flood) for _ in range(FLOOD_THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the flood is under way before the pipeline starts
        n = 0
        while time.monotonic() < stop:
            status, _ = server.request(
                "POST", "/v1/match", token=pipeline, data=normal[n % len(normal)], content_type="image/jpeg"
            )
            normal_statuses[status] += 1
            n += 1
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    answered = normal_statuses[200] / sum(normal_statuses.values())
    print(f"pipeline: {dict(normal_statuses)}, flooder: {dict(flood_statuses)}")
    assert flood_statuses[503] > 0, flood_statuses  # the flood really exceeded the capacity
    assert flood_statuses[200] > 0, flood_statuses  # and still got its share
    assert sum(normal_statuses.values()) >= 20, normal_statuses
    assert answered >= 0.9, normal_statuses
