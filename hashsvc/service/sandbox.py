"""Untrusted bytes are decoded and hashed in worker processes with hard limits, never in the serving process.

A `Sandbox` is a pool of worker processes; each job is the upload's bytes in and the small `ImageHashes` out.
Per job, whatever the decoder does:
- **memory**: each worker runs under RLIMIT_AS (`memory_bytes`), so an allocation past it fails inside the
  worker (MemoryError -> `too_expensive`) instead of growing the server; the header cost check in `media`
  refuses most such files before they are decoded;
- **CPU**: before each job the worker moves its RLIMIT_CPU soft limit to what it has used plus the job's
  allowance, so a spinning decoder dies of SIGXCPU even if the parent is gone;
- **wall clock**: the parent waits for the answer until the deadline, then SIGKILLs the worker
  (`decode_timeout`) and starts a replacement. No cooperation from the decoder is needed.
A worker that dies (segfault, abort, the kernel's OOM killer) answers its job with a typed MediaError and is
replaced; other jobs run in other workers and are not affected. A worker whose RSS grew past
`recycle_rss_bytes` after a job is replaced too, so the pool's memory returns to its baseline.

Workers come from a `forkserver` (fork is unsafe in the multithreaded server; spawn would pay an interpreter
start and every import per worker) that imports `sandbox_preload`, which warms the hashing code once: a new
worker is a fork of a warm process.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import queue
import resource
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from hashsvc.config import Settings
from hashsvc.errors import MediaError
from hashsvc.service.hashing import ImageHashes, hash_image

Hasher = Callable[..., ImageHashes]

PRELOAD_MODULE = "hashsvc.service.sandbox_preload"
START_TIMEOUT_S = 60.0  # a worker that is not ready by then is a broken installation, not a slow one
_CONTEXT = multiprocessing.get_context("forkserver")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_MIB = 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_preload_lock = threading.Lock()
_preload_set = False


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int  # RLIMIT_AS of each worker (its whole address space, baseline included)
    deadline_s: float  # wall clock per job; past it the parent kills the worker
    recycle_rss_bytes: int  # a worker whose resident memory is above this after a job is replaced

    @property
    def cpu_seconds(self) -> int:
        """CPU time one job may use. Twice the deadline: libheif decodes with several threads; RLIMIT_CPU is a
        backstop for when the parent cannot enforce the deadline, not the deadline itself."""
        return math.ceil(2 * self.deadline_s) + 1


class SandboxError(RuntimeError):
    """The hashing code itself failed in a worker (a bug, not a bad upload): surfaces like it would in-process."""


class _Worker:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self._close_lock = threading.Lock()

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.join(5)
        self.close_pipe()

    def stop(self) -> None:
        """Ask the worker to exit (it does on end of input); kill it if it does not."""
        self.close_pipe()
        self.process.join(2)
        if self.process.exitcode is None:
            self.kill()

    def close_pipe(self) -> None:
        """Close our end of the pipe once. `Sandbox.close()` and a thread still starting this worker can both get
        here: two unguarded closes would both pass `Connection.close`'s check and close the descriptor twice,
        failing with EBADF, or closing whatever file had been given the same number in between."""
        with self._close_lock:
            if not self.conn.closed:
                self.conn.close()


class Sandbox:
    """A pool of `size` hashing workers; `hash` is safe to call from many threads (at most `size` run at once,
    the rest wait for a free worker)."""

    def __init__(self, size: int, limits: SandboxLimits, hasher: Hasher = hash_image) -> None:
        self.size = max(1, size)
        self.limits = limits
        self._hasher = hasher
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start and warm every worker now (otherwise the first `hash` does). Idempotent."""
        with self._lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            self._started = True
        _set_preload()
        # Launch every worker before waiting for any: they warm up in parallel.
        workers = [self._launch() for _ in range(self.size)]
        failure: RuntimeError | None = None
        for worker in workers:
            try:
                self._release(self._await_ready(worker))
            except RuntimeError as error:
                failure = error
                self._release(None)  # the next job on this slot tries again, and raises if it fails again
        if failure is not None:
            raise failure

    def start_in_background(self) -> None:
        """Start the workers without blocking the caller: a server is warm before its first upload, and a
        command that never hashes does not wait for them (close() does not wait either)."""
        threading.Thread(target=self._start_quietly, name="hashsvc-sandbox-start", daemon=True).start()

    def _start_quietly(self) -> None:
        with contextlib.suppress(RuntimeError):  # the first job raises it again, where someone sees it
            self.start()

    def close(self) -> None:
        """Stop every worker; jobs running now end with an error. Idempotent."""
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.stop()

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and monitoring)."""
        with self._lock:
            return sorted(worker.pid for worker in self._all)

    # --------------------------------------------------------------------------------------------- jobs

    def hash(self, data: bytes, **options: Any) -> ImageHashes:
        """`hash_image(data, **options)` in a worker. Raises MediaError for the upload's faults (including
        `decode_timeout` and `too_expensive` from the limits, `corrupt` for a crashed decoder)."""
        return self.run(self._hasher, data, **options)  # type: ignore[no-any-return]

    def run(self, function: Callable[..., Any], data: bytes, *, deadline_s: float | None = None, **options: Any) -> Any:
        """`function(data, **options)` in a worker, under the pool's limits; `deadline_s` replaces the pool's
        wall-clock deadline (and CPU allowance) for this job only: a video takes longer than an image.
        `function` must be importable by name (a module-level function). Raises as `hash`."""
        limits = self.limits if deadline_s is None else replace(self.limits, deadline_s=deadline_s)
        self.start()
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        worker = self._idle.get()
        try:
            if worker is None:  # the slot's worker was lost; start its replacement now
                worker = self._await_ready(self._launch())
            result, keep = self._run(worker, data, (function, limits.cpu_seconds, options), limits.deadline_s)
        except BaseException:  # interrupted while a job ran: its worker is in an unknown state
            if worker is not None:
                worker.kill()
                self._retire(worker)
            self._release(None)
            raise
        if not keep:
            self._retire(worker)
            worker = self._replacement()
        self._release(worker)
        if isinstance(result, Exception):
            raise result
        return result

    def _run(
        self, worker: _Worker, data: bytes, job: tuple[Any, int, dict[str, Any]], deadline_s: float
    ) -> tuple[Any, bool]:
        """Send one job and wait for its answer: (hashes or the error to raise, whether the worker stays)."""
        try:
            worker.conn.send(job)
            worker.conn.send_bytes(data)
            if not worker.conn.poll(deadline_s):
                worker.kill()
                return _timeout(deadline_s), False
            reply = worker.conn.recv()
        except (EOFError, OSError):
            return self._died(worker), False
        kind, payload, rss, poisoned = reply
        keep = not poisoned and rss <= self.limits.recycle_rss_bytes
        if kind == "ok":
            return payload, keep
        if kind == "media":
            return MediaError(*payload), keep
        return SandboxError(payload), keep

    def _died(self, worker: _Worker) -> MediaError:
        worker.process.join(5)
        code = worker.process.exitcode
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        if code == -signal.SIGXCPU:
            return MediaError("decode_timeout", "decoding used more CPU time than is allowed")
        if code == -signal.SIGKILL:  # not ours (we return before killing): the kernel's OOM killer
            return MediaError("too_expensive", "decoding the image ran out of memory")
        cause = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit status {code}"
        return MediaError("corrupt", f"the image could not be decoded: the decoder crashed ({cause})")

    def _release(self, worker: _Worker | None) -> None:
        with self._lock:
            closed = self._closed
        if closed and worker is not None:
            worker.stop()
            worker = None
        self._idle.put(worker)

    def _replacement(self) -> _Worker | None:
        """A new worker for a slot whose worker was lost (a fork of the warm fork server: milliseconds), or None
        to let the slot's next job try again."""
        if self._closed:
            return None
        try:
            return self._await_ready(self._launch())
        except (RuntimeError, OSError):
            return None

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        if worker.process.exitcode is None and not worker.conn.closed:
            worker.stop()

    # ------------------------------------------------------------------------------------------ workers

    def _launch(self) -> _Worker:
        parent_end, child_end = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(
            target=_worker_main,
            args=(child_end, self.limits),
            name="hashsvc-sandbox",
            daemon=True,
        )
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        with self._lock:
            self._all.add(worker)
        return worker

    def _await_ready(self, worker: _Worker) -> _Worker:
        try:
            if worker.conn.poll(START_TIMEOUT_S):
                worker.conn.recv()
                return worker
        except (EOFError, OSError, TypeError):  # TypeError: close() closed the pipe while we waited on it
            pass
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        raise RuntimeError(f"a sandbox worker did not start (exit status {worker.process.exitcode})")


