"""Why edited clips fail to match: per-frame PDQ distances between an edit and its original, on the clips
bench_video_robustness makes (same corpus photos, same shuffled order, 640x360, 24 fps).

Three studies, each printed per clip (frames are the original's whole seconds, hashed from pixels, no codec):
- speed: a 1.25x copy hashed every 0.25 s, each sample's distance to the original's nearest sampled frame, and
  the query share with and without the neighbours 0.25 s either side (vpdq.hits);
- overlay: the logo and caption of the benchmark, each alone and together, and with the covered pixels filled
  from their surroundings (the best a query-side clean-up could do: it knows exactly where the overlay is);
- crop: the benchmark's 10 % crop + pillarbox, cut back to the picture (what the trimmed view sees), against
  centre crops of the original keeping 70-90 % (what an item-side crop view would store).

With --samples, the speed study also runs on the benchmark's three vPDQ sample videos, and the 10 s excerpt
(whose start may fall between two of the item's sampled seconds) on those long enough for it.

    .venv/bin/python scripts/diag_video_edits.py --clips 3 [--samples]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_video_robustness as bench  # the clip maker and the edits are the benchmark's

from hashsvc.hashes import pdq_geometry, vpdq
from hashsvc.service.video_hashing import hash_video

CAPTION_PX = 50  # the benchmark's caption band: the bottom 50 px of 360
LOGO_BOX = (-90, 10, -19, 81)  # the benchmark's logo: x from the right edge, y from the top (with its outline)


def pdq(rgb: np.ndarray) -> bytes:
    gray = rgb.astype(np.float32) @ np.array(pdq_geometry.LUMA_WEIGHTS, np.float32)
    return vpdq.frame_pdq(gray, gray.shape[0], gray.shape[1])[0]


def bits(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def logo(image: Image.Image) -> Image.Image:
    out = image.copy()
    w = out.width
    ImageDraw.Draw(out).ellipse((w - 90, 10, w - 20, 80), fill=(240, 200, 30), outline=(0, 0, 0), width=4)
    return out


def caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    ImageDraw.Draw(out).rectangle((0, out.height - CAPTION_PX, out.width, out.height), fill=(0, 0, 0))
    return out


def fill_caption(rgb: np.ndarray) -> np.ndarray:
    """The band replaced by the picture row just above it (of the fills tried, the closest in PDQ)."""
    out = rgb.copy()
    out[-CAPTION_PX:] = out[-CAPTION_PX - 1]
    return out


def fill_logo(rgb: np.ndarray) -> np.ndarray:
    """The logo's box replaced by the picture column just left of it."""
    out = rgb.copy()
    x0, y0, x1, y1 = LOGO_BOX
    w = out.shape[1]
    out[y0:y1, w + x0 : w + x1] = out[y0:y1, w + x0 - 1 : w + x0]
    return out


def summary(name: str, distances: list[int]) -> str:
    within = sum(d <= vpdq.DISTANCE_THRESHOLD for d in distances)
    return f"  {name:24s} {distances}  <= 31: {within}/{len(distances)}"


def speed(data: bytes, frames: list[np.ndarray], fps: float = bench.FPS) -> None:
    item = vpdq.prepare(hash_video(data).features)
    sped = bench.encode(bench.resample(frames, fps, fps, 1.25), fps)
    dense = vpdq.prepare(hash_video(sped, seconds_per_hash=0.25).features)
    nearest = vpdq.distance_matrix(dense, item).min(axis=1)
    print("  1.25x, every 0.25 s (time: bits):", [(f.timestamp, int(d)) for f, d in zip(dense, nearest, strict=True)])
    query = hash_video(sped, views=True)
    mine = vpdq.prepare(query.features)
    plain = vpdq.brute_shares(mine, item)
    widened = vpdq.brute_shares(mine, item, neighbours=query.neighbours)
    print(f"  query share without neighbours {plain[0]:.1f} %, with {widened[0]:.1f} % ({len(mine)} frames)")


