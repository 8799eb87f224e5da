"""The use cases, in one place: the HTTP API and the CLI are thin shells over `Service`.

Every method takes plain values and returns plain, JSON-ready values (dicts of str/int/bool/None), and raises
only `HashsvcError` subclasses, so that both shells can translate the outcome the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hashsvc import json_input, media
from hashsvc.config import Settings, percentages
from hashsvc.errors import InvalidHashError, NotFoundError, NotReadyError, ValidationError
from hashsvc.features import ALGORITHM as FEATURE_ALGORITHM
from hashsvc.features import MAX_QUERY, MAX_STORED, QUERY_RESAMPLE, QUERY_WORK_SIDE, Features
from hashsvc.features import codec as feature_codec
from hashsvc.features.live import LiveFeatures
from hashsvc.features.orb import STORED_RESAMPLE, WORK_SIDE
from hashsvc.hashes import ALGORITHMS, normalize_hex
from hashsvc.hashes.codec import hamming
from hashsvc.hashes.compute import DIHEDRAL_VARIANTS
from hashsvc.hashes.information import minority_bits
from hashsvc.media_sniff import video_kind
from hashsvc.service import audit, feature_policy, feature_stage, floodguard, overview, policy, query_views
from hashsvc.service.aftermatch import AfterMatch
from hashsvc.service.disclosure import Caller, redact
from hashsvc.service.events import MatchContext, context_from
from hashsvc.service.exchanges import ExchangeService
from hashsvc.service.hashing import ImageHashes, hash_image
from hashsvc.service.live_index import LiveIndex
from hashsvc.service.probing import AUDIT_ACTION, ProbeGuard, ProbeRules
from hashsvc.service.sandbox import sandbox_from
from hashsvc.service.schema_watch import SchemaWatch
from hashsvc.service.video import VideoUseCases
from hashsvc.store import UNSET, Actor, ApiKey, Bank, Item, NewItem, Store, validation
from hashsvc.store.features import DEFAULT_BANK_FEATURES, bank_features, set_bank_features
from hashsvc.store.owners import HashOwner, item_codes, matching_owners

MAX_BATCH = 1000
MAX_ID = 2**63 - 1
KEY_CACHE_S = 2.0
KEY_CACHE_SIZE = 10_000  # ids are 64-bit integers in every store back end
KEY_OPTIONS = {"disclosure", "rate_per_s", "burst", "max_inflight", "expires_at"}
DEFAULT_ROTATION_GRACE_S = 86_400  # a day for every client to pick up the new secret
_NO_EVIDENCE = policy.decide(())  # the decision for a query that matched nothing

log = logging.getLogger(__name__)


def limits_from(settings: Settings) -> media.Limits:
    return media.Limits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        max_frames=settings.max_frames,
        decode_timeout_s=settings.decode_timeout_s,
        max_decode_bytes=settings.max_decode_mb * 1024 * 1024,
    )


@dataclass
class _Query:
    """What one query looks for: algorithm -> [(variant, code)], plus the PDQ quality when known."""

    codes: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    pdq_quality: int | None = None
    views: dict[str, query_views.ViewMeasures] = field(default_factory=dict)  # view label -> information


class Service:
    """hashsvc's use cases over one store and one live index."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        live: LiveIndex | None = None,
        *,
        warm_sandbox: bool = True,
    ) -> None:
        """`warm_sandbox` starts the hashing workers now, in the background (a server is then warm before its
        first upload); a command-line run leaves them to the first image it hashes, if any."""
        self.settings = settings
        self.limits = limits_from(settings)
        self.index_crops = percentages("index_crops", settings.index_crops)
        self.store = store or Store(settings.resolved_database_url)
        snapshots = Path(settings.data_dir) / "snapshots"
        self.live = live or LiveIndex(
            self.store,
            snapshots,
            poll_interval_s=settings.poll_interval_s,
            features=LiveFeatures(self.store, snapshots, kind=settings.feature_index),  # type: ignore[arg-type]
        )
        # Re-read at most every few seconds by status(): readiness says so when another version migrated the store.
        self.schema = SchemaWatch(self.store)
        self._key_cache: dict[str, tuple[float, ApiKey]] = {}
        self._bank_cache: tuple[float, list[Bank]] = (float("-inf"), [])
        self.probes = ProbeGuard(ProbeRules.from_settings(settings))
        # Events, reviews, allowlists, the flood guard, webhooks (hashsvc.service.aftermatch).
        self.after = AfterMatch(settings, self.store)
        self.exchanges = ExchangeService(self.store, settings)  # partner feeds (hashsvc.service.exchanges)
        # A review resolved as a false positive is reported to the partner whose feed the item came from, when
        # that exchange has feedback on (off by default) and its API takes it.
        self.after.reviews.on_resolve.append(self._report_false_positive)
        # Upload bytes are decoded in this pool of limited worker processes (None: in this process).
        self.sandbox = sandbox_from(settings)
        if self.sandbox is not None and warm_sandbox:
            self.sandbox.start_in_background()
        self.video = VideoUseCases(self)  # videos and animations (service/video.py)

    def _report_false_positive(self, review: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if review.get("resolution") != "false_positive" or not review.get("item_id"):
            return
        try:
            outcome = self.exchanges.report_false_positive(review["item_id"], Actor(review.get("resolved_by") or "-"))
        except Exception as exc:  # noqa: BLE001 - the resolution stands; the partner report is best effort
            outcome = {"reported": False, "reason": f"{type(exc).__name__}: {exc}"}
        self.store.record_audit(
            Actor(review.get("resolved_by") or "-"),
            "review.partner_feedback",
            bank=review.get("bank"),
            item_id=review["item_id"],
            details={"review_id": review.get("id"), **outcome},
        )

    def close(self) -> None:
        self.after.close()  # drains the event buffer into the store, so before the store closes
        if self.sandbox is not None:
            self.sandbox.close()
        self.live.stop()
        self.store.close()

    # --------------------------------------------------------------------------------------------- auth

    def authenticate(self, token: str | None) -> ApiKey | None:
        """The API key behind a bearer token, or None if it is unknown or revoked.

        A valid key is remembered for KEY_CACHE_S, so that a busy upload pipeline costs one store read per
        key every few seconds rather than one per request; a revocation therefore reaches other processes
        within that time (this process forgets the key at once).
        """
        if not token:
            return None
        now = time.monotonic()
        cached = self._key_cache.get(token)
        if cached is not None and cached[0] > now:
            if cached[1].expired(dt.datetime.now(dt.UTC)):
                self._key_cache.pop(token, None)
                return None
            return cached[1]
        key = self.store.verify_api_key(token)  # None for an expired key, or an old secret past its grace
        if key is None or key.revoked:
            self._key_cache.pop(token, None)
            return None
        if len(self._key_cache) > KEY_CACHE_SIZE:
            self._key_cache.clear()
        self._key_cache[token] = (now + KEY_CACHE_S, key)
        return key

    # ------------------------------------------------------------------------------------------ hashing

    def hash_image(self, data: bytes) -> dict[str, Any]:
        """Image bytes -> every hash, without any lookup (a video or an animation: its vPDQ, MD5, SHA-256)."""
        if video_kind(data):
            return self.video.hash_dict(data)
        return self._hash(data).to_dict()

    def _hash(
        self, data: bytes, *, dihedral: bool = False, extras: str | None = None, features: int = 0,
        feature_side: int = WORK_SIDE, feature_resample: str = STORED_RESAMPLE,
    ) -> ImageHashes:
        options = {
            "dihedral": dihedral,
            "extras": extras,
            "rules": media.PixelRules(self.settings.pixel_rules),
            "work_size": self.settings.work_size or None,
            "crops": self.index_crops,
        }
        if features:  # local features come from the same decode (hashsvc.service.feature_stage)
            options.update(features=features, feature_side=feature_side, feature_resample=feature_resample)
        if self.sandbox is None:
            return hash_image(data, self.limits, **options)  # type: ignore[arg-type]
        return self.sandbox.hash(data, limits=self.limits, **options)

    # ----------------------------------------------------------------------------------------- matching

    def match_image(
        self,
        data: bytes,
        caller: Caller | None = None,
        context: MatchContext | None = None,
        *,
        record: bool = True,
    ) -> dict[str, Any]:
        """Decode and hash an upload, look every hash up, and decide. Raises MediaError, NotReadyError.

        A `caller` (an API key) gets its answer screened for probing and shaped by its key's disclosure; without
        one (the local CLI) the answer is complete. Videos and animations are matched by vPDQ (service/video.py).
        Without `record`, no match event is kept: an analyst testing an image in the console is not an upload,
        and must open no review, fire no webhook and count for no flood guard."""
        if video_kind(data):
            return self.video.match(data, caller)
        started = time.perf_counter()
        self.require_current()
        hashes = self._hash(
            data, dihedral=True, extras="query", features=self._query_features(), feature_side=QUERY_WORK_SIDE,
            feature_resample=QUERY_RESAMPLE,
        )
        query = _query_from_image(hashes)
        matched = self._with_features(self._match(query), hashes)
        if record:
            self.after.record(caller, context or MatchContext(), _image_hash_summary(hashes), matched)
        (result,) = self._answers(caller, [query], [matched])
        return _response(result, _image_hash_summary(hashes), _timed(caller, started))

    def match_hashes(self, body: Any, caller: Caller | None = None) -> dict[str, Any]:
        """Match one hash set `{"pdq": "...", "md5": "..."}` or a batch `{"items": [...]}` (up to 1000).

        A batch is screened for probing in order, as if its sets had come one after another. A set with a
        `vpdq` list is a video's hash (service/video.py)."""
        if isinstance(body, dict) and "vpdq" in body:
            return self.video.match_signal(body, caller)
        started = time.perf_counter()
        self.require_current()
        if isinstance(body, dict) and "items" in body:
            batch = body["items"]
            if not isinstance(batch, list) or not batch:
                raise ValidationError("'items' must be a non-empty list of hash sets")
            if len(batch) > MAX_BATCH:
                raise ValidationError(f"a batch holds at most {MAX_BATCH} hash sets, got {len(batch)}")
            split = [_split_context(entry, f"items[{n}]") for n, entry in enumerate(batch)]
            queries = [_query_from_hash_set(entry, f"items[{n}]") for n, (entry, _) in enumerate(split)]
            raw = self._match_many(queries)
            # one summary per set, for its event and its answer alike (neither changes it)
            summaries = [_hash_set_summary(query) for query in queries]
            contexts = [context for _, context in split]
            decided = list(zip(contexts, summaries, raw, strict=True))
            self.after.record_many(caller, decided)
            matched = self._answers(caller, queries, raw)
            results = [_response(m, summary) for summary, m in zip(summaries, matched, strict=True)]
            batch_response: dict[str, Any] = {"results": results, "index": {"sequence": self.live.sequence}}
            timed = _timed(caller, started)
            if timed is not None:
                batch_response["took_ms"] = round((time.perf_counter() - timed) * 1000, 2)
            return batch_response
        body, context = _split_context(body, "body")
        query = _query_from_hash_set(body, "body")
        one = self._match(query)
        self.after.record(caller, context, _hash_set_summary(query), one)
        (result,) = self._answers(caller, [query], [one])
        return _response(result, _hash_set_summary(query), _timed(caller, started))

    def _answers(
        self, caller: Caller | None, queries: list[_Query], results: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """What the caller is told: each result screened for probing, in order, then cut to the key's disclosure."""
        if caller is None:
            return results
        answers = []
        name, decision_only = caller.key.name, caller.key.decision_only
        for query, result in zip(queries, results, strict=True):
            if not result["matches"] and not self.probes.remembers(name):
                # What screen() answers for it, without its work: a query that matched nothing, from a key with
                # no anchor to probe, is neither an anchor nor a probe (most sets of a batch are such).
                answers.append(redact(result) if decision_only else result)
                continue
            screened = self.probes.screen(name, _original_codes(query), result)
            for details in screened.alerts:
                self.store.record_audit(caller.actor, AUDIT_ACTION, details=details)
            shown = screened.frozen or decision_only
            answers.append(redact(screened.answer) if shown else screened.answer)
        return answers

    def _query_features(self) -> int:
        """How many local features to extract from an upload: none unless a bank the upload can match has the
        stage on and items with features (`LiveFeatures.reachable`), and this process's index holds some."""
        features = self.live.features
        return MAX_QUERY if self.settings.features and features.reachable and len(features.index) else 0

    def _with_features(self, result: dict[str, Any], hashes: ImageHashes) -> dict[str, Any]:
        """The second stage (feature_stage), for uploads the hash stage did not block."""
        if not feature_stage.wanted(result, hashes.features):
            return result
        assert hashes.features is not None
        budget_s = self.settings.feature_budget_ms / 1000
        found = feature_stage.find(self.live.features.index, self.store.engine, hashes.features, budget_s)
        return feature_stage.combine(result, found)

    def require_current(self) -> None:
        """Refuse until the index is loaded; then catch up with the store as it is now (read-your-writes)."""
        if not self.live.ready:
            raise NotReadyError("the index is still loading; retry shortly")
        timeout_s = self.settings.fresh_read_timeout_s
        if timeout_s > 0 and not self.live.refresh(timeout_s):
            log.warning("answering %.1f s after the request came without every change applied", timeout_s)

    def _match(self, query: _Query) -> dict[str, Any]:
        return self._match_many([query])[0]

    def _match_many(self, queries: list[_Query]) -> list[dict[str, Any]]:
        """Look a batch of queries up with one index search per algorithm and one store read in all."""
        radius = self._search_radii()
        # Per query: hash id -> (algorithm, distance, variant), keeping the closest variant.
        candidates: list[dict[int, tuple[str, int, str]]] = [{} for _ in queries]
        for algorithm in ALGORITHMS:
            probes = [(n, variant, code) for n, q in enumerate(queries) for variant, code in q.codes.get(algorithm, ())]
            if not probes:
                continue
            codes = np.frombuffer(b"".join(code for _, _, code in probes), dtype=np.uint8).reshape(len(probes), -1)
            for (n, variant, _), (ids, distances) in zip(
                probes, self.live.search(algorithm, codes, radius[algorithm]), strict=True
            ):
                if not len(ids):
                    continue  # most probes of a batch find nothing
                found = candidates[n]
                for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
                    best = found.get(hash_id)
                    if best is None or _closer(algorithm, distance, variant, best):
                        found[hash_id] = (algorithm, distance, variant)
        wanted = {hash_id for found in candidates for hash_id in found}
        owners = matching_owners(self.store.engine, list(wanted)) if wanted else {}
        self._add_corroborated_pdq(queries, candidates, owners)
        quarantined, suppressed = self.after.adjust(candidates, owners)
        sequence = self.live.sequence
        results = [
            self._decide(query, found, owners, sequence) for query, found in zip(queries, candidates, strict=True)
        ]
        for result, gone in zip(results, suppressed, strict=True):
            _after_match_notes(result, quarantined, gone)
        return results

    def _add_corroborated_pdq(
        self, queries: list[_Query], candidates: list[dict[int, tuple[str, int, str]]], owners: dict[int, HashOwner]
    ) -> None:
        """For items a pHash or dHash matched but no PDQ within threshold did, add their PDQ distance when it is
        within the policy's corroborated band (the index is searched at the thresholds only: a wider PDQ
        radius would cost every query, while this costs only the rare query a 64-bit hash already matched)."""
        wanted: list[set[int]] = []
        for query, found in zip(queries, candidates, strict=True):
            short, close = set(), set()
            for hash_id, (algorithm, distance, _variant) in found.items():
                owner = owners.get(hash_id)
                if owner is None:
                    continue
                threshold = _threshold(owner, algorithm)
                if policy.is_short(algorithm) and distance <= threshold:
                    short.add(owner.item_id)
                elif algorithm == "pdq" and distance <= threshold:
                    close.add(owner.item_id)
            wanted.append(short - close if query.codes.get("pdq") else set())
        if not any(wanted):
            return
        stored = item_codes(self.store.engine, sorted(set().union(*wanted)), "pdq")
        by_item = {owner.item_id: owner for owner in owners.values()}
        for query, found, items in zip(queries, candidates, wanted, strict=True):
            if not items:
                continue  # (a set of the batch with no PDQ has none to add; it has no "pdq" codes at all)
            probes = query.codes["pdq"]
            for item_id in items:
                owner = by_item[item_id]
                limit = policy.corroborated_limit(_threshold(owner, "pdq"))
                for hash_id, code in stored.get(item_id, ()):
                    distance, variant = min((hamming(code, probe), name) for name, probe in probes)
                    if distance <= limit and (hash_id not in found or distance < found[hash_id][1]):
                        found[hash_id] = ("pdq", distance, variant)
                        owners[hash_id] = replace(owner, hash_id=hash_id, algorithm="pdq")

    @staticmethod
    def _decide(
        query: _Query, found: dict[int, tuple[str, int, str]], owners: dict[int, HashOwner], sequence: int
    ) -> dict[str, Any]:
        if not found:  # nothing within any threshold: the answer to no evidence, without building it
            return {"decision": _NO_EVIDENCE, "matches": [], "index": {"sequence": sequence}}
        evidence: list[tuple[policy.Evidence, HashOwner, str]] = []
        for hash_id, (algorithm, distance, variant) in found.items():
            owner = owners.get(hash_id)
            if owner is None:  # disabled, deleted, or its bank is disabled: the store has the last word
                continue
            threshold = _threshold(owner, algorithm)
            view = query.views.get(query_views.view_of(variant))
            quality = query.pdq_quality if view is None or view.quality is None else view.quality
            item = policy.Evidence(algorithm, distance, threshold, owner.action, quality, owner.item_id,
                                   None if view is None else view.dhash_bits,
                                   policy.is_short(algorithm) and query_views.is_turned(variant))
            evidence.append((item, owner, variant))
        backed = policy.corroborated_items(e for e, _, _ in evidence)
        matches = []
        for item, owner, variant in evidence:
            verdict = policy.judge(item, item.item in backed)
            if not verdict.counted:
                continue
            match = {
                "bank": owner.bank,
                "item_id": owner.item_id,
                "reference": owner.external_ref,
                "category": owner.category,
                "algorithm": item.algorithm,
                "distance": item.distance,
                "threshold": item.threshold,
                "variant": variant,
                "action": verdict.action,
            }
            if verdict.reason:
                match["note"] = verdict.reason
            if owner.partner is not None:
                match["partner"] = owner.partner  # the partner's entry id and labels (hashsvc.service.exchanges)
            matches.append(match)
        matches.sort(key=lambda m: (-policy.SEVERITY[m["action"]], m["distance"], m["item_id"]))
        return {
            "decision": policy.decide(e for e, _, _ in evidence),
            "matches": matches,
            "index": {"sequence": sequence},
        }

    def _search_radii(self) -> dict[str, int]:
        """Per algorithm, the largest threshold any bank uses (the index search radius); then filtered per bank."""
        radii = {name: algorithm.default_threshold for name, algorithm in ALGORITHMS.items()}
        for bank in self._banks_cached():
            for name, threshold in bank.thresholds.items():
                radii[name] = max(radii[name], int(threshold))
        return radii

    def _banks_cached(self) -> list[Bank]:
        """The banks, read from the store at most once a second (their thresholds set the search radii)."""
        read_at, banks = self._bank_cache
        if time.monotonic() - read_at > 1.0:
            self._bank_cache = (time.monotonic(), self.store.list_banks())
            banks = self._bank_cache[1]
        return banks

    # ------------------------------------------------------------------------------------------- banks

    def list_banks(self) -> list[dict[str, Any]]:
        flags = bank_features(self.store.engine)
        return [
            _bank_dict(bank, self.store.count_items(bank.name), flags.get(bank.name, DEFAULT_BANK_FEATURES))
            for bank in self.store.list_banks()
        ]

    def get_bank(self, name: str) -> dict[str, Any]:
        return self._bank_dict(self.store.get_bank(name), self.store.count_items(name))

    def _bank_dict(self, bank: Bank, item_count: int) -> dict[str, Any]:
        return _bank_dict(bank, item_count, bank_features(self.store.engine).get(bank.name, DEFAULT_BANK_FEATURES))

    def create_bank(self, fields: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        allowed = {"name", "description", "category", "action", "enabled", "thresholds", "features"}
        fields = _only(fields, allowed, "bank")
        if "name" not in fields or "category" not in fields:
            raise ValidationError("a bank needs a 'name' and a 'category'")
        features = _boolean(fields.pop("features", DEFAULT_BANK_FEATURES), "features")
        bank = self.store.create_bank(
            fields["name"],
            category=fields["category"],
            actor=actor,
            action=fields.get("action", "block"),
            description=fields.get("description", ""),
            enabled=_boolean(fields.get("enabled", True), "enabled"),
            thresholds=fields.get("thresholds"),
        )
        if features != DEFAULT_BANK_FEATURES:
            set_bank_features(self.store.engine, bank.name, features, actor)
        return self._bank_dict(bank, 0)

    def _bank_switched(self) -> None:
        """A bank's state changed here: this process's uploads follow it at once (replicas at their next poll)."""
        if self.settings.features:
            self.live.features.refresh_reachable()

    def update_bank(self, name: str, fields: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        fields = _only(fields, {"description", "category", "action", "enabled", "thresholds", "features"}, "bank")
        if "enabled" in fields:
            fields = {**fields, "enabled": _boolean(fields["enabled"], "enabled")}
        if "features" in fields:  # the local-feature stage for this bank's items (hashsvc.store.features)
            set_bank_features(self.store.engine, name, _boolean(fields.pop("features"), "features"), actor)
        bank = self.store.update_bank(name, actor=actor, **{k: fields.get(k, UNSET) for k in fields})
        self._bank_switched()
        return self._bank_dict(bank, self.store.count_items(name))

    def delete_bank(self, name: str, actor: Actor) -> None:
        self.store.delete_bank(name, actor=actor)
        self._bank_switched()

    # ------------------------------------------------------------------------------------------- items

    def add_item_from_hashes(self, bank: str, body: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        body = _only(body, {"hashes", "reference", "source", "note", "metadata"}, "item")
        if not isinstance(body.get("hashes"), dict) or not body["hashes"]:
            raise ValidationError("'hashes' must be an object such as {\"pdq\": \"<64 hex>\", \"md5\": \"...\"}")
        if "vpdq" in body["hashes"]:  # a partner's video hash, without the video
            return self.video.add_item_from_signal(bank, body, actor)
        item = self.store.add_item(
            bank,
            body["hashes"],
            actor=actor,
            external_ref=body.get("reference"),
            source=body.get("source"),
            note=body.get("note"),
            metadata=body.get("metadata"),
        )
        return _item_dict(item)

    def add_item_from_image(self, bank: str, data: bytes, fields: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Hash an image and add it as an item; the image itself is never stored. A video or an animation
        becomes a video item (service/video.py).

        The same image bytes already in the bank are not added twice (as `hashsvc add` does): the answer is the
        item that holds them, with `already_present` true, and no new reference or note is applied to it.
        """
        if video_kind(data):
            return self.video.add_item_from_video(bank, data, fields, actor)
        fields = _only(fields, {"reference", "source", "note", "metadata"}, "item")
        self.store.get_bank(bank)  # a missing bank is 404 before any decoding
        present = self._holder_of_bytes(bank, data)
        if present is not None:
            return {**_item_dict(present), "already_present": True}
        hashes = self._hash(data, extras="index", features=MAX_STORED if self.settings.features else 0)
        own = [(name, code) for name, code in hashes.codes().items() if name != "pdq"]
        # A low-quality PDQ would match unrelated flat images; the exact hashes are kept whatever the quality.
        own += [("pdq", hashes.pdq.code)] if hashes.pdq.quality >= 50 else []
        # The trimmed view and central crops, so that cropped or re-bordered re-uploads match (robustness.md).
        # They are stored as views: matched like the item's own hashes, but not exported as its signals.
        views = [("pdq", e.pdq.code) for e in hashes.extras if e.pdq.quality >= 50]
        for extra in hashes.extras:
            views += [(name, code) for name, code in (("phash", extra.phash), ("dhash", extra.dhash)) if code]
        item = self.store.add_item(
            bank,
            own,
            views=_unique(views),
            actor=actor,
            external_ref=fields.get("reference"),
            source=fields.get("source"),
            note=fields.get("note"),
            metadata=fields.get("metadata"),
            features=_feature_row(hashes.features),
        )
        return {**_item_dict(item), "already_present": False}

    def _holder_of_bytes(self, bank: str, data: bytes) -> Item | None:
        """The bank's item holding exactly these bytes (by SHA-256), if any; the oldest when several do."""
        digest = hashlib.sha256(data).hexdigest()
        holders = [item for item in self.store.find_items_by_hash("sha256", digest) if item.bank == bank]
        return min(holders, key=lambda item: item.id) if holders else None

    def add_items_bulk(self, bank: str, lines: Iterable[bytes | str], actor: Actor) -> dict[str, Any]:
        """JSON lines, one item each (as add_item_from_hashes takes). Good lines are added in one transaction;
        each bad line is reported with its number and reason."""
        self.store.get_bank(bank)  # 404 before reading anything
        accepted: list[tuple[int, NewItem]] = []
        rejected: list[dict[str, Any]] = []
        for number, raw in enumerate(lines, start=1):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if not text.strip():
                continue
            try:
                body = json_input.loads(text, code="invalid_json", what="the line")
                if not isinstance(body, dict):
                    raise ValidationError("each line must be a JSON object")
                body = _only(body, {"hashes", "reference", "source", "note", "metadata"}, "item")
                if not isinstance(body.get("hashes"), dict) or not body["hashes"]:
                    raise ValidationError("'hashes' must be a non-empty object")
                new = NewItem(
                    body["hashes"],
                    external_ref=body.get("reference"),
                    source=body.get("source"),
                    note=body.get("note"),
                    metadata=body.get("metadata"),
                )
                validation.new_item(new)  # report a bad field against its line, not as the whole request's 400
                accepted.append((number, new))
            except (ValidationError, InvalidHashError) as exc:
                rejected.append({"line": number, **exc.to_dict()})
        ids = self.store.add_items(bank, [new for _, new in accepted], actor=actor) if accepted else []
        return {
            "accepted": [
                {"line": number, "item_id": item_id} for (number, _), item_id in zip(accepted, ids, strict=True)
            ],
            "rejected": rejected,
        }

    def find_item(self, bank: str, reference: str) -> dict[str, Any]:
        """The bank's item with this external reference. Raises NotFoundError."""
        return _item_dict(self.store.find_item(bank, reference))

    def get_item(self, item_id: int) -> dict[str, Any]:
        return _item_dict(self.store.get_item(_existing_id(item_id, "item")))

    def list_items(self, bank: str, after_id: int, limit: int, status: str | None) -> dict[str, Any]:
        items = self.store.list_items(bank, after_id=after_id, limit=limit, status=status)
        return {
            "items": [_item_dict(item) for item in items],
            "next_after_id": items[-1].id if len(items) == limit else None,
        }

    def update_item(self, item_id: int, body: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        body = _only(body, {"status", "reason", "note", "source", "metadata"}, "item update")
        _existing_id(item_id, "item")
        if "status" in body:
            if body["status"] == "disabled":
                if not body.get("reason"):
                    raise ValidationError("disabling an item needs a 'reason'")
                self.store.disable_item(item_id, reason=body["reason"], actor=actor)
            elif body["status"] == "active":
                self.store.enable_item(item_id, actor=actor, reason=body.get("reason"))
            else:
                raise ValidationError("'status' must be 'active' or 'disabled'")
        edits = {k: body[k] for k in ("note", "source", "metadata") if k in body}
        if edits:
            self.store.update_item(item_id, actor=actor, **edits)
        return self.get_item(item_id)

    def delete_item(self, item_id: int, actor: Actor) -> None:
        self.store.delete_item(_existing_id(item_id, "item"), actor=actor)

    # -------------------------------------------------------------------------------------------- keys

    def create_key(
        self, name: str, scopes: Iterable[str], actor: Actor, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create a key; `options` may set KEY_OPTIONS (disclosure, rate_per_s, burst, max_inflight, expires_at)."""
        options = _only(options or {}, KEY_OPTIONS, "key option")
        key, token = self.store.create_api_key(name, scopes, actor=actor, **options)
        return {**_key_dict(key), "key": token}

    def update_key(self, key_id: int, options: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Change a key's disclosure or limits; null puts a limit back to the server's setting."""
        options = _only(options, KEY_OPTIONS, "key option")
        updated = self.store.update_api_key(self._key_by_id(key_id).name, actor=actor, **options)
        self._key_cache.clear()  # this process applies the change at once; others within KEY_CACHE_S
        return _key_dict(updated)

    def _key_by_id(self, key_id: int) -> ApiKey:
        for key in self.store.list_api_keys():
            if key.id == key_id:
                return key
        raise NotFoundError(f"no API key with id {key_id}")

    def list_keys(self) -> list[dict[str, Any]]:
        return [_key_dict(key) for key in self.store.list_api_keys()]

    def rotate_key(self, key_id: int, body: Mapping[str, Any] | None, actor: Actor) -> dict[str, Any]:
        """A new secret for the key (in the answer, once); the old one keeps working for `grace_s` seconds."""
        body = _only(body or {}, {"grace_s"}, "rotation option")
        grace_s = body.get("grace_s", DEFAULT_ROTATION_GRACE_S)
        if isinstance(grace_s, bool) or not isinstance(grace_s, int):
            raise ValidationError("grace_s must be a whole number of seconds")
        if grace_s < 0:
            raise ValidationError("grace_s must be 0 or more")
        key, token = self.store.rotate_api_key(
            self._key_by_id(key_id).name, grace=dt.timedelta(seconds=min(grace_s, 10**9)), actor=actor
        )
        self._key_cache.clear()  # this process drops the old secret's cached entry now; others within KEY_CACHE_S
        return {**_key_dict(key), "key": token}

    def revoke_key(self, key_id: int, actor: Actor) -> dict[str, Any]:
        for key in self.store.list_api_keys():
            if key.id == key_id:
                revoked = self.store.revoke_api_key(key.name, actor=actor)
                self._key_cache.clear()
                return _key_dict(revoked)
        raise NotFoundError(f"no API key with id {key_id}")

    # --------------------------------------------------------------------------------------------- ops

    def audit_page(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A page of the audit log, newest first (filters: hashsvc.service.audit.FILTERS)."""
        return audit.audit_page(self.store, params)

    def overview(self, days: int = overview.DEFAULT_DAYS) -> dict[str, Any]:
        """Activity per bank and day, index state, open reviews, quarantines, feeds (service/overview.py)."""
        return overview.overview(self, days)

    def status(self) -> dict[str, Any]:
        return {
            "schema": self.schema.check(),
            "ready": self.live.ready,
            "sequence": self.live.sequence,
            "lag": self.live.lag(),
            "sizes": self.live.sizes(),
            "error": self.live.last_error,
        }


# ---------------------------------------------------------------------------------------------- helpers


def _response(result: dict[str, Any], hashes: dict[str, Any], started: float | None = None) -> dict[str, Any]:
    """The match response in its documented key order: decision, hashes, matches, index, took_ms."""
    shaped = {"decision": result["decision"], "hashes": hashes, "matches": result["matches"], "index": result["index"]}
    if started is not None:
        shaped["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return shaped


def _timed(caller: Caller | None, started: float) -> float | None:
    """When timing goes into the answer: not for decision-only keys (how long a lookup took depends on how many
    stored hashes were near the query)."""
    return None if caller is not None and caller.key.decision_only else started


def _original_codes(query: _Query) -> dict[str, bytes]:
    """The query's own code per algorithm (its unrotated, untrimmed view): what the probe guard compares."""
    return {
        algorithm: code
        for algorithm, variants in query.codes.items()
        for variant, code in variants[:1]
        if variant == "original"
    }


def _query_from_image(hashes: ImageHashes) -> _Query:
    query = _Query(pdq_quality=hashes.pdq.quality)
    for prefix, pdq in [("", hashes.pdq), *((f"{e.label}:", e.pdq) for e in hashes.extras)]:
        variants = pdq.variants or {"original": pdq.code}
        query.codes.setdefault("pdq", []).extend(
            (prefix + name if prefix and name != "original" else prefix.rstrip(":") or name, variants[name])
            for name in DIHEDRAL_VARIANTS
            if name in variants
        )
    query.codes |= query_views.short_codes(hashes)  # every view's pHash/dHash, and their rotations/flips
    for name in ("md5", "sha256"):
        query.codes[name] = [("original", getattr(hashes, name))]
    query.views = query_views.measures(hashes)
    return query


def _closer(algorithm: str, distance: int, variant: str, best: tuple[str, int, str]) -> bool:
    """Whether a hit beats the one kept for the same stored hash: the closer one, except that for pHash/dHash
    an upright view's hit is kept over a turned one (turned 64-bit hits only corroborate, see policy)."""
    if policy.is_short(algorithm):
        turned, best_turned = query_views.is_turned(variant), query_views.is_turned(best[2])
        if turned != best_turned:
            return best_turned
    return distance < best[1]


def _feature_row(found: Features | None) -> tuple[str, int, bytes] | None:
    """What the store keeps of an image's local features; none when too few to ever verify a match."""
    if found is None or len(found) < feature_policy.MIN_INLIERS:
        return None
    return FEATURE_ALGORITHM, len(found), feature_codec.encode(found)


def _threshold(owner: HashOwner, algorithm: str) -> int:
    """The distance within which a match on this owner's bank counts: the bank's own, else the default."""
    return owner.thresholds.get(algorithm, ALGORITHMS[algorithm].default_threshold)


def _unique(codes: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Codes without repeats (a crop of a flat image can hash like the image), first occurrence kept."""
    return list(dict.fromkeys(codes))


def _query_from_hash_set(entry: Any, where: str) -> _Query:
    if not isinstance(entry, dict) or not entry:
        raise ValidationError(f"{where} must be an object of algorithm -> hex hash, e.g. {{\"pdq\": \"...\"}}")
    query = _Query()
    for algorithm, value in entry.items():
        code = _canonical_code(algorithm, value)
        if code is not None:
            query.codes[algorithm] = [("original", code)]
            continue
        if algorithm == "pdq" and isinstance(value, dict):
            query.pdq_quality = validation.pdq_quality(value.get("quality"), f"{where}.pdq.quality")
            value = value.get("value")
        try:
            code = bytes.fromhex(normalize_hex(algorithm, value))
        except InvalidHashError as exc:
            raise InvalidHashError(f"{where}.{algorithm}: {exc.message}") from None
        query.codes[algorithm] = [("original", code)]
    if "dhash" in query.codes:
        query.views["original"] = query_views.ViewMeasures(query.pdq_quality, minority_bits(query.codes["dhash"][0][1]))
    return query


def _canonical_code(algorithm: Any, value: Any) -> bytes | None:
    """The code of a hash sent in canonical form (a known algorithm's exact name, exactly its number of hex
    digits), else None for normalize_hex to forgive or explain. A batch's sets nearly all take this path:
    normalize_hex's checks cost more per set than the rest of a set's validation."""
    algo = ALGORITHMS.get(algorithm) if type(algorithm) is str else None
    if algo is None or type(value) is not str or len(value) != algo.hex_length:
        return None
    try:
        code = bytes.fromhex(value)  # upper case decodes as normalize_hex's lower-casing would
    except ValueError:
        return None
    # fromhex skips whitespace, which normalize_hex refuses inside a hash: a full-length code has none
    return code if len(code) == algo.bits // 8 else None


def _split_context(entry: Any, where: str) -> tuple[Any, MatchContext]:
    """A hash set without its `content_id` and `metadata`, and those as the event's context."""
    if not isinstance(entry, dict) or not ({"content_id", "metadata"} & set(entry)):
        return entry, MatchContext()
    rest = {k: v for k, v in entry.items() if k not in ("content_id", "metadata")}
    return rest, context_from(entry.get("content_id"), entry.get("metadata"), f"{where}.")


def _after_match_notes(result: dict[str, Any], quarantined: set[int], suppressed: list[dict[str, Any]]) -> None:
    """Mark quarantined items' matches, and keep what an allowlist suppressed for the event (never answered)."""
    held = {m["item_id"] for m in result["matches"]} & quarantined
    if held:
        floodguard.mark(result["matches"], held)
        result["quarantined"] = held
    if suppressed:
        result["suppressed"] = suppressed


def _image_hash_summary(hashes: ImageHashes) -> dict[str, Any]:
    summary = hashes.to_dict()
    summary.pop("width"), summary.pop("height")
    return summary


def _hash_set_summary(query: _Query) -> dict[str, Any]:
    summary: dict[str, Any] = {name: variants[0][1].hex() for name, variants in query.codes.items()}
    if "pdq" in summary and query.pdq_quality is not None:
        summary["pdq"] = {"value": summary["pdq"], "quality": query.pdq_quality}
    return summary


def _existing_id(value: int, what: str) -> int:
    if not 0 <= value <= MAX_ID:
        raise NotFoundError(f"no {what} with id {value}")
    return value


def _only(fields: Any, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(fields, Mapping):
        raise ValidationError(f"the {what} must be a JSON object")
    unknown = sorted(str(name) for name in set(fields) - allowed)
    if unknown:
        raise ValidationError(f"unknown {what} field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return dict(fields)


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"'{name}' must be true or false")
    return value


def _bank_dict(bank: Bank, item_count: int, features: bool) -> dict[str, Any]:
    return {
        "name": bank.name,
        "description": bank.description,
        "category": bank.category,
        "action": bank.action,
        "enabled": bank.enabled,
        "thresholds": bank.thresholds,
        "items": item_count,
        "features": features,
        "created_at": bank.created_at.isoformat(),
        "updated_at": bank.updated_at.isoformat(),
    }


def _item_dict(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "bank": item.bank,
        "reference": item.external_ref,
        "source": item.source,
        "note": item.note,
        "status": item.status,
        "status_reason": item.status_reason,
        "status_by": item.status_by,
        "status_at": item.status_at.isoformat() if item.status_at else None,
        "created_by": item.created_by,
        "created_at": item.created_at.isoformat(),
        "metadata": item.metadata,
        "hashes": [{"algorithm": h.algorithm, "value": h.hex, "view": h.view} for h in item.hashes],
    }


def _key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked": key.revoked,
        "disclosure": key.disclosure,
        # null: the server's setting (HASHSVC_KEY_RATE_PER_S, HASHSVC_KEY_BURST, HASHSVC_KEY_MAX_INFLIGHT)
        "rate_per_s": key.rate_per_s,
        "burst": key.burst,
        "max_inflight": key.max_inflight,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "previous_valid_until": key.previous_expires_at.isoformat() if key.previous_expires_at else None,
    }
