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
    import faiss as module

    module.omp_set_num_threads(1)
    return module