def churn(data: bytes, fps: float) -> None:
    """How fast the picture changes: PDQ bits between frame n and n + 2 at each sampled second."""
    every = hash_video(data, seconds_per_hash=0).features
    step = max(1, int(fps))
    changes = [int(vpdq.distance_matrix([every[n]], [every[n + 2]])[0, 0]) for n in range(0, len(every) - 2, step)]
    print(f"  bits between frames n and n + 2 (2/{fps:.0f} s apart) at each second: {changes}")


def excerpt(data: bytes, frames: list[np.ndarray], fps: float) -> None:
    item = vpdq.prepare(hash_video(data).features)
    start = len(frames) // 2 - int(5 * fps)  # as the benchmark cuts it
    query = hash_video(bench.EDITS["excerpt_10s"](frames, fps), views=True)
    mine = vpdq.prepare(query.features)
    nearest = vpdq.distance_matrix(mine, item).min(axis=1).tolist()
    plain = vpdq.brute_shares(mine, item)
    widened = vpdq.brute_shares(mine, item, neighbours=query.neighbours)
    print(f"  10 s excerpt from frame {start} ({start / fps:.2f} s): nearest per frame {nearest}")
    print(f"  query share without neighbours {plain[0]:.1f} %, with {widened[0]:.1f} % ({len(mine)} frames)")


def overlay(frames: list[np.ndarray]) -> None:
    rows: dict[str, list[int]] = {}
    for rgb in frames:
        original, image = pdq(rgb), Image.fromarray(rgb)
        both = np.asarray(caption(logo(image)))
        variants = {
            "logo": np.asarray(logo(image)),
            "logo, filled": fill_logo(np.asarray(logo(image))),
            "caption": np.asarray(caption(image)),
            "caption, filled": fill_caption(np.asarray(caption(image))),
            "logo + caption": both,
            "both filled": fill_logo(fill_caption(both)),
            "caption band cut off": both[:-CAPTION_PX],
        }
        for name, pixels in variants.items():
            rows.setdefault(name, []).append(bits(original, pdq(pixels)))
    for name, distances in rows.items():
        print(summary(name, distances))


def crop(frames: list[np.ndarray]) -> None:
    rows: dict[str, list[int]] = {}
    for rgb in frames:
        edited = np.asarray(bench.letterbox(Image.fromarray(rgb)))
        columns = np.flatnonzero(edited.max(axis=(0, 2)) > 0)
        picture = pdq(edited[:, columns[0] : columns[-1] + 1])  # the trimmed view: the pillarbox cut off
        h, w = rgb.shape[:2]
        for keep in (0.9, 0.85, 0.8, 0.75, 0.7):
            dx, dy = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
            kept = pdq(rgb[dy : h - dy, dx : w - dx])
            rows.setdefault(f"centre crop keeping {keep:.0%}", []).append(bits(picture, kept))
    for name, distances in rows.items():
        print(summary(name, distances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--samples", action="store_true", help="also the vPDQ sample videos (speed study)")
    args = parser.parse_args()
    if args.samples:
        folder = args.corpus.parent / "vpdq-conformance" / "videos"
        for name in ("chair-orig-22-sd-bar", "pattern-hd-no-bar", "doorknob-hd-no-bar"):
            data = (folder / f"{name}.mp4").read_bytes()
            frames, fps = bench.decode(data)
            print(name)
            churn(data, fps)
            speed(data, frames, fps)
            if len(frames) >= 12 * fps:  # the benchmark's condition for the excerpt
                excerpt(data, frames, fps)
    pool = bench.photos(args.corpus)
    order = np.random.default_rng(15).permutation(len(pool))  # the benchmark's order: clip c is its clip c
    per_clip = int(args.seconds // 4)
    for c in range(args.clips):
        frames = bench.clip_frames([pool[i] for i in order[c * per_clip : (c + 1) * per_clip]], args.seconds)
        seconds = frames[:: bench.FPS]
        print(f"clip{c:02d}")
        speed(bench.encode(frames, bench.FPS), frames)
        overlay(seconds)
        crop(seconds)


if __name__ == "__main__":
    main()