def sandbox_from(settings: Settings) -> Sandbox | None:
    """The pool the settings ask for (not started), or None to hash in the calling process (HASHSVC_SANDBOX=0)."""
    if not settings.sandbox:
        return None
    limits = SandboxLimits(
        memory_bytes=settings.sandbox_memory_mb * _MIB,
        deadline_s=settings.decode_timeout_s,
        recycle_rss_bytes=settings.sandbox_recycle_mb * _MIB,
    )
    return Sandbox(settings.sandbox_workers or settings.max_inflight, limits)


def _timeout(deadline_s: float) -> MediaError:
    return MediaError("decode_timeout", f"decoding took longer than the {deadline_s:g} s limit")


def _set_preload() -> None:
    """Preload the warm-up in the fork server (only effective before the server starts: once per process).
    `__main__` first, so that workers do not each re-import the main script."""
    global _preload_set
    with _preload_lock:
        if not _preload_set:
            _CONTEXT.set_forkserver_preload(["__main__", PRELOAD_MODULE])
            _preload_set = True


# ------------------------------------------------------------------------------------------ in the worker


def _worker_main(conn: Connection, limits: SandboxLimits) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us by closing
    _keep_freed_memory()
    from hashsvc.service import sandbox_preload

    sandbox_preload.warm_up()
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    try:
        conn.send(_rss())
        while True:
            function, cpu_seconds, options = conn.recv()
            data = conn.recv_bytes()
            _allow_cpu(cpu_seconds)
            conn.send(_job(function, data, options))
    except (EOFError, OSError):
        return  # the parent closed the pipe or is gone (a command that exits before its pool warmed up)


