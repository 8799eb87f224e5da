"""vPDQ's exchange format and clean-up rules, and telling videos from images by their bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from images import encode as encode_image
from images import photo
from videos import animated_gif, clip_frames, encode, tiny_frames_gif

from hashsvc.errors import InvalidHashError
from hashsvc.hashes import vpdq
from hashsvc.media_sniff import video_kind
from hashsvc.service.video_hashing import hash_video

CODE = bytes.fromhex("e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c")


def test_features_serialize_as_python_threatexchange_writes_them() -> None:
    # Its __str__ is f"{pdq_hex},{quality},{timestamp:.3}": three significant digits, not three decimals.
    assert str(vpdq.Feature(CODE, 100, 0.0)) == f"{CODE.hex()},100,0.0"
    assert str(vpdq.Feature(CODE, 87, 12.0)) == f"{CODE.hex()},87,12.0"
    assert str(vpdq.Feature(CODE, 87, 0.0333)) == f"{CODE.hex()},87,0.0333"
    assert str(vpdq.Feature(CODE, 87, 123.0)) == f"{CODE.hex()},87,1.23e+02"
    signal = vpdq.dumps([vpdq.Feature(CODE, 100, 0.0), vpdq.Feature(CODE, 90, 1.0)])
    assert json.loads(signal) == [f"{CODE.hex()},100,0.0", f"{CODE.hex()},90,1.0"]
    assert [(f.code, f.quality, f.timestamp) for f in vpdq.loads(signal)] == [(CODE, 100, 0.0), (CODE, 90, 1.0)]
    assert vpdq.loads(json.loads(signal)) == vpdq.loads(signal)


@pytest.mark.parametrize(
    "signal",
    ["not json", "{}", '["abc"]', f'["{CODE.hex()},101,0.0"]', f'["{CODE.hex()},50,-1"]', f'["{CODE.hex()},50,nan"]',
     f'["{CODE.hex()[:-1]}g,50,0.0"]', f'["{CODE.hex()},50"]', "[1]", json.dumps([f"{CODE.hex()},50,0"] * 100_001)],
)  # fmt: skip
def test_malformed_signals_are_invalid_hashes(signal: str) -> None:
    with pytest.raises(InvalidHashError):
        vpdq.loads(signal)


def test_prepare_drops_low_quality_frames_then_repeats_and_shares_follow_vpdq() -> None:
    a, b, c = (bytes([n]) * 32 for n in (1, 2, 3))
    features = [vpdq.Feature(a, 100, 0), vpdq.Feature(a, 100, 1), vpdq.Feature(b, 49, 2), vpdq.Feature(c, 50, 3)]
    assert [f.timestamp for f in vpdq.prepare(features)] == [0, 3]
    near = bytes([1]) * 31 + bytes([0])  # 1 bit from a
    far = bytes([0xFF ^ 1]) * 32
    query = [vpdq.Feature(near, 100, 0), vpdq.Feature(far, 100, 1)]
    other = bytes([0x80]) * 32
    item = [vpdq.Feature(a, 100, 0), vpdq.Feature(b, 100, 1), vpdq.Feature(c, 100, 2), vpdq.Feature(other, 90, 3)]
    assert vpdq.brute_shares(query, item) == (50.0, 25.0)
    assert vpdq.time_ranges([0, 1, 2, 5, 6, 9], 1.0) == [(0, 2), (5, 6), (9, 9)]


def test_videos_and_animations_are_told_by_content() -> None:
    frames = list(clip_frames(1.0, fps=5, size=(64, 48)))
    assert video_kind(encode(frames, fps=5)) == "mp4"
    assert video_kind(encode(frames, fps=5, container="matroska")) == "mkv"
    assert video_kind(encode(frames, fps=5, container="webm", codec="libvpx-vp9")) == "webm"
    assert video_kind(encode(frames, fps=5, container="avi", codec="mpeg4")) == "avi"
    assert video_kind(encode(frames, fps=5, container="mov")) == "mov"
    assert video_kind(animated_gif(frames)) == "gif"
    assert video_kind(tiny_frames_gif(2)) == "gif"
    still = photo(64, 48)
    for fmt in ("GIF", "PNG", "WEBP", "JPEG"):
        assert video_kind(encode_image(still, fmt)) is None, fmt
    assert video_kind(encode_image(still, "PNG", save_all=True, append_images=[photo(64, 48, seed=1)])) == "png"
    assert video_kind(encode_image(still, "WEBP", save_all=True, append_images=[photo(64, 48, seed=1)])) == "webp"
    assert video_kind(tiny_frames_gif(1)) is None
    assert video_kind(b"") is None and video_kind(b"\x00\x00\x00\x18ftyp") is None


def test_pigeonhole_probe_frames_name_every_video_that_can_match() -> None:
    # At Meta's 80 %, 48 of 60 frames must match: any 13 frames include one of them.
    assert vpdq.frames_needed(80.0, 60) == 48 and vpdq.frames_needed(0.0, 60) == 1
    assert all(100.0 * vpdq.frames_needed(s, n) / n >= s > 100.0 * (vpdq.frames_needed(s, n) - 1) / n
               for s in (0.5, 33.3, 50.0, 80.0, 99.9, 100.0) for n in (1, 3, 7, 60, 61))  # fmt: skip
    frames = [vpdq.Feature(bytes([n]) * 32, 100 if n % 3 else 60, float(n)) for n in range(60)]
    assert len(vpdq.probe_frames(frames, [(80.0, 50)])) == 13
    assert len(vpdq.probe_frames(frames, [(80.0, 50), (0.0, 50)])) == 60  # a 0 % rule needs every frame
    # Under a stricter quality rule only the 40 frames of quality 100 count: 40 - 32 + 1 = 9, the best first.
    assert [frames[p].quality for p in vpdq.probe_frames(frames, [(80.0, 70)])] == [100] * 9

    # Exactness on random videos: whenever the shares pass, a probed frame is within the distance of the item.
    rng = np.random.default_rng(7)
    for trial in range(300):
        item = rng.integers(0, 256, (int(rng.integers(1, 12)), 32), dtype=np.uint8)
        n = int(rng.integers(1, 16))
        near = item[rng.integers(0, len(item), n)].copy()
        for row in near:  # 0-40 bits off a frame of the item: some within 31, some not
            for bit in rng.choice(256, int(rng.integers(0, 41)), replace=False):
                row[bit // 8] ^= 0x80 >> (bit % 8)
        query = [vpdq.Feature(bytes(c), int(rng.integers(40, 101)), float(t)) for t, c in enumerate(near)]
        stored = [vpdq.Feature(bytes(c), 100, float(t)) for t, c in enumerate(item)]
        share, quality = float(rng.choice([50.0, 80.0, 100.0])), int(rng.choice([50, 80]))
        mine = [f for f in query if f.quality >= quality]
        passes = vpdq.passes(*vpdq.brute_shares(mine, stored), share, 0.0)
        probed = [query[p] for p in vpdq.probe_frames(query, [(share, quality)])]
        eligible = [f for f in probed if f.quality >= quality]
        hit = bool(eligible) and bool((vpdq.distance_matrix(eligible, stored) <= 31).any())
        assert hit or not passes, trial


def test_a_video_border_is_the_innermost_box_most_frames_agree_on() -> None:
    from hashsvc.hashes import video_views

    # A pillarboxed grey frame: bars at 0..79 and 560..639 of 640 x 360, noise inside.
    rng = np.random.default_rng(3)
    frame = np.zeros((360, 640), dtype=np.float32)
    frame[:, 80:560] = rng.uniform(0, 255, (360, 480))
    [box] = video_views.frame_boxes(frame)
    assert all(abs(a - b) <= 4 for a, b in zip(box, (80, 0, 560, 360), strict=True))
    assert video_views.frame_boxes(rng.uniform(0, 255, (360, 640)).astype(np.float32)) == []

    window, with_title = (64, 45, 576, 334), (64, 23, 579, 334)  # a screen recording: strict rule keeps the title
    votes = [[window, with_title]] * 5 + [[(64, 49, 406, 334), with_title]] * 4
    assert video_views.consensus_box(votes, (360, 640)) == window
    assert video_views.consensus_box([[window]] * 4 + [[]] * 5, (360, 640)) is None  # on fewer than half
    assert video_views.consensus_box([], (360, 640)) is None
    assert video_views.crop(np.zeros((180, 320)), (64, 46, 576, 334), (360, 640)).shape == (144, 256)


def test_a_neighbour_counts_for_the_sampled_frame_it_flanks() -> None:
    a, b = bytes([1]) * 32, bytes([2]) * 32
    far = bytes([0xF0]) * 32
    query = [vpdq.Feature(far, 100, 0.0, frame=0), vpdq.Feature(a, 100, 1.0, frame=24)]
    item = [vpdq.Feature(a, 100, 0.0, frame=0), vpdq.Feature(b, 100, 1.0, frame=24)]
    assert vpdq.brute_shares(query, item) == (50.0, 50.0)  # vPDQ's comparison when there are no neighbours
    # Frame 0's neighbour (frame 6) shows b: frame 0 now counts as matched, and so does the item's b.
    assert vpdq.brute_shares(query, item, neighbours=[(0, vpdq.Feature(b, 100, 0.25, frame=6))]) == (100.0, 100.0)
    # A neighbour only counts for its own sampled frame: one flanking a frame not in the query is ignored, so a
    # query frame dropped by the clean-up cannot come back through its neighbours.
    assert vpdq.brute_shares(query, item, neighbours=[(48, vpdq.Feature(b, 100, 2.0, frame=42))]) == (50.0, 50.0)
    hit_query, hit_item, best = vpdq.hits(query, item, 31, [(0, vpdq.Feature(far, 100, 0.25, frame=6))])
    assert (hit_query.tolist(), hit_item.tolist(), best) == ([False, True], [True, False], 0)


def test_query_neighbours_leave_the_sampled_frames_as_vpdq_samples_them() -> None:
    data = encode(clip_frames(4.0, fps=24, seed=3), fps=24)
    plain = hash_video(data)
    query = hash_video(data, views=True)
    assert query.features == plain.features  # the exported hash is the same with or without neighbours
    assert plain.neighbours == ()
    sampled = {f.frame for f in query.features}
    assert sampled == {0, 24, 48, 72}
    # 0.25 s at 24 fps is 6 frames either side; the first frame has nothing before it.
    assert sorted((anchor, f.frame) for anchor, f in query.neighbours) == [
        (0, 6), (24, 18), (24, 30), (48, 42), (48, 54), (72, 66), (72, 78)]  # fmt: skip
    assert all(f.timestamp == f.frame / 24 for _, f in query.neighbours)
    # Sampling every frame leaves no room between samples: no neighbours.
    assert hash_video(data, seconds_per_hash=0, views=True).neighbours == ()
