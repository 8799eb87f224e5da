"""OpenCV and FAISS, imported on first use and configured for a process that serves many small jobs.

Neither is imported by `import hashsvc...`: the sandbox's workers are forks of a fork server that preloads the
main module, and every library the main module imports counts against each worker's address-space limit
(RLIMIT_AS, HASHSVC_SANDBOX_MEMORY_MB). Measured here: importing cv2 maps 313 MiB, 180 MiB of it OpenBLAS
buffers for every possible thread (cv2 bundles its own OpenBLAS, which it uses for nothing ORB or RANSAC do);
with OPENBLAS_NUM_THREADS=1 set before the import it maps 133 MiB. FAISS maps about 340 MiB and is needed only in
the serving process. Both run single-threaded: a request is one job among many on few cores (DESIGN.md measured
FAISS single queries 5-10x slower with 2 threads here).
"""

from __future__ import annotations

import functools
import os
from typing import Any


@functools.cache
def opencv() -> Any:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read by cv2's bundled OpenBLAS when it loads, just below
    import cv2

    cv2.setNumThreads(1)
    return cv2


@functools.cache
def faiss() -> Any:
    # OpenMP's thread count is per thread: omp_set_num_threads(1) below covers the thread that imports FAISS
    # only, and every other thread (the server's request threads, which run the searches) started with the
    # default, one OpenMP thread per core. Each search then ran its two parallel regions on a team of 2 here,
    # whose threads spin while they wait: a lookup at 10,000 items from a thread took 27.8 ms of process CPU
    # instead of 5.4 ms on this shared 2-core machine, unseen by a Python profiler and by the benchmarks' timings
    # (main thread) (docs/local-features.md, round 4). OMP_NUM_THREADS, read when FAISS's own libgomp loads
    # just below, is every thread's default.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import faiss as module

    module.omp_set_num_threads(1)
    return module
