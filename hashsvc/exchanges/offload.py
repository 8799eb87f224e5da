"""Parse a large feed's pages in a child process, so that parsing and writing use both cores.

A first sync of a large NCMEC feed spends about as much CPU parsing its XML (~36 us per entry) as the store
spends writing the entries, and both ran in one process under one GIL: the prefetch thread overlapped the
network, not the parsing. `ParseWorker` hands page bodies to a child process once a sync has parsed `warm_bytes`
in-process, and keeps parsing in-process while the child starts (an import of hashsvc takes a second or more on
a loaded machine), so a small sync (a no-change sync is one empty page) never starts a process at all.

Only bytes go to the child and parsed entries come back: the child holds no credentials and opens no
connection; every request still goes through the client's guarded HTTP client in the syncing process. The
child is started with `spawn` (forking a process that serves requests from threads is unsafe) and exits when
its pipe closes, so a parent killed by SIGKILL leaves no child behind. If the child dies, parsing goes back
in-process: the page at hand is parsed again here, nothing is lost.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

WARM_BYTES = 1 << 20  # about three 1000-entry NCMEC pages
READY_WAIT_S = 0.0  # how long a page waits for a starting child before it is parsed here (tests wait)
_READY = "ready"


def _same(value: Any) -> Any:
    return value


def _serve(conn: Connection, parse: Callable[[bytes], Any], pack: Callable[[Any], Any]) -> None:
    """The child: parse every body received until the parent closes the pipe (or dies)."""
    conn.send(_READY)
    while True:
        try:
            body = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, pack(parse(body)))
        except Exception as exc:  # noqa: BLE001 - raised again in the parent, as an in-process parse would
            answer = (False, exc)
        try:
            conn.send(answer)
        except (BrokenPipeError, OSError):
            return


class ParseWorker(Generic[T]):
    """`worker(body)` is `parse(body)`, computed in a child process once `warm_bytes` have been parsed here.

    `parse` must be a module-level function (it is pickled by name) whose result and exceptions pickle. In the
    child the result goes through `pack`, and `unpack` turns that back into `parse`'s result here: plain tuples
    unpickle about five times faster than dataclass instances, and unpickling costs the syncing process CPU."""

    def __init__(
        self,
        parse: Callable[[bytes], T],
        *,
        pack: Callable[[T], Any] = _same,
        unpack: Callable[[Any], T] = _same,
        warm_bytes: int | None = None,
    ) -> None:
        self.parse = parse
        self.pack = pack
        self.unpack = unpack
        self.warm_bytes = WARM_BYTES if warm_bytes is None else warm_bytes
        self.parsed_here = 0
        self._conn: Connection | None = None
        self._process: Any = None
        self._ready = False
        self._failed = False

    @property
    def offloaded(self) -> bool:
        """Whether pages now go to the child."""
        return self._ready

    def __call__(self, body: bytes) -> T:
        if self._conn is None and not self._failed and self.parsed_here >= self.warm_bytes:
            self._start()
        if self._conn is not None and not self._ready:
            self._ready = self._poll_ready()
        if self._ready:
            try:
                return self._in_child(body)
            except (EOFError, OSError) as exc:
                log.warning("feed parser process ended (%s); parsing in-process", exc)
                self._failed = True
                self.close()
        self.parsed_here += len(body)
        return self.parse(body)

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        try:
            process = context.Process(
                target=_serve, args=(child, self.parse, self.pack), name="hashsvc-feed-parser", daemon=True
            )
            process.start()
        except OSError as exc:  # no process could be started (limits): keep parsing in-process
            log.warning("could not start a feed parser process (%s); parsing in-process", exc)
            parent.close()
            self._failed = True
            return
        finally:
            child.close()  # the child's end lives in the child only: its recv() sees EOF if this process dies
        self._conn, self._process = parent, process

    def _poll_ready(self) -> bool:
        assert self._conn is not None
        try:
            if not self._conn.poll(READY_WAIT_S):
                return False
            return bool(self._conn.recv() == _READY)
        except (EOFError, OSError):
            self._failed = True
            self.close()
            return False

    def _in_child(self, body: bytes) -> T:
        assert self._conn is not None
        self._conn.send_bytes(body)
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return self.unpack(value)

    def close(self) -> None:
        """Stop the child (it exits when its pipe closes); safe to call twice."""
        conn, process = self._conn, self._process
        self._conn, self._process, self._ready = None, None, False
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
