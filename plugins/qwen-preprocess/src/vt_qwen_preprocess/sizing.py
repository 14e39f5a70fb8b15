"""Frame counts, frame ranges and frame sizes, exactly as qwen-vl-utils 0.0.14 computes them.

Every function here is pure arithmetic (no decoding), so ``--plan`` can answer from metadata
alone. Python's ``round`` (banker's rounding) and ``torch.linspace``'s float32 arithmetic are
reproduced where the reference uses them, because they decide which frame is picked at a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vt.errors import UsageError

MAX_RATIO = 200
FRAME_FACTOR = 2
FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
VIDEO_MIN_TOKEN_NUM = 128
VIDEO_MAX_TOKEN_NUM = 768
MODEL_SEQ_LEN = 128000
TOTAL_PIXELS_RATIO = 0.9


def round_by_factor(number: float, factor: int) -> int:
    """The multiple of ``factor`` closest to ``number`` (ties to even, like Python's round)."""
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: float | None = None,
    max_pixels: float | None = None,
    max_ratio: float = MAX_RATIO,
) -> tuple[int, int]:
    """``(height, width)`` divisible by ``factor``, with area in [min_pixels, max_pixels] and the
    aspect ratio kept as closely as possible."""
    max_pixels = max_pixels if max_pixels is not None else 16384 * factor**2
    min_pixels = min_pixels if min_pixels is not None else 4 * factor**2
    if height <= 0 or width <= 0:
        raise UsageError(f"frame size must be positive, got {width}x{height}")
    if max_pixels < min_pixels:
        raise UsageError(f"max_pixels ({max_pixels:g}) must be >= min_pixels ({min_pixels:g})")
    ratio = max(height, width) / min(height, width)
    if ratio > max_ratio:
        raise UsageError(
            f"aspect ratio {ratio:.1f} of a {width}x{height} frame exceeds the limit {max_ratio:g}"
        )
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def smart_nframes(
    total_frames: int,
    video_fps: float,
    *,
    nframes: int | None = None,
    fps: float | None = None,
    min_frames: int | None = None,
    max_frames: int | None = None,
    frame_factor: int = FRAME_FACTOR,
) -> int:
    """How many frames to sample from ``total_frames`` (``nframes`` or ``fps``, not both)."""
    if nframes is not None and fps is not None:
        raise UsageError("give either nframes or fps, not both")
    if nframes is not None:
        n = round_by_factor(nframes, frame_factor)
    else:
        fps = FPS if fps is None else fps
        if fps <= 0:
            raise UsageError(f"fps must be positive, got {fps}")
        lo = ceil_by_factor(FPS_MIN_FRAMES if min_frames is None else min_frames, frame_factor)
        hi_default = min(FPS_MAX_FRAMES, total_frames)
        hi = floor_by_factor(hi_default if max_frames is None else max_frames, frame_factor)
        n_float = total_frames / video_fps * fps
        n_float = min(min(max(n_float, lo), hi), total_frames)
        n = floor_by_factor(n_float, frame_factor)
    if not (frame_factor <= n <= total_frames):
        if n > total_frames:
            raise UsageError(
                f"asked for {n} frames but the video (range) has only {total_frames}: "
                f"use --nframes {floor_by_factor(total_frames, frame_factor)} or fewer, or --fps"
            )
        raise UsageError(
            f"{n} frames is too few: at least {frame_factor} are needed "
            f"(the video range has {total_frames} frames)"
        )
    return n


def frame_range(
    total_frames: int,
    video_fps: float,
    start: float | None = None,
    end: float | None = None,
) -> tuple[int, int, int]:
    """``(first, last, count)`` frame indices covered by the time range ``start``..``end``."""
    if video_fps <= 0:
        raise UsageError("the video has no usable frame rate")
    if total_frames <= 0:
        raise UsageError("the video has no frames")
    if start is None and end is None:
        return 0, total_frames - 1, total_frames
    duration = total_frames / video_fps
    first = math.ceil(max(0.0, min(start, duration)) * video_fps) if start is not None else 0
    last = total_frames - 1
    if end is not None:
        last = min(math.floor(max(0.0, min(end, duration)) * video_fps), total_frames - 1)
    if first >= last:
        raise UsageError(
            f"empty time range: start={start}s end={end}s selects frames {first}..{last} "
            f"of a {duration:.2f}s video"
        )
    return first, last, last - first + 1


def linspace_indices(first: int, last: int, n: int) -> list[int]:
    """``n`` indices evenly spread over ``first..last`` (both included): the reference's
    ``torch.linspace(first, last, n).round()``, computed without torch.

    PyTorch's CPU kernel works in float32: ``step = (end - start) / (n - 1)``, then
    ``start + step * i`` for the first half and ``end - step * (n - 1 - i)`` for the rest,
    each a fused multiply-add (one rounding); ``round`` ties to even. A float32 times an
    integer below 2**29 is exact in float64, and so is the sum while the operands are within
    2**28 steps of each other, so one rounding of the float64 result to float32 is the FMA.
    Beyond that (a 2**28-frame video) torch itself answers.
    """
    if n <= 0:
        return []
    start, end = np.float32(first), np.float32(last)
    if n == 1:
        return [int(np.rint(start))]
    step = np.float32(end - start) / np.float32(n - 1)
    largest = max(abs(float(start)), abs(float(end)))
    if not (largest < 2**29 and largest < abs(float(step)) * 2**28):
        import torch

        return torch.linspace(first, last, n).round().long().tolist()
    k = np.arange(n, dtype=np.float64)
    half = n // 2
    values = np.concatenate(
        [
            np.float64(step) * k[:half] + np.float64(start),
            np.float64(end) - np.float64(step) * (n - 1 - k[half:]),
        ]
    ).astype(np.float32)
    return np.rint(values).astype(np.int64).tolist()


@dataclass(frozen=True)
class PixelBudget:
    """Per-frame pixel limits for a video of ``nframes`` frames."""

    min_pixels: float
    max_pixels: float


def video_pixel_budget(
    nframes: int,
    factor: int,
    *,
    min_pixels: float | None = None,
    max_pixels: float | None = None,
    total_pixels: float | None = None,
    min_tokens: int = VIDEO_MIN_TOKEN_NUM,
    max_tokens: int = VIDEO_MAX_TOKEN_NUM,
    model_seq_len: int = MODEL_SEQ_LEN,
    total_ratio: float = TOTAL_PIXELS_RATIO,
    frame_factor: int = FRAME_FACTOR,
) -> PixelBudget:
    """The reference's per-frame limits: the total budget shared across frames, never below
    1.05x the minimum, and never above the user's own ``max_pixels``."""
    lo = min_tokens * factor * factor if min_pixels is None else min_pixels
    total = model_seq_len * factor * factor * total_ratio if total_pixels is None else total_pixels
    hi = max(min(max_tokens * factor * factor, total / nframes * frame_factor), int(lo * 1.05))
    if max_pixels is not None:
        hi = min(max_pixels, hi)
    return PixelBudget(lo, hi)
