"""Probe detection: one key's queries that walk around a matched hash to reconstruct it.

The attack this stops: a caller holding a query Q within threshold of a stored code S sends Q's single-bit
flips; each answer (its distance, or for a decision-only key whether it still matches at the threshold's edge)
tells one bit of S. Every such query is a few bits from a query that matched, and differs from it.

The rule, per API key and per process:
* A query that matched something (any counted match) is remembered as an **anchor**: its perceptual codes (PDQ,
  pHash, dHash of the original view) and the answer it got, at most `max_anchors` of them, each forgotten
  `window_s` after its family was last touched.
* A later query that is within `radius` bits of an anchor in some algorithm they share, and not identical to it in
  all of them, is a **probe** of the anchor's family. A query identical to an anchor is a repeat (the same upload
  again) and never counts. A probe that itself matched joins the family as one more anchor, so a walk that steps
  bit by bit stays inside the family however far it goes.
* Once a family has had more than `budget` probes it is **flagged**: one audit entry names the key, and every
  later probe of it (and every repeat of its anchors) is answered as the family's first anchor was answered,
  with no distances, whether or not the probe itself matches. The answer is never less severe than the probe's
  own: an upload that really blocks still blocks. Answering rather than refusing keeps a fail-open pipeline from
  passing a banned upload that happens to look like a probe.

What it does not stop is written down in the README's Security section (memory is per process; a caller with
many keys or many processes multiplies the budget; steps wider than the radius are not seen).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hashsvc.config import Settings
from hashsvc.service import policy
from hashsvc.service.disclosure import redact

PERCEPTUAL = ("pdq", "phash", "dhash")
MAX_TRACKED_KEYS = 10_000  # keys are few; the bound only stops memory growing with a flood of distinct names
AUDIT_ACTION = "match.probing_suspected"


@dataclass(frozen=True)
class ProbeRules:
    radius: dict[str, int]  # per perceptual algorithm: a query this close to an anchor (and not equal) probes it
    budget: int  # probes a family may take before it is flagged
    window_s: float  # a family is forgotten this long after it was last touched
    max_anchors: int  # per key

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeRules:
        short = settings.probe_radius_short
        return cls(
            radius={"pdq": settings.probe_radius_pdq, "phash": short, "dhash": short},
            budget=settings.probe_budget,
            window_s=settings.probe_window_s,
            max_anchors=max(1, settings.probe_anchors),
        )


@dataclass
class _Family:
    id: int
    answer: dict[str, Any]  # the first anchor's answer, redacted: what a flagged family answers
    anchor_codes: dict[str, str]  # hex of the first anchor's codes, for the audit entry
    last_used: float
    probes: int = 0
    flagged: bool = False


@dataclass
class _Anchor:
    codes: dict[str, bytes]
    family: _Family


@dataclass
class _KeyMemory:
    anchors: list[_Anchor] = field(default_factory=list)  # oldest first
    # Per algorithm: the anchors' codes as one matrix and each row's position in `anchors`; rebuilt on change.
    _tables: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._tables is None:
            tables = {}
            for algorithm in PERCEPTUAL:
                rows = [(n, a.codes[algorithm]) for n, a in enumerate(self.anchors) if algorithm in a.codes]
                if rows:
                    codes = np.frombuffer(b"".join(code for _, code in rows), dtype=np.uint8).reshape(len(rows), -1)
                    tables[algorithm] = (codes, np.array([n for n, _ in rows], dtype=np.int64))
            self._tables = tables
        return self._tables

    def changed(self) -> None:
        self._tables = None


@dataclass(frozen=True)
class Screened:
    answer: dict[str, Any]  # what to tell the caller
    frozen: bool  # a flagged family's answer (or the query's own, redacted): show it without distances
    alerts: tuple[dict[str, Any], ...] = ()  # audit details, one per family flagged by this query


class ProbeGuard:
    """Screens each answer to a key's query (see the module docstring). Thread-safe."""

    def __init__(self, rules: ProbeRules, clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, _KeyMemory] = {}
        self._ids = itertools.count(1)

    def remembers(self, key: str) -> bool:
        """Whether key `key` has a memory (anchors, perhaps expired). Without one, screen() answers a query that
        matched nothing with its own result and remembers nothing, so the caller may skip it."""
        return key in self._keys

    def screen(self, key: str, codes: Mapping[str, bytes], result: dict[str, Any]) -> Screened:
        """The answer to give key `key` for one query, from its perceptual `codes` and its real `result`."""
        codes = {name: code for name, code in codes.items() if name in PERCEPTUAL}
        flagged_now: list[_Family] = []
        with self._lock:
            answer, frozen = self._screen(key, codes, result, flagged_now)
        return Screened(answer, frozen, tuple(_audit_details(family, self.rules) for family in flagged_now))

    def _screen(
        self, key: str, codes: dict[str, bytes], result: dict[str, Any], flagged_now: list[_Family]
    ) -> tuple[dict[str, Any], bool]:
        matched = bool(result["matches"])
        memory = self._keys.get(key)
        if memory is None:
            if not matched or not codes:
                return result, False
            memory = self._memory(key)
        now = self._clock()
        self._expire(memory, now)
        repeat, near = self._neighbours(memory, codes)
        if repeat is not None:
            repeat.last_used = now
            return (_frozen(repeat, result), True) if repeat.flagged else (result, False)
        if not near:
            if matched and codes:
                family = _Family(next(self._ids), redact(result), {k: v.hex() for k, v in codes.items()}, now)
                self._add_anchor(memory, _Anchor(codes, family))
            return result, False
        for family in near:
            family.last_used = now
            family.probes += 1
            if family.probes > self.rules.budget and not family.flagged:
                family.flagged = True
                flagged_now.append(family)
        if matched:  # a walk that keeps matching stays in the family however far it steps
            self._add_anchor(memory, _Anchor(codes, near[0]))
        flagged = [family for family in near if family.flagged]
        if not flagged:
            return result, False
        worst = max(flagged, key=lambda family: policy.SEVERITY[family.answer["decision"]])
        return _frozen(worst, result), True

    def _neighbours(self, memory: _KeyMemory, codes: dict[str, bytes]) -> tuple[_Family | None, list[_Family]]:
        """The family of an anchor identical to the query in every shared algorithm (a repeat), else the
        families of anchors the query probes, in the order their anchors were added."""
        count = len(memory.anchors)
        if not count:
            return None, []
        shared = np.zeros(count, dtype=np.int32)
        equal = np.zeros(count, dtype=np.int32)
        close = np.zeros(count, dtype=np.int32)
        for algorithm, (table, positions) in memory.tables().items():
            code = codes.get(algorithm)
            if code is None:
                continue
            distances = np.bitwise_count(table ^ np.frombuffer(code, dtype=np.uint8)).sum(axis=1)
            shared[positions] += 1
            equal[positions] += distances == 0
            close[positions] += (distances > 0) & (distances <= self.rules.radius[algorithm])
        repeats = np.flatnonzero((shared > 0) & (equal == shared))
        if len(repeats):
            return memory.anchors[int(repeats[-1])].family, []
        families: dict[int, _Family] = {}
        for position in np.flatnonzero(close).tolist():
            family = memory.anchors[position].family
            families.setdefault(family.id, family)
        return None, list(families.values())

    def _memory(self, key: str) -> _KeyMemory:
        if len(self._keys) >= MAX_TRACKED_KEYS:
            self._keys.clear()  # only reachable with more keys than any deployment has; fail towards memory
        return self._keys.setdefault(key, _KeyMemory())

    def _expire(self, memory: _KeyMemory, now: float) -> None:
        cutoff = now - self.rules.window_s
        kept = [anchor for anchor in memory.anchors if anchor.family.last_used >= cutoff]
        if len(kept) != len(memory.anchors):
            memory.anchors = kept
            memory.changed()

    def _add_anchor(self, memory: _KeyMemory, anchor: _Anchor) -> None:
        if len(memory.anchors) >= self.rules.max_anchors:
            # Flagged families are kept longest: flushing them with fresh matches must cost the most.
            victim = next((n for n, a in enumerate(memory.anchors) if not a.family.flagged), 0)
            del memory.anchors[victim]
        memory.anchors.append(anchor)
        memory.changed()


def _frozen(family: _Family, result: dict[str, Any]) -> dict[str, Any]:
    """The family's answer, unless the query's own is more severe (a banned upload is never let through)."""
    own = redact(result)
    if policy.SEVERITY[result["decision"]] > policy.SEVERITY[family.answer["decision"]]:
        return own
    return {**family.answer, "index": result["index"]}


def _audit_details(family: _Family, rules: ProbeRules) -> dict[str, Any]:
    return {
        "reason": "queries stepping around a matched query (probing for a stored hash)",
        "probes": family.probes,
        "budget": rules.budget,
        "radius": rules.radius,
        "anchor": family.anchor_codes,  # the caller's own query, never a stored hash
        "answered_as": family.answer["decision"],
        "banks": sorted({match["bank"] for match in family.answer["matches"]}),
    }