def _job(hasher: Hasher, data: bytes, options: dict[str, Any]) -> tuple[str, Any, int, bool]:
    """(kind, payload, RSS after the job, whether this worker must be replaced)."""
    try:
        return "ok", hasher(data, **options), _rss(), False
    except MediaError as error:
        return "media", (error.code, error.message), _rss(), False
    except MemoryError:
        # The allocation failed at the address-space limit; what else failed half-way is unknown: replace us.
        return "media", ("too_expensive", "the image needs more memory to decode than is allowed"), _rss(), True
    except Exception as exc:  # noqa: BLE001 - a bug in hashing; the parent raises it as SandboxError
        return "failed", f"{type(exc).__name__}: {exc}", _rss(), True


def _keep_freed_memory() -> None:
    """Let glibc keep the buffers a job frees for the next job instead of returning them to the kernel.

    A worker forked from the fork server never raised glibc's dynamic mmap threshold, so every large array of
    every job was a fresh mmap: about 1,450 page faults per ~1 MP upload, and 15-18 ms of hashing instead of
    10 ms in the serving process (measured on this VM, where a page fault costs ~4 us). Fixed thresholds end
    that; a worker that keeps more than `recycle_rss_bytes` after a heavy job is replaced anyway, so the memory
    it keeps is bounded.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 64 * _MIB)  # larger allocations (heavy images only) still get their own mmap
    libc.mallopt(_M_TRIM_THRESHOLD, 128 * _MIB)


def _allow_cpu(seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _rss() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE
