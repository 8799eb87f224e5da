"""Video edits: recall of vPDQ matching per edit, and false positives between distinct videos and against photos.

Originals: clips made from corpus photos (slow pans and zooms, a cut to the next photo every 4 s; 640x360,
24 fps, H.264) plus the vPDQ sample videos (../shared/vpdq-conformance: chair, pattern, doorknob). Each original
gets every edit below; every edited clip is matched against every original with the service's rule (vPDQ shares
on frames sampled once a second, Meta's defaults: distance 31, quality 50, query share 80 %, item share 0 %).
The service's index is exact, so comparing every frame with every frame gives the same answers it does.

Edits: low bitrate re-encode; VP9 in WebM; MPEG-4 part 2 in AVI; half size; 10 % crop then letterbox; trim 2 s
from both ends; a logo and a caption; 24 -> 15 fps; 1.25x speed-up; a 10 s excerpt; a screen-recording look
(shrunk into a window with a title bar on a desktop, gamma shifted, 30 fps).

Each edited clip is hashed as the service hashes a query: its frames with their neighbours (the frames 0.25 s
either side, vpdq.hits) and, when a border shows on most frames, its trimmed view (hashes/video_views.py); it
matches when either track passes. Recall is reported for three rules in the same run ("frames only": sampled
frames alone, the service before trimmed views; "without neighbours": frames and trimmed view, the service
before neighbours; and the service's rule), and per half of the originals (split by a hash of the original's
name: "tune" is the half the settings were chosen on, "held_out" the other).

A fourth rule, "with features", is the service's rule now: the previous one, or else the local-feature rule
(hashsvc.features.video: every original's keyframes, picked as an item's are, in one FeatureIndex; each query's
frames looked up and verified by `frame_hits`, judged by `RULE`). Its false positives between videos, the most
inliers of a frame pair of distinct videos, and photos against videos frame by frame (the photo's features as
one query frame against the keyframes, and every video's query frames against an index of the photos) are
reported beside; `--hits-out` writes every verified frame pair so that other rules can be evaluated on the same
run (scripts/sweep_video_feature_rule.py).

False positives counted: an edited clip or an original matching a different original; a corpus photo (as a
still query) within PDQ 31 of a frame of a video it was not used in; a video frame within PDQ 31 of a stored
view (the photo and its index crops, as items from images store them) of a photo not used in that video.

    .venv/bin/python scripts/bench_video_robustness.py --clips 12 --out bench_video_robustness.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from hashsvc.features import MAX_QUERY, extract
from hashsvc.features import video as video_features
from hashsvc.features.index import FeatureIndex
from hashsvc.features.verify import MIN_PAIRS
from hashsvc.hashes import vpdq
from hashsvc.service.hashing import hash_image
from hashsvc.service.video_hashing import VideoHashes, hash_video

SIZE = (640, 360)
FPS = 24


def photos(corpus: Path) -> list[Path]:
    found = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    return [p for p in found if min(Image.open(p).size) >= 300]


def clip_frames(sources: list[Path], seconds: float) -> list[np.ndarray]:
    width, height = SIZE
    frames, scenes = [], {}
    for n in range(int(seconds * FPS)):
        t = n / FPS
        scene = int(t // 4)
        if scene not in scenes:
            picture = Image.open(sources[scene % len(sources)]).convert("RGB")
            scale = max(width * 1.6 / picture.width, height * 1.6 / picture.height)
            scenes[scene] = picture.resize((round(picture.width * scale), round(picture.height * scale)))
        picture = scenes[scene]
        progress = (t % 4) / 4
        zoom = 1.5 - 0.3 * progress
        w, h = width * zoom, height * zoom
        x0, y0 = (picture.width - w) * progress, (picture.height - h) / 2
        frames.append(np.asarray(picture.resize((width, height), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h))))
    return frames


def decode(data: bytes) -> tuple[list[np.ndarray], float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], fps


def encode(frames: list[np.ndarray], fps: float, container: str = "mp4", codec: str = "libx264",
           options: dict[str, str] | None = None) -> bytes:  # fmt: skip
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=round(fps))
        height, width = frames[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        stream.options = options if options is not None else {"preset": "ultrafast", "crf": "23"}
        for rgb in frames:
            rgb = np.ascontiguousarray(rgb[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def resample(frames: list[np.ndarray], fps: float, new_fps: float, speed: float = 1.0) -> list[np.ndarray]:
    duration = len(frames) / fps
    count = int(duration / speed * new_fps)
    return [frames[min(len(frames) - 1, int(k / new_fps * speed * fps))] for k in range(count)]


def _map(frames: list[np.ndarray], change: Callable[[Image.Image], Image.Image]) -> list[np.ndarray]:
    return [np.asarray(change(Image.fromarray(f))) for f in frames]


def letterbox(image: Image.Image) -> Image.Image:
    w, h = image.size
    cropped = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    canvas = Image.new("RGB", (w, h))
    inner = cropped.resize((round(cropped.width * h / cropped.height * 0.75), h))
    canvas.paste(inner, ((w - inner.width) // 2, 0))
    return canvas


def logo_caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.ellipse((w - 90, 10, w - 20, 80), fill=(240, 200, 30), outline=(0, 0, 0), width=4)
    draw.rectangle((0, h - 50, w, h), fill=(0, 0, 0))
    draw.text((20, h - 38), "BREAKING: this clip was shared 10,000 times", fill=(255, 255, 255))
    return out


def screen_recording(image: Image.Image) -> Image.Image:
    w, h = image.size
    desktop = Image.new("RGB", (w, h), (52, 101, 164))
    inner = image.resize((round(w * 0.8), round(h * 0.8)))
    draw = ImageDraw.Draw(desktop)
    x0, y0 = (w - inner.width) // 2, (h - inner.height) // 2 + 10
    draw.rectangle((x0, y0 - 24, x0 + inner.width, y0), fill=(230, 230, 230))
    draw.text((x0 + 8, y0 - 18), "Video Player - clip.mp4", fill=(0, 0, 0))
    desktop.paste(inner, (x0, y0))
    table = [round(255 * (v / 255) ** 0.9) for v in range(256)] * 3
    return desktop.point(table)


EDITS: dict[str, Callable[[list[np.ndarray], float], bytes]] = {
    "reencode_low_bitrate": lambda f, fps: encode(f, fps, options={"preset": "ultrafast", "crf": "42"}),
    "vp9_webm": lambda f, fps: encode(f, fps, "webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "mpeg4_avi": lambda f, fps: encode(f, fps, "avi", "mpeg4", {}),
    "half_size": lambda f, fps: encode(_map(f, lambda i: i.resize((i.width // 2, i.height // 2))), fps),
    "crop10_letterbox": lambda f, fps: encode(_map(f, letterbox), fps),
    "trim_2s_both_ends": lambda f, fps: encode(f[int(2 * fps) : len(f) - int(2 * fps)], fps),
    "logo_and_caption": lambda f, fps: encode(_map(f, logo_caption), fps),
    "fps_24_to_15": lambda f, fps: encode(resample(f, fps, 15), 15),
    "speed_1_25x": lambda f, fps: encode(resample(f, fps, fps, 1.25), fps),
    "excerpt_10s": lambda f, fps: encode(f[len(f) // 2 - int(5 * fps) : len(f) // 2 + int(5 * fps)], fps),
    "screen_recording": lambda f, fps: encode(_map(resample(f, fps, 30), screen_recording), 30),
}


Track = tuple[list[vpdq.Feature], list[vpdq.Neighbour]]  # sampled frames and their neighbours


def tracks_of(query: VideoHashes) -> list[Track]:
    tracks = [(list(query.features), list(query.neighbours))]
    if query.trimmed:
        tracks.append((list(query.trimmed), list(query.trimmed_neighbours)))
    return tracks


def matches(query: Track, item: list[vpdq.Feature]) -> bool:
    frames, neighbours = query
    quality = [(anchor, f) for anchor, f in neighbours if f.quality >= vpdq.QUALITY_THRESHOLD]
    shares = vpdq.brute_shares(vpdq.prepare(frames), vpdq.prepare(item), neighbours=quality)
    return vpdq.passes(*shares, vpdq.QUERY_SHARE, vpdq.ITEM_SHARE)


def without_neighbours(track: Track) -> Track:
    return track[0], []


QUERY_KEYFRAMES = {"keyframes": video_features.MAX_QUERY_FRAMES, "keyframe_change": 0}


class FeatureStats:
    """The local-feature rule (features.video) on the same clips: which originals each query video matches, and
    how close distinct videos come (the most inliers of one frame pair, the most frames verified)."""

    def __init__(self) -> None:
        self.false: list[str] = []
        self.worst_inliers = 0  # one (query frame, keyframe) pair of distinct videos
        self.worst_frames = 0  # query frames verified against one distinct video
        self.true_frames: list[int] = []
        # Per query and original: (query time, inliers, correspondences) of each verified frame pair, so that
        # other rules can be evaluated on the same run (see --hits-out).
        self.raw: list[dict[str, object]] = []

    def look_up(self, index: FeatureIndex, numbered: dict[int, str], label: str, own: str,
                query: VideoHashes) -> set[str]:  # fmt: skip
        hits = video_features.frame_hits(index, query.keyframes, min_pairs=MIN_PAIRS)
        found = set()
        for number, item_hits in hits.items():
            name = numbered[number]
            self.raw.append({"query": label, "item": name, "own": name == own, "frames": [
                (h.query_time, h.verification.inliers, h.verification.pairs) for h in item_hits]})
            verified = len({h.query_time for h in item_hits if video_features.RULE.frame_counts(h.verification)})
            if name == own:
                self.true_frames.append(verified)
            else:
                self.worst_inliers = max([self.worst_inliers, *(h.verification.inliers for h in item_hits)])
                self.worst_frames = max(self.worst_frames, verified)
            if video_features.RULE.passes(item_hits):
                found.add(name)
                if name != own:
                    self.false.append(f"{label} -> {name}")
        return found

    def photos(self, pool: list[Path], index: FeatureIndex, numbered: dict[int, str],
               originals: dict[str, tuple[bytes, set[Path]]], as_queries: dict[str, VideoHashes],
               edited: dict[str, tuple[video_features.Keyframe, ...]]) -> dict[str, object]:  # fmt: skip
        """Photos against videos, both ways, one frame pair at a time (a photo is one frame): the most inliers of
        a photo and a video it is not in, and the pairs that would pass the per-frame rule."""
        worst, passing = 0, []
        frames = {name: q.keyframes for name, q in as_queries.items()} | edited
        for path in pool:
            photo = extract(Image.open(path), MAX_QUERY)
            as_frame = (video_features.Keyframe(0.0, photo),)
            for number, item_hits in video_features.frame_hits(index, as_frame, min_pairs=MIN_PAIRS).items():
                if path in originals[numbered[number]][1]:
                    continue
                worst = max([worst, *(h.verification.inliers for h in item_hits)])
                passing += [f"{path.name} -> {numbered[number]}" for h in item_hits
                            if video_features.RULE.frame_counts(h.verification)]  # fmt: skip
        # The other way: every video's query frames against an index of the photos' features.
        photo_index = FeatureIndex("flat")
        for number, path in enumerate(pool):
            photo_index.add(video_features.keyframe_key(number, 0), extract(Image.open(path), MAX_QUERY))
        for label, keyframes in frames.items():
            sources = originals[label.split(" of ")[-1]][1]
            for number, item_hits in video_features.frame_hits(photo_index, keyframes, min_pairs=MIN_PAIRS).items():
                path = pool[number]
                if path in sources:
                    continue
                worst = max([worst, *(h.verification.inliers for h in item_hits)])
                passing += [f"{label} frame {h.query_time} -> {path.name}" for h in item_hits
                            if video_features.RULE.frame_counts(h.verification)]  # fmt: skip
        return {"features_photo_vs_video_most_inliers": worst, "features_photo_vs_video_frames_passing": passing}

    def summary(self) -> dict[str, object]:
        return {
            "features_false_positives_between_videos": self.false,
            "features_most_inliers_between_distinct_videos": self.worst_inliers,
            "features_most_frames_verified_between_distinct_videos": self.worst_frames,
            "features_frames_verified_per_true_pair": sorted(self.true_frames),
        }


def half(name: str) -> str:
    return "tune" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "held_out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--corpus", type=Path, default=shared / "corpus")
    parser.add_argument("--samples", type=Path, default=shared / "vpdq-conformance" / "videos")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--item-seconds", type=float, default=0.5, help="item sampling for the dense figures")
    parser.add_argument("--out", type=Path, default=Path("bench_video_robustness.json"))
    parser.add_argument("--hits-out", type=Path, help="write every verified frame pair of the feature rule here")
    args = parser.parse_args()
    started = time.time()
    pool = photos(args.corpus)
    rng = np.random.default_rng(15)
    order = rng.permutation(len(pool))
    per_clip = int(args.seconds // 4)
    originals: dict[str, tuple[bytes, set[Path]]] = {}
    for c in range(args.clips):
        sources = [pool[i] for i in order[c * per_clip : (c + 1) * per_clip]]
        originals[f"clip{c:02d}"] = (encode(clip_frames(sources, args.seconds), FPS), set(sources))
    for name in ("chair-orig-22-sd-bar", "pattern-hd-no-bar", "doorknob-hd-no-bar"):
        path = args.samples / f"{name}.mp4"
        if path.exists():
            originals[name] = (path.read_bytes(), set())
    used = set().union(*(s for _, s in originals.values()))
    as_items = {name: hash_video(data, keyframes=video_features.MAX_KEYFRAMES) for name, (data, _) in originals.items()}
    hashes = {name: list(h.features) for name, h in as_items.items()}
    # The local-feature column: every original's keyframes in one index, as the service holds them.
    numbered = dict(enumerate(originals))
    keyframe_index = FeatureIndex("flat")
    for number, name in numbered.items():
        video_features.add_item(keyframe_index, number, as_items[name].keyframes)
    feature_stats = FeatureStats()
    # The originals also hashed as items sampled every `--item-seconds` (denser than the queries' 1 s): a query
    # frame sampled between two of an item's frames (a speed-up, a trim by a fraction of a second) then has one
    # nearer in time. Reported beside the default rule, same clips.
    dense = {name: list(hash_video(data, seconds_per_hash=args.item_seconds).features)
             for name, (data, _) in originals.items()}  # fmt: skip
    as_queries = {name: hash_video(data, views=True, **QUERY_KEYFRAMES) for name, (data, _) in originals.items()}

    per_edit: dict[str, list[bool]] = {edit: [] for edit in EDITS}
    frames_only: dict[str, list[bool]] = {edit: [] for edit in EDITS}
    no_neighbours: dict[str, list[bool]] = {edit: [] for edit in EDITS}
    dense_items: dict[str, list[bool]] = {edit: [] for edit in EDITS}
    false_dense: list[str] = []
    per_half: dict[str, list[bool]] = {"tune": [], "held_out": []}
    with_features: dict[str, list[bool]] = {edit: [] for edit in EDITS}
    per_half_features: dict[str, list[bool]] = {"tune": [], "held_out": []}
    false_video: list[str] = []
    edited_hashes: dict[tuple[str, str], list[vpdq.Feature]] = {}
    edited_queries: dict[str, tuple[video_features.Keyframe, ...]] = {}
    trimmed_views = 0
    for name, (data, _) in originals.items():
        frames, fps = decode(data)
        for edit, make in EDITS.items():
            if edit in ("trim_2s_both_ends", "excerpt_10s") and len(frames) < 12 * fps:
                continue  # too short for this edit (the doorknob sample is 4 s)
            query = hash_video(make(frames, fps), views=True, **QUERY_KEYFRAMES)
            tracks = tracks_of(query)
            trimmed_views += len(tracks) - 1
            edited_hashes[name, edit] = [f for track, _ in tracks for f in track]
            edited_queries[f"{edit} of {name}"] = query.keyframes
            hit = any(matches(track, hashes[name]) for track in tracks)
            per_edit[edit].append(hit)
            per_half[half(name)].append(hit)
            frames_only[edit].append(matches(without_neighbours(tracks[0]), hashes[name]))
            no_neighbours[edit].append(any(matches(without_neighbours(t), hashes[name]) for t in tracks))
            dense_items[edit].append(any(matches(track, dense[name]) for track in tracks))
            false_dense += [f"{edit} of {name} -> {other}" for other in originals
                            if other != name and any(matches(t, dense[other]) for t in tracks)]  # fmt: skip
            false_video += [f"{edit} of {name} -> {other}" for other in originals
                            if other != name and any(matches(t, hashes[other]) for t in tracks)]  # fmt: skip
            found = feature_stats.look_up(keyframe_index, numbered, f"{edit} of {name}", name, query)
            with_features[edit].append(hit or name in found)
            per_half_features[half(name)].append(hit or name in found)
    for name, query in as_queries.items():
        feature_stats.look_up(keyframe_index, numbered, name, name, query)
        tracks = tracks_of(query)
        false_video += [f"{name} -> {other}" for other in originals if other != name
                        and any(matches(t, hashes[other]) for t in tracks)]  # fmt: skip
        false_dense += [f"{name} -> {other}" for other in originals if other != name
                        and any(matches(t, dense[other]) for t in tracks)]  # fmt: skip

    # Photos against videos, both ways, at PDQ 31 on frames of quality >= 50.
    photo_codes: dict[Path, list[bytes]] = {}
    for path in pool:
        result = hash_image(path.read_bytes(), extras="index")
        photo_codes[path] = [p.code for p in (result.pdq, *(e.pdq for e in result.extras)) if p.quality >= 50]
    frame_sets = {name: vpdq.prepare(f) for name, f in hashes.items()}
    frame_sets.update({f"{edit} of {name}": vpdq.prepare(f) for (name, edit), f in edited_hashes.items()})
    sources_of = {key: originals[key.split(" of ")[-1]][1] for key in frame_sets}
    photo_fp, photo_true = [], 0
    for path, codes in photo_codes.items():
        if not codes:
            continue
        mine = np.frombuffer(b"".join(codes), np.uint64).reshape(len(codes), 4)
        for key, frames in frame_sets.items():
            if not frames:
                continue
            theirs = np.frombuffer(b"".join(f.code for f in frames), np.uint64).reshape(len(frames), 4)
            close = (np.bitwise_count(mine[:, None, :] ^ theirs[None, :, :]).sum(axis=2) <= 31).any()
            if close and path in sources_of[key]:
                photo_true += 1
            elif close:
                photo_fp.append(f"{path.name} ~ {key}")
    photo_features = feature_stats.photos(pool, keyframe_index, numbered, originals, as_queries, edited_queries)
    recall = {edit: round(100.0 * sum(hits) / len(hits), 1) for edit, hits in per_edit.items() if hits}
    before = {edit: round(100.0 * sum(hits) / len(hits), 1) for edit, hits in frames_only.items() if hits}
    total = [hit for hits in per_edit.values() for hit in hits]
    total_before = [hit for hits in frames_only.values() for hit in hits]
    total_plain = [hit for hits in no_neighbours.values() for hit in hits]
    total_dense = [hit for hits in dense_items.values() for hit in hits]
    summary = {
        "originals": len(originals), "edited_clips": len(total), "recall_per_edit_pct": recall,
        "recall_all_pct": round(100.0 * sum(total) / len(total), 1),
        "frames_only_recall_per_edit_pct": before,
        "frames_only_recall_all_pct": round(100.0 * sum(total_before) / len(total_before), 1),
        "without_neighbours_recall_per_edit_pct": {
            edit: round(100.0 * sum(hits) / len(hits), 1) for edit, hits in no_neighbours.items() if hits},
        "without_neighbours_recall_all_pct": round(100.0 * sum(total_plain) / len(total_plain), 1),
        f"items_every_{args.item_seconds}s_recall_per_edit_pct": {
            edit: round(100.0 * sum(hits) / len(hits), 1) for edit, hits in dense_items.items() if hits},
        f"items_every_{args.item_seconds}s_recall_all_pct": round(100.0 * sum(total_dense) / len(total_dense), 1),
        f"items_every_{args.item_seconds}s_false_positives_between_videos": false_dense,
        "recall_per_half_pct": {h: round(100.0 * sum(v) / len(v), 1) for h, v in per_half.items() if v},
        "clips_per_half": {h: len(v) for h, v in per_half.items()},
        "edited_clips_with_a_trimmed_view": trimmed_views,
        "originals_with_a_trimmed_view": sorted(n for n, q in as_queries.items() if q.trimmed),
        "false_positives_between_videos": false_video, "photos_compared": len(photo_codes),
        "photos_unused_in_clips": len(set(pool) - used),
        "false_positives_photo_vs_video": photo_fp,
        "photo_video_pairs_where_the_photo_is_in_the_clip_and_matched": photo_true,
        "with_features_recall_per_edit_pct": {
            edit: round(100.0 * sum(hits) / len(hits), 1) for edit, hits in with_features.items() if hits},
        "with_features_recall_all_pct": round(
            100.0 * sum(h for v in with_features.values() for h in v) / len(total), 1),
        "with_features_recall_per_half_pct": {
            h: round(100.0 * sum(v) / len(v), 1) for h, v in per_half_features.items() if v},
        **feature_stats.summary(), **photo_features,
        "keyframes_per_item": {name: len(h.keyframes) for name, h in as_items.items()},
        "feature_blob_bytes_per_item": {
            name: len(video_features.encode(h.keyframes)) for name, h in as_items.items()},
        "seconds": round(time.time() - started), "load": os.getloadavg(),
    }  # fmt: skip
    if args.hits_out:
        args.hits_out.write_text(json.dumps(feature_stats.raw))
    print(json.dumps(summary, indent=1))
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
