"""Bulk work on Dask: one way to get a client, shared by `hashsvc scan` and the robustness benchmark.

Without a scheduler address, a local cluster of one single-threaded worker process per core (hashing holds the GIL
for part of its time, so threads would not add throughput); with one, the existing cluster at that address. Work
functions and their arguments travel to the workers by pickle, and the workers read files by path: on a real
cluster, the paths must mean the same on every machine (a shared file system, or fsspec URLs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

Result = TypeVar("Result")


@contextmanager
def dask_client(scheduler: str | None, workers: int | None = None) -> Iterator[Any]:
    """A `distributed.Client` on the cluster at `scheduler`, or on a local cluster of `workers` processes."""
    from distributed import Client, LocalCluster  # Dask loads only for bulk work

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def map_in_order(client: Any, function: Callable[[Any], Result], jobs: Sequence[Any]) -> list[Result]:
    """`function` over `jobs` on the cluster, one task each (not cached: pure=False), results in job order."""
    futures = client.map(function, list(jobs), pure=False)
    try:
        return list(client.gather(futures))
    finally:
        client.cancel(futures)
