"""Video hashing speed: seconds of H.264 video hashed per CPU second, ours against naive pipelines, one run.

Makes test videos from corpus photos (slow pans and zooms, a cut every 4 s; x264 `veryfast`, CRF 23, B-frames,
30 fps) at 720p and 1080p, then hashes each with, interleaved and repeated:

* `hashsvc`: `hash_video` as the sandbox runs it (one decoder thread, the Y plane, frames box-reduced towards
  the working size, PDQ's full-resolution grid evaluated on them; vpdq's 1 frame per second);
* `naive`: PyAV decoding every frame (one thread), RGB conversion and `pdqhash.compute` at full resolution of
  the same sampled frames;
* `vpdq`: Meta's `vpdq` package (`vpdq.computeHash`, 1 s per hash), when it is importable (pass --vpdq-python
  to run it with another interpreter that has it, e.g. a venv built against the system's FFmpeg).

CPU time is the process's user+system time, so threads count: "x real time per core" = video seconds / CPU s.
Prints a table and writes JSON.

    .venv/bin/python scripts/bench_video.py --seconds 20 --repeat 3 --out bench_video.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pdqhash
from PIL import Image

from hashsvc.service.video_hashing import hash_video

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 30


def corpus_photos(corpus: Path, count: int) -> list[Path]:
    photos = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    big = [p for p in photos if min(Image.open(p).size) >= 480]
    return big[:count]


def make_video(photos: list[Path], size: tuple[int, int], seconds: float, path: Path) -> None:
    """Pans and zooms across the photos, a cut to the next every 4 s."""
    width, height = size
    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        scenes: dict[int, Image.Image] = {}
        for n in range(int(seconds * FPS)):
            t = n / FPS
            scene = int(t // 4)
            if scene not in scenes:
                picture = Image.open(photos[scene % len(photos)]).convert("RGB")
                scale = max(width * 1.6 / picture.width, height * 1.6 / picture.height)
                scenes[scene] = picture.resize((round(picture.width * scale), round(picture.height * scale)))
            picture = scenes[scene]
            progress = (t % 4) / 4
            zoom = 1.5 - 0.3 * progress
            w, h = width * zoom, height * zoom
            x0, y0 = (picture.width - w) * progress, (picture.height - h) / 2
            view = picture.resize((width, height), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h))
            for packet in stream.encode(av.VideoFrame.from_image(view)):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def naive(data: bytes) -> list[tuple[bytes, int]]:
    """Decode every frame; RGB and pdqhash at full resolution for the frames vpdq samples (1 per second)."""
    import io

    hashes = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frame_mod = max(1, int(float(stream.average_rate)))
        for number, frame in enumerate(container.decode(stream)):
            if number % frame_mod == 0:
                vector, quality = pdqhash.compute(frame.to_ndarray(format="rgb24"))
                hashes.append((np.packbits(vector).tobytes(), int(quality)))
    return hashes


VPDQ_SNIPPET = """
import sys, time, vpdq
start = time.process_time()
features = vpdq.computeHash(sys.argv[1], seconds_per_hash=1)
print(time.process_time() - start, len(features))
"""


def cpu_seconds(function, data: bytes) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    function(data)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vpdq-python", help="An interpreter with the vpdq package (optional).")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hashsvc-bench-video")
    parser.add_argument("--out", type=Path, default=Path("bench_video.json"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    photos = corpus_photos(args.corpus, 8)
    vpdq_python = args.vpdq_python
    if vpdq_python is None:
        try:
            import vpdq  # noqa: F401

            vpdq_python = sys.executable
        except ImportError:
            pass
    results = []
    for label, size in SIZES.items():
        path = args.workdir / f"{label}-{int(args.seconds)}s.mp4"
        if not path.exists():
            make_video(photos, size, args.seconds, path)
        data = path.read_bytes()
        timings: dict[str, list[float]] = {"hashsvc": [], "naive": [], "vpdq": []}
        for _ in range(args.repeat):  # interleaved, so that load changes hit every pipeline alike
            timings["hashsvc"].append(cpu_seconds(hash_video, data))
            timings["naive"].append(cpu_seconds(naive, data))
            if vpdq_python:
                out = subprocess.run([vpdq_python, "-c", VPDQ_SNIPPET, str(path)], capture_output=True, text=True,
                                     check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
                timings["vpdq"].append(float(out.stdout.split()[0]))
        ours = [f.code for f in hash_video(data).features]
        reference = [code for code, _ in naive(data)]
        bits = [int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())
                for a, b in zip(ours, reference, strict=True)]  # fmt: skip
        for name, values in timings.items():
            if not values:
                continue
            median = statistics.median(values)
            results.append(
                {
                    "video": label, "pipeline": name, "video_s": args.seconds, "cpu_s_median": round(median, 3),
                    "cpu_s_all": [round(v, 3) for v in values], "x_realtime_per_core": round(args.seconds / median, 1),
                }
            )  # fmt: skip
        results.append({"video": label, "pipeline": "hashsvc vs naive", "bits_median": statistics.median(bits),
                        "bits_max": max(bits), "frames": len(bits)})  # fmt: skip
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'video':6} {'pipeline':18} {'CPU s (median)':>14} {'x real time/core':>17}")
    for row in results:
        if "cpu_s_median" in row:
            print(f"{row['video']:6} {row['pipeline']:18} {row['cpu_s_median']:>14} {row['x_realtime_per_core']:>17}")
        else:
            print(f"{row['video']:6} {row['pipeline']:18} PDQ bits apart: median {row['bits_median']}, "
                  f"max {row['bits_max']} over {row['frames']} frames")  # fmt: skip
    args.out.write_text(json.dumps({"load": load, "results": results}, indent=1))


if __name__ == "__main__":
    main()
