"""smart_resize / smart_nframes / frame ranges / pixel budgets: the reference's arithmetic."""

from __future__ import annotations

import random

import pytest

from vt.errors import UsageError
from vt_qwen_preprocess.sizing import (
    frame_range,
    linspace_indices,
    smart_nframes,
    smart_resize,
    video_pixel_budget,
)


@pytest.fixture(scope="module")
def vp():
    """The reference (a test dependency); only the comparisons skip without it."""
    return pytest.importorskip("qwen_vl_utils.vision_process")


def test_smart_resize_matches_reference_on_random_sizes(vp):
    rng = random.Random(5)
    for _ in range(3000):
        h, w = rng.randint(1, 5000), rng.randint(1, 5000)
        if max(h, w) / min(h, w) > 200:
            continue
        factor = rng.choice([28, 32, 14])
        lo = rng.choice([None, 128 * factor**2, 4 * factor**2])
        hi = rng.choice([None, 768 * factor**2, 12845056, 602112.5])
        if lo is not None and hi is not None and hi < lo:
            continue
        ours = smart_resize(h, w, factor, lo, hi)
        ref = vp.smart_resize(h, w, factor, lo, hi)
        if min(ref) > 0:  # the reference can floor a side to 0; we keep at least one factor
            assert ours == ref, (h, w, factor, lo, hi)


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [
        (720, 1280, (728, 1288)),  # rounds to the nearest multiple of 28
        (1, 1, (56, 56)),  # tiny frames grow to min_pixels (4 * 28^2)
        (10000, 10000, (3556, 3556)),  # huge frames shrink below max_pixels
    ],
)
def test_smart_resize_edges(h, w, expected):
    assert smart_resize(h, w, 28) == expected
    rh, rw = expected
    assert rh % 28 == 0 and rw % 28 == 0


def test_smart_resize_rejects_extreme_aspect_ratio():
    with pytest.raises(UsageError, match="aspect ratio"):
        smart_resize(10, 2010, 28)
    assert smart_resize(10, 2000, 28)  # exactly 200 is allowed


def test_smart_resize_rejects_inverted_budget():
    with pytest.raises(UsageError, match="max_pixels"):
        smart_resize(100, 100, 28, min_pixels=10000, max_pixels=100)


@pytest.mark.parametrize("total", [2, 3, 4, 7, 50, 132, 250, 1000, 5000])
@pytest.mark.parametrize("fps_in", [1.0, 23.976, 25.0, 29.97002997002997, 60.0])
@pytest.mark.parametrize("fps", [0.1, 0.5, 1.0, 2.0, 4.0, 30.0])
def test_smart_nframes_fps_matches_reference(vp, total, fps_in, fps):
    ele = {"fps": fps}
    try:
        ref = vp.smart_nframes(ele, total_frames=total, video_fps=fps_in)
    except ValueError:
        with pytest.raises(UsageError):
            smart_nframes(total, fps_in, fps=fps)
        return
    assert smart_nframes(total, fps_in, fps=fps) == ref


@pytest.mark.parametrize("n", [2, 3, 4, 5, 9, 64, 131])
def test_smart_nframes_nframes_matches_reference(vp, n):
    assert smart_nframes(132, 25.0, nframes=n) == vp.smart_nframes({"nframes": n}, 132, 25.0)


def test_smart_nframes_min_max_frames_match_reference(vp):
    for lo, hi in [(6, 10), (3, 9), (20, 40), (1, 768)]:
        ele = {"fps": 2.0, "min_frames": lo, "max_frames": hi}
        assert smart_nframes(250, 25.0, fps=2.0, min_frames=lo, max_frames=hi) == vp.smart_nframes(
            ele, 250, 25.0
        )


def test_more_frames_than_exist_is_a_clear_error():
    with pytest.raises(UsageError, match="only 10"):
        smart_nframes(10, 25.0, nframes=12)
    with pytest.raises(UsageError, match="either"):
        smart_nframes(10, 25.0, nframes=4, fps=2.0)
    with pytest.raises(UsageError, match="too few"):
        smart_nframes(1, 25.0, fps=2.0)


@pytest.mark.parametrize(
    ("start", "end"), [(None, None), (1.0, 3.5), (0.33, None), (None, 2.2), (4.9, 99.0)]
)
def test_frame_range_matches_reference(vp, start, end):
    ele = {}
    if start is not None:
        ele["video_start"] = start
    if end is not None:
        ele["video_end"] = end
    assert frame_range(132, 25.0, start, end) == vp.calculate_video_frame_range(ele, 132, 25.0)


def test_empty_frame_range_is_an_error():
    with pytest.raises(UsageError, match="empty time range"):
        frame_range(132, 25.0, 3.0, 3.0)


def test_linspace_indices_match_torch_reference():
    import torch

    for first, last, n in [(0, 131, 10), (25, 87, 4), (0, 1592, 126), (3, 7, 4)]:
        ref = torch.linspace(first, last, n).round().long().tolist()
        assert linspace_indices(first, last, n) == ref
        assert linspace_indices(first, last, n)[0] == first
        assert linspace_indices(first, last, n)[-1] == last


def test_linspace_indices_match_torch_on_random_ranges():
    # torch-free: float32 steps and fused multiply-adds emulated exactly, ties to even
    import torch

    rng = random.Random(7)
    for _ in range(1000):
        last = rng.choice([rng.randint(1, 3000), rng.randint(1, 300_000), rng.randint(1, 2**26)])
        first = rng.randint(0, last - 1) if rng.random() < 0.3 else 0
        n = rng.randint(1, min(rng.choice([16, 768, 5000]), last - first + 1))
        ref = torch.linspace(first, last, n).round().long().tolist()
        assert linspace_indices(first, last, n) == ref, (first, last, n)
    # beyond exact float64 emulation (a 2**28-frame span) torch itself answers
    assert (
        linspace_indices(2**29, 2**29 + 7, 8)
        == torch.linspace(2**29, 2**29 + 7, 8).round().long().tolist()
    )


def test_pixel_budget_follows_reference_formula():
    b = video_pixel_budget(126, 28)
    total = 128000 * 28 * 28 * 0.9
    assert b.max_pixels == max(min(768 * 28 * 28, total / 126 * 2), int(128 * 28 * 28 * 1.05))
    assert b.min_pixels == 128 * 28 * 28
    # a long video hits the floor (1.05 x min_pixels) instead of dropping below min_pixels
    assert video_pixel_budget(2000, 28).max_pixels == int(128 * 28 * 28 * 1.05)
    # the user's max_pixels only ever lowers the limit
    assert video_pixel_budget(10, 28, max_pixels=100000).max_pixels == 100000
