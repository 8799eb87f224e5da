"""Use cases for videos and animations: hash, match, add as an item, import and export vPDQ lists.

How a video is matched (vPDQ's rule on the service's exact index):
1. The upload is hashed in the sandbox: one PDQ per sampled frame (vpdq's sampling), MD5 and SHA-256.
2. The query's frames are cleaned up as vPDQ does (quality below the bank's threshold dropped, exact repeats
   removed) and looked up in the PDQ index at the largest PDQ threshold of any bank. A video item's frames are
   `pdq` hashes of the item, kept apart from still images' PDQs (service/live_index.py): every frame is looked
   up among the stills, and among the frames only as many as pigeonhole needs to name every video that can
   reach the query share (13 of 60 at 80 %, vpdq.probe_frames).
3. An item hit by any frame is a candidate. A still image matches when a frame is within its bank's PDQ
   threshold (a video that contains a banked image). A video item matches when vPDQ's two shares, computed
   exactly between the query's frames and the item's stored frames, reach its bank's thresholds (Meta's
   defaults: 80 % of the query's frames, 0 % of the item's). A hashed upload's sampled frames bring their
   neighbours (the frames 0.25 s either side, vpdq.hits): a sampled frame whose neighbour matches counts as
   matched, so a sped-up or re-timed copy reaches the share. Neighbours only refine the shares of candidates
   found by the sampled frames' lookups; they are not looked up themselves (that would triple the lookups).
4. MD5 and SHA-256 of the file are looked up exactly, as for images.
5. When none of that blocked, the query's frames' ORB features are checked against the keyframes of video items
   added from files (service/video_feature_stage.py): crops, captions and logos that move PDQ past vPDQ's
   distance leave most keypoints in place.
The answer lists each matching item with its shares and the time ranges that matched on both sides.
The reverse (a still image that is a frame of a banked video) needs nothing here: the image's PDQ finds the
frame in the same index through the ordinary image path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsvc import media_video
from hashsvc.errors import InvalidHashError, MediaError, NotFoundError, ValidationError
from hashsvc.features import video as video_features
from hashsvc.hashes import normalize_hex, vpdq
from hashsvc.service import feature_stage, policy, video_feature_stage
from hashsvc.service.disclosure import Caller, redact
from hashsvc.service.video_hashing import VideoHashes, hash_video
from hashsvc.store import Actor
from hashsvc.store import video as video_store
from hashsvc.store.owners import HashOwner, matching_owners
from hashsvc.vocabulary import VPDQ_SIGNAL_TYPE

if TYPE_CHECKING:
    from hashsvc.config import Settings
    from hashsvc.service.service import Service

SIGNAL_TYPE = VPDQ_SIGNAL_TYPE
ITEM_FIELDS = {"reference", "source", "note", "metadata"}
_RULES_CACHE_S = 1.0


def video_limits_from(settings: Settings) -> media_video.VideoLimits:
    return media_video.VideoLimits(
        max_bytes=settings.max_upload_bytes,
        max_duration_s=settings.video_max_duration_s,
        max_pixels=settings.video_max_pixels,
        max_frames=settings.video_max_frames,
        timeout_s=settings.video_timeout_s,
    )


class VideoUseCases:
    """The video half of `Service` (composed by it; shares its store, index, sandbox and settings)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._rules_cache: tuple[float, dict[str, video_store.VideoRules]] = (float("-inf"), {})

    # ------------------------------------------------------------------------------------------ hashing

    def hash(
        self, data: bytes, *, views: bool = False, keyframes: int = 0, keyframe_change: int | None = None
    ) -> VideoHashes:
        """Hash a video upload in the sandbox (or in-process when the sandbox is off); with `views`, also its
        trimmed view when it has a border (a query's); with `keyframes`, the ORB features of that many frames at
        most, from the same decode (features.video). Raises MediaError."""
        settings = self.service.settings
        options: dict[str, Any] = {
            "limits": video_limits_from(settings),
            "seconds_per_hash": settings.video_seconds_per_hash,
            "work_size": settings.work_size or None,
            "views": views,
        }
        if keyframes:
            options["keyframes"] = keyframes
            if keyframe_change is not None:
                options["keyframe_change"] = keyframe_change
        sandbox = self.service.sandbox
        if sandbox is None:
            return hash_video(data, **options)  # type: ignore[arg-type]
        # The sandbox's deadline is the hard stop; the decoder's own (video_timeout_s) ends a slow job with a
        # clean error a little before it.
        result = sandbox.run(hash_video, data, deadline_s=settings.video_timeout_s + 5.0, **options)
        assert isinstance(result, VideoHashes)
        return result

    def hash_dict(self, data: bytes) -> dict[str, Any]:
        return self.hash(data).to_dict()

    # ----------------------------------------------------------------------------------------- matching

    def match(self, data: bytes, caller: Caller | None = None) -> dict[str, Any]:
        """Hash a video upload and match it. Raises MediaError, NotReadyError."""
        started = time.perf_counter()
        self.service.require_current()
        # A query's frames are spread evenly (no change threshold): they are looked up, not stored.
        hashes = self.hash(data, views=True, keyframes=self._query_keyframes(), keyframe_change=0)
        summary = hashes.to_dict()
        summary.pop("width"), summary.pop("height")
        exact = {"md5": hashes.md5, "sha256": hashes.sha256}
        result = self.match_features(
            hashes.features,
            exact,
            trimmed=hashes.trimmed,
            neighbours=hashes.neighbours,
            trimmed_neighbours=hashes.trimmed_neighbours,
        )
        result = self._with_keyframes(result, hashes.keyframes)
        return self._answer(result, summary, caller, started)

    def _query_keyframes(self) -> int:
        """How many query frames get ORB features: none unless some video item has keyframes stored."""
        stored = self.service.live.features.video
        return video_features.MAX_QUERY_FRAMES if self.service.settings.features and len(stored) else 0

    def _with_keyframes(
        self, result: dict[str, Any], keyframes: Sequence[video_features.Keyframe]
    ) -> dict[str, Any]:
        """The local-feature stage for a query video the hash stage did not block (video_feature_stage)."""
        if not video_feature_stage.wanted(result, keyframes):
            return result
        service = self.service
        gap = max(service.settings.video_seconds_per_hash, 1.0)
        found = video_feature_stage.find(service.live.features.video, service.store.engine, keyframes, gap)
        return feature_stage.combine(result, found)

    def match_signal(self, body: Any, caller: Caller | None = None) -> dict[str, Any]:
        """Match a vPDQ hash a client computed: {"vpdq": <signal>, "md5": "...", "sha256": "..."}."""
        started = time.perf_counter()
        self.service.require_current()
        if not isinstance(body, Mapping) or "vpdq" not in body:
            raise ValidationError('send {"vpdq": ["<pdq>,<quality>,<timestamp>", ...]} (md5, sha256 optional)')
        unknown = sorted(set(body) - {"vpdq", "md5", "sha256"})
        if unknown:
            raise ValidationError(f"unknown field(s): {', '.join(unknown)}; allowed: md5, sha256, vpdq")
        features = vpdq.loads(body["vpdq"])
        exact = {name: bytes.fromhex(normalize_hex(name, body[name])) for name in ("md5", "sha256") if name in body}
        summary: dict[str, Any] = {"media": "video", "vpdq": [str(f) for f in features]}
        summary.update({name: code.hex() for name, code in exact.items()})
        return self._answer(self.match_features(features, exact), summary, caller, started)

    def _answer(
        self, result: dict[str, Any], summary: dict[str, Any], caller: Caller | None, started: float
    ) -> dict[str, Any]:
        shaped = {"decision": result["decision"], "hashes": summary, "matches": result["matches"]}
        shaped["index"] = {"sequence": self.service.live.sequence}
        decision_only = caller is not None and caller.key.decision_only
        if decision_only:
            shaped = redact(shaped)
        else:
            shaped["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return shaped

    def match_features(
        self,
        features: Iterable[vpdq.Feature],
        exact: Mapping[str, bytes],
        trimmed: Iterable[vpdq.Feature] = (),
        neighbours: Iterable[vpdq.Neighbour] = (),
        trimmed_neighbours: Iterable[vpdq.Neighbour] = (),
    ) -> dict[str, Any]:
        """The decision and matches for a query video's frames plus its exact file hashes. `trimmed` is the
        video's trimmed view (video_hashing): it is matched the same way, and an item it matches that the frames
        did not is reported with the variant "trimmed". `neighbours` (and `trimmed_neighbours`) are the frames
        either side of the sampled ones (vpdq.hits)."""
        service = self.service
        rules = self._rules()
        min_quality = min([r.quality for r in rules.values()] + [vpdq.QUALITY_THRESHOLD])
        query = vpdq.prepare(features, min_quality)
        matches: list[dict[str, Any]] = []
        if query:
            matches += self._frame_matches(query, rules, list(neighbours))
        trimmed_query = vpdq.prepare(trimmed, min_quality)
        if trimmed_query:
            seen = {m["item_id"] for m in matches}
            found = self._frame_matches(trimmed_query, rules, list(trimmed_neighbours))
            matches += [{**m, "variant": "trimmed"} for m in found if m["item_id"] not in seen]
        if exact:
            from hashsvc.service.service import _Query  # the image path's query shape, for the exact hashes

            exact_query = _Query(codes={name: [("original", code)] for name, code in exact.items()})
            matches += service._match(exact_query)["matches"]
        matches.sort(key=lambda m: (-policy.SEVERITY[m["action"]], m["item_id"], m["algorithm"]))
        worst = max((policy.SEVERITY[m["action"]] for m in matches), default=0)
        return {"decision": policy.DECISIONS[worst], "matches": matches}

    def _frame_matches(
        self,
        query: list[vpdq.Feature],
        rules: dict[str, video_store.VideoRules],
        neighbours: list[vpdq.Neighbour],
    ) -> list[dict]:
        service = self.service
        radius = service._search_radii()["pdq"]
        codes = np.frombuffer(b"".join(f.code for f in query), dtype=np.uint8).reshape(len(query), 32)
        # Still images are looked up with every frame (one frame showing the picture is a match); banked videos'
        # frames only with the frames pigeonhole needs (vpdq.probe_frames): the shares are then computed over
        # all frames of each candidate, so no match is lost.
        in_force = [(r.query_share, r.quality) for r in (*rules.values(), video_store.VideoRules())]
        probe_positions = vpdq.probe_frames(query, in_force)
        searches = [(range(len(query)), service.live.search("pdq", codes, radius, part="stills"))]
        if probe_positions:
            frames = service.live.search("pdq", codes[probe_positions], radius, part="frames")
            searches.append((probe_positions, frames))
        # Per stored hash id: the query frames (positions) within the search radius, with their distances.
        hits: dict[int, list[tuple[int, int]]] = {}
        for positions, results in searches:
            for position, (ids, distances) in zip(positions, results, strict=True):
                for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
                    hits.setdefault(hash_id, []).append((position, distance))
        if not hits:
            return []
        owners = matching_owners(service.store.engine, list(hits))
        by_item: dict[int, list[tuple[HashOwner, int, int]]] = {}
        for hash_id, found in hits.items():
            owner = owners.get(hash_id)
            if owner is None or owner.algorithm != "pdq":
                continue
            threshold = _pdq_threshold(owner)
            by_item.setdefault(owner.item_id, []).extend((owner, p, d) for p, d in found if d <= threshold)
        by_item = {item: found for item, found in by_item.items() if found}
        if not by_item:
            return []
        frames = video_store.frames_of(service.store.engine, list(by_item))
        gap = max(service.settings.video_seconds_per_hash, 1.0)
        matches = []
        for item_id, found in by_item.items():
            owner = found[0][0]
            rule = rules.get(owner.bank, video_store.VideoRules())
            if item_id in frames:
                match = _video_match(query, frames[item_id], owner, rule, gap, neighbours)
            else:
                match = _still_match(query, found, owner, rule, gap)
            if match is not None:
                matches.append(match)
        return matches

    def _rules(self) -> dict[str, video_store.VideoRules]:
        read_at, rules = self._rules_cache
        if time.monotonic() - read_at > _RULES_CACHE_S:
            rules = video_store.all_rules(self.service.store.engine)
            self._rules_cache = (time.monotonic(), rules)
        return rules

    # --------------------------------------------------------------------------------------------- items

    def add_item_from_video(
        self, bank: str, data: bytes, fields: Mapping[str, Any], actor: Actor
    ) -> dict[str, Any]:
        """Hash a video and add it as an item (its frames, MD5, SHA-256); the video itself is never stored."""
        keyframes = video_features.MAX_KEYFRAMES if self.service.settings.features else 0
        hashes = self.hash(data, keyframes=keyframes)
        exact = {"md5": hashes.md5, "sha256": hashes.sha256}
        return self._add(bank, hashes.features, exact, fields, actor, keyframes=hashes.keyframes)

    def add_item_from_signal(self, bank: str, body: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """An item from a partner's vPDQ hash, without the video: {"hashes": {"vpdq": ..., "md5": ...}, ...}."""
        hashes = body.get("hashes")
        if not isinstance(hashes, Mapping) or "vpdq" not in hashes:
            raise ValidationError("'hashes' must hold a 'vpdq' list")
        unknown = sorted(set(hashes) - {"vpdq", "md5", "sha256"})
        if unknown:
            raise ValidationError(f"a video item holds vpdq, md5 and sha256 hashes only, not {', '.join(unknown)}")
        fields = {k: v for k, v in body.items() if k != "hashes"}
        exact = {name: bytes.fromhex(normalize_hex(name, hashes[name])) for name in ("md5", "sha256") if name in hashes}
        return self._add(bank, vpdq.loads(hashes["vpdq"]), exact, fields, actor)

    def _add(
        self,
        bank: str,
        features: Iterable[vpdq.Feature],
        exact: Mapping[str, bytes],
        fields: Mapping[str, Any],
        actor: Actor,
        keyframes: Sequence[video_features.Keyframe] = (),
    ) -> dict[str, Any]:
        from hashsvc.service.service import _item_dict, _only

        fields = _only(fields, ITEM_FIELDS, "item")
        features = list(features)
        # The index holds the distinct frames vPDQ would compare (quality >= 50; a bank with a lower quality
        # threshold still finds its frames through the stored frame list only when a better frame hits).
        indexed = vpdq.prepare(features, vpdq.QUALITY_THRESHOLD)
        codes = [("pdq", f.code) for f in indexed] + list(exact.items())
        if not codes:
            raise MediaError("corrupt", "the video has no frame of usable quality and no file hash to store")
        item = self.service.store.add_item(
            bank,
            codes,
            actor=actor,
            external_ref=fields.get("reference"),
            source=fields.get("source"),
            note=fields.get("note"),
            metadata=fields.get("metadata"),
            with_rows=video_store.frame_writer(features),
            video=True,
            features=_keyframe_row(keyframes),
        )
        shown = _item_dict(item)
        shown["hashes"] = [h for h in shown["hashes"] if h["algorithm"] != "pdq"]
        shown["vpdq_frames"] = len(features)
        return shown

    def get_frames(self, item_id: int) -> list[str]:
        """The item's vPDQ hash as a list of "pdq,quality,timestamp". Raises NotFoundError (no such video item)."""
        if not 0 <= item_id < 2**63:
            raise NotFoundError(f"no item with id {item_id}")
        frames = video_store.frames_of(self.service.store.engine, [item_id]).get(item_id)
        if frames is None:
            raise NotFoundError(f"item {item_id} holds no video hash")
        return [str(f) for f in frames]

    # ---------------------------------------------------------------------------------------------- lists

    def export_lines(self, bank: str) -> Iterator[str]:
        """The bank's active video items in python-threatexchange's `local_file` layout: `vpdq <signal>`."""
        self.service.store.get_bank(bank)  # 404 before anything is written
        engine = self.service.store.engine
        batch: list[int] = []
        for item_id, _ref in video_store.video_items_of_bank(engine, bank):
            batch.append(item_id)
            if len(batch) == 200:
                yield from _signal_lines(engine, batch)
                batch = []
        yield from _signal_lines(engine, batch)

    def import_lines(self, bank: str, lines: Iterable[str], actor: Actor) -> dict[str, Any]:
        """`vpdq <signal>` lines (or a bare signal per line) -> one item each; bad lines reported by number."""
        self.service.store.get_bank(bank)
        added, rejected = [], []
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith(SIGNAL_TYPE):
                text = text[len(SIGNAL_TYPE) :].strip()
            try:
                item = self._add(bank, vpdq.loads(text), {}, {}, actor)
                added.append({"line": number, "item_id": item["id"]})
            except (ValidationError, InvalidHashError, MediaError) as exc:
                rejected.append({"line": number, **exc.to_dict()})
        return {"accepted": added, "rejected": rejected}

    def set_rules(self, bank: str, body: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Set a bank's vPDQ shares and frame quality threshold (unset fields keep Meta's defaults)."""
        from hashsvc.service.service import _only

        body = _only(body, {"query_share", "item_share", "quality"}, "video rule")
        values: dict[str, Any] = {}
        for name, kind in (("query_share", float), ("item_share", float), ("quality", int)):
            if name in body:
                value = body[name]
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not number or (kind is int and value != int(value)):
                    raise ValidationError(f"'{name}' must be a number")
                values[name] = kind(value)
        rules = video_store.VideoRules(**values)
        video_store.set_rules(self.service.store.engine, bank, rules)
        self.service.store.record_audit(actor, "bank.video_rules", bank=bank, details=rules.to_dict())
        self._rules_cache = (float("-inf"), {})
        return {"bank": bank, **rules.to_dict()}

    def get_rules(self, bank: str) -> dict[str, Any]:
        self.service.store.get_bank(bank)
        rules = video_store.all_rules(self.service.store.engine).get(bank, video_store.VideoRules())
        return {"bank": bank, **rules.to_dict()}


# ---------------------------------------------------------------------------------------------- helpers


def _pdq_threshold(owner: HashOwner) -> int:
    return int(owner.thresholds.get("pdq", vpdq.DISTANCE_THRESHOLD))


def _base(owner: HashOwner, algorithm: str, action: str) -> dict[str, Any]:
    return {
        "bank": owner.bank,
        "item_id": owner.item_id,
        "reference": owner.external_ref,
        "category": owner.category,
        "algorithm": algorithm,
        "variant": "video" if algorithm == "vpdq" else "frame",
        "action": action,
    }


def _still_match(
    query: list[vpdq.Feature], found: list[tuple[HashOwner, int, int]], owner: HashOwner, rule: Any, gap: float
) -> dict[str, Any] | None:
    """A banked still image seen in the query video: any frame within the bank's PDQ threshold."""
    frames = [(p, d) for _, p, d in found if query[p].quality >= rule.quality]
    if not frames:
        return None
    return {
        **_base(owner, "pdq", owner.action),
        "distance": min(d for _, d in frames),
        "threshold": _pdq_threshold(owner),
        "query_time_ranges": vpdq.time_ranges((query[p].timestamp for p, _ in frames), gap),
    }


def _video_match(
    query: list[vpdq.Feature],
    stored: list[vpdq.Feature],
    owner: HashOwner,
    rule: Any,
    gap: float,
    neighbours: Sequence[vpdq.Neighbour] = (),
) -> dict[str, Any] | None:
    """vPDQ's shares between the query's frames (with their neighbours) and the item's, exactly, under the
    bank's rule."""
    threshold = _pdq_threshold(owner)
    mine = [f for f in query if f.quality >= rule.quality]
    theirs = vpdq.prepare(stored, rule.quality)
    if not mine or not theirs:
        return None
    flanking = [(anchor, f) for anchor, f in neighbours if f.quality >= rule.quality]
    query_hit, item_hit, best = vpdq.hits(mine, theirs, threshold, flanking)
    query_share, item_share = vpdq.shares(int(query_hit.sum()), len(mine), int(item_hit.sum()), len(theirs))
    if not vpdq.passes(query_share, item_share, rule.query_share, rule.item_share):
        return None
    return {
        **_base(owner, "vpdq", owner.action),
        "distance": best,
        "threshold": threshold,
        "query_share": round(query_share, 1),
        "item_share": round(item_share, 1),
        "query_time_ranges": vpdq.time_ranges(
            (f.timestamp for f, hit in zip(mine, query_hit, strict=True) if hit), gap
        ),
        "item_time_ranges": vpdq.time_ranges(
            (f.timestamp for f, hit in zip(theirs, item_hit, strict=True) if hit), gap
        ),
    }


def _keyframe_row(keyframes: Sequence[video_features.Keyframe]) -> tuple[str, int, bytes] | None:
    """What the store keeps of a video item's keyframes (hashsvc.store.features): none when there are none."""
    if not keyframes:
        return None
    return video_features.ALGORITHM, len(keyframes), video_features.encode(keyframes)


def _signal_lines(engine: Any, item_ids: list[int]) -> Iterator[str]:
    if not item_ids:
        return
    frames = video_store.frames_of(engine, item_ids)
    for item_id in item_ids:
        if item_id in frames:
            yield f"{SIGNAL_TYPE} {vpdq.dumps(frames[item_id])}"

