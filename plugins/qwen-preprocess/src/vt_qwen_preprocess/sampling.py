"""Which frames to take: the sampling strategies.

Each strategy turns a frame range plus the request into sorted, unique, absolute frame indices.
``uniform`` and ``fps`` reproduce qwen-vl-utils 0.0.14 exactly; the others use the same frame
count rules and then move the picks (to keyframes, or towards content changes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vt.errors import UsageError
from vt_qwen_preprocess.sizing import (
    FRAME_FACTOR,
    frame_range,
    linspace_indices,
    round_by_factor,
    smart_nframes,
)

STRATEGIES = ("auto", "uniform", "fps", "duration", "keyframe", "scene")


@dataclass(frozen=True)
class SamplingRequest:
    strategy: str = "auto"  # auto: uniform when nframes is given, else fps
    fps: float | None = None
    nframes: int | None = None
    min_frames: int | None = None
    max_frames: int | None = None
    frame_factor: int = FRAME_FACTOR
    base_interval: float = 4.0
    start: float | None = None
    end: float | None = None
    scene_weight: float = 0.7  # share of frames placed by content change (scene strategy)

    def resolved_strategy(self) -> str:
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r} (one of {', '.join(STRATEGIES)})")
        if self.strategy != "auto":
            return self.strategy
        return "uniform" if self.nframes is not None else "fps"


@dataclass(frozen=True)
class SamplingPlan:
    strategy: str
    indices: list[int]
    first: int
    last: int
    range_frames: int  # frames in the selected time range
    video_fps: float
    sample_fps: float  # the reference's definition: n / range_frames * video_fps

    @property
    def nframes(self) -> int:
        return len(self.indices)

    @property
    def timestamps(self) -> list[float]:
        return [i / self.video_fps for i in self.indices]


def count_frames(req: SamplingRequest, range_frames: int, video_fps: float) -> int:
    strategy = req.resolved_strategy()
    if strategy == "uniform" and req.nframes is None:
        raise UsageError("the uniform strategy needs --nframes")
    if strategy == "duration":
        if req.base_interval <= 0:
            raise UsageError(f"base_interval must be positive, got {req.base_interval}")
        seconds = range_frames / video_fps
        n = round(seconds / req.base_interval)
        lo = req.min_frames if req.min_frames is not None else 4
        hi = req.max_frames if req.max_frames is not None else 768
        n = min(max(n, lo), hi, range_frames)
        n = max(req.frame_factor, round_by_factor(n, req.frame_factor))
        if n > range_frames:
            n -= req.frame_factor
        return smart_nframes(range_frames, video_fps, nframes=n, frame_factor=req.frame_factor)
    nframes = req.nframes if strategy in ("uniform", "keyframe", "scene") else None
    if strategy == "fps" and req.nframes is not None:
        raise UsageError("the fps strategy takes --fps, not --nframes")
    return smart_nframes(
        range_frames,
        video_fps,
        nframes=nframes,
        fps=None if nframes is not None else req.fps,
        min_frames=req.min_frames,
        max_frames=req.max_frames,
        frame_factor=req.frame_factor,
    )


def plan_sampling(
    req: SamplingRequest,
    total_frames: int,
    video_fps: float,
    *,
    keyframes: Callable[[], Sequence[int]] | None = None,
    change_scores: Callable[[int, int], np.ndarray] | None = None,
) -> SamplingPlan:
    """Choose frames. ``keyframes()`` and ``change_scores(first, last)`` are called only by the
    strategies that need them (they read the file)."""
    strategy = req.resolved_strategy()
    first, last, count = frame_range(total_frames, video_fps, req.start, req.end)
    n = count_frames(req, count, video_fps)
    indices = linspace_indices(first, last, n)
    if strategy == "keyframe":
        if keyframes is None:
            raise UsageError("the keyframe strategy needs a video file (no keyframes known)")
        indices = snap_to_keyframes(indices, keyframes(), first, last)
    elif strategy == "scene":
        if change_scores is None:
            raise UsageError("the scene strategy needs a video file")
        indices = scene_indices(change_scores(first, last), first, n, req.scene_weight)
    return SamplingPlan(
        strategy=strategy,
        indices=indices,
        first=first,
        last=last,
        range_frames=count,
        video_fps=video_fps,
        sample_fps=n / max(count, 1e-6) * video_fps,
    )


def snap_to_keyframes(
    targets: Sequence[int], keyframes: Sequence[int], first: int, last: int
) -> list[int]:
    """Move each target to the nearest keyframe within half the spacing to its neighbours;
    targets with no keyframe close enough (or whose keyframe is taken) stay where they are."""
    keys = np.asarray(sorted(k for k in keyframes if first <= k <= last), dtype=np.int64)
    out: list[int] = []
    taken: set[int] = set()
    for pos, t in enumerate(targets):
        prev_gap = t - targets[pos - 1] if pos > 0 else t - first
        next_gap = targets[pos + 1] - t if pos + 1 < len(targets) else last - t
        tol = max(min(prev_gap, next_gap) / 2, 0)
        choice = t
        if len(keys):
            j = int(np.searchsorted(keys, t))
            near = [int(keys[k]) for k in (j - 1, j) if 0 <= k < len(keys)]
            near = [k for k in near if abs(k - t) < tol and k not in taken]
            if near:
                choice = min(near, key=lambda k: (abs(k - t), k))
        out.append(choice)
        taken.add(choice)
    return _strictly_increasing(out, first, last)


def scene_indices(scores: np.ndarray, first: int, n: int, weight: float = 0.7) -> list[int]:
    """``n`` frames spread by the inverse CDF of (uniform share + ``weight`` x content change):
    more frames where the picture changes, never none in a static stretch."""
    count = len(scores)
    if not 0 <= weight < 1:
        raise UsageError(f"scene weight must be in [0, 1), got {weight}")
    s = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    total = s.sum()
    density = np.full(count, (1 - weight) / count)
    density += weight * (s / total if total > 0 else 1.0 / count)
    cdf = np.cumsum(density)
    cdf /= cdf[-1]
    quantiles = (np.arange(n) + 0.5) / n
    picks = np.searchsorted(cdf, quantiles).clip(0, count - 1)
    return _strictly_increasing([first + int(p) for p in picks], first, first + count - 1)


def _strictly_increasing(indices: Sequence[int], first: int, last: int) -> list[int]:
    """Sorted unique indices of the same length (collisions pushed to free neighbours)."""
    n = len(indices)
    if n > last - first + 1:
        raise UsageError(f"cannot pick {n} distinct frames from {last - first + 1}")
    out = sorted(indices)
    for i in range(1, n):  # forward pass: make room
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1
    for i in range(n - 1, -1, -1):  # backward pass: respect the upper bound
        limit = last if i == n - 1 else out[i + 1] - 1
        if out[i] > limit:
            out[i] = limit
    return out
