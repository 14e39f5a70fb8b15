"""Planning: what will be sampled, at what size, and what it costs in tokens, from metadata
alone (no pixel is decoded, except by the scene strategy's change scores)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vt.errors import InputError, UsageError
from vt_qwen_preprocess.analysis import change_scores
from vt_qwen_preprocess.config import Resolved
from vt_qwen_preprocess.inputs import FrameList
from vt_qwen_preprocess.sampling import SamplingPlan, SamplingRequest, plan_sampling
from vt_qwen_preprocess.sizing import (
    ceil_by_factor,
    linspace_indices,
    smart_nframes,
    smart_resize,
    video_pixel_budget,
)
from vt_qwen_preprocess.tokens import TokenReport, context_error, count_tokens


@dataclass
class VideoPlan:
    """Everything known before decoding a pixel: what will be sampled and what it costs."""

    input: str
    kind: str  # "video" | "frames"
    decoder: str | None
    width: int
    height: int
    total_frames: int
    video_fps: float
    duration: float
    sampling: SamplingPlan
    resized_height: int
    resized_width: int
    min_pixels: float
    max_pixels: float
    tokens: TokenReport
    profile: str
    padded_frames: int = 0  # frame lists: copies of the last frame added to reach the factor

    @property
    def nframes(self) -> int:
        return len(self.sampling.indices) + self.padded_frames

    @property
    def indices(self) -> list[int]:
        return list(self.sampling.indices) + [self.sampling.indices[-1]] * self.padded_frames

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kind": self.kind,
            "decoder": self.decoder,
            "profile": self.profile,
            "source_resolution": [self.height, self.width],
            "total_frames": self.total_frames,
            "original_fps": self.video_fps,
            "duration": self.duration,
            "strategy": self.sampling.strategy,
            "num_frames": self.nframes,
            "frame_indices": self.indices,
            "sample_fps": self.sampling.sample_fps,
            "resolution": [self.resized_height, self.resized_width],
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "grid_thw": list(self.tokens.grid_thw),
            "tokens_per_frame": self.tokens.tokens_per_frame,
            "total_tokens": self.tokens.total_tokens,
            "max_context_tokens": self.tokens.max_context_tokens,
            "memory_bytes": self.tokens.memory_bytes,
        }


def decoder_timing(reader: Any) -> tuple[int, float]:
    """(frame count, fps) as the decoder itself reports them: qwen-vl-utils samples with its
    backend's own numbers (torchcodec's scanned average fps can differ in the last digits)."""
    count, fps = reader.native_timing()
    if not count:
        raise InputError(f"cannot count the frames of {reader.source.describe()}")
    if not fps or fps <= 0:
        raise InputError(f"{reader.source.describe()} has no usable frame rate")
    return int(count), float(fps)


def sampling_request(r: Resolved) -> SamplingRequest:
    c = r.config
    return SamplingRequest(
        strategy=c.strategy,
        fps=r.fps,
        nframes=r.nframes,
        min_frames=r.min_frames,
        max_frames=r.max_frames,
        frame_factor=r.profile.frame_factor,
        base_interval=c.base_interval,
        start=c.start,
        end=c.end,
        scene_weight=c.scene_weight,
    )


def size_plan(r: Resolved, nframes: int, height: int, width: int) -> tuple[int, int, float, float]:
    """(resized_height, resized_width, min_pixels, max_pixels) for frames of height x width."""
    c, p = r.config, r.profile
    budget = video_pixel_budget(
        nframes,
        p.factor,
        min_pixels=c.min_pixels,
        max_pixels=c.max_pixels,
        total_pixels=c.total_pixels,
        min_tokens=p.min_tokens,
        max_tokens=p.max_tokens,
        model_seq_len=p.max_context_tokens,
        total_ratio=p.total_pixels_ratio,
        frame_factor=p.frame_factor if p.frame_factor > 1 else 2,
    )
    hi = budget.max_pixels if p.max_pixels is None else min(budget.max_pixels, p.max_pixels)
    if c.resized_height is not None and c.resized_width is not None:
        rh, rw = smart_resize(c.resized_height, c.resized_width, p.factor)
    else:
        rh, rw = smart_resize(height, width, p.factor, budget.min_pixels, hi)
    return rh, rw, budget.min_pixels, hi


def _finish_plan(
    r: Resolved,
    *,
    input_name: str,
    kind: str,
    decoder: str | None,
    width: int,
    height: int,
    total: int,
    fps: float,
    sampling: SamplingPlan,
    padded: int = 0,
) -> VideoPlan:
    n = len(sampling.indices) + padded
    rh, rw, lo, hi = size_plan(r, n, height, width)
    tokens = count_tokens(r.profile, n, rh, rw)
    plan = VideoPlan(
        input_name,
        kind,
        decoder,
        width,
        height,
        total,
        fps,
        total / fps if fps else 0.0,
        sampling,
        rh,
        rw,
        lo,
        hi,
        tokens,
        r.profile.name,
        padded,
    )
    if r.config.check_context and tokens.total_tokens > tokens.max_context_tokens:
        raise context_error(
            tokens, r.profile, _fitting_hint(r, n, height, width, fps, sampling.range_frames)
        )
    return plan


def _fitting_hint(
    r: Resolved, n: int, height: int, width: int, video_fps: float, range_frames: int
) -> str:
    """A frame count (as --nframes or --fps) and a --max-pixels that fit the context, found by
    re-running the size rules (pixel budgets grow as frames drop, so scaling is not enough)."""
    limit = r.profile.max_context_tokens
    factor = max(r.profile.frame_factor, 1)

    def tokens(frames: int, **pixels: Any) -> int:
        c = replace(r.config, **pixels) if pixels else r.config
        rh, rw, _, _ = size_plan(replace(r, config=c), frames, height, width)
        return count_tokens(r.profile, frames, rh, rw).total_tokens

    hints = []
    fit_n = next((k for k in range(n - factor, factor - 1, -factor) if tokens(k) <= limit), None)
    if fit_n is not None:
        if r.nframes is not None:
            hints.append(f"--nframes {fit_n}")
        else:
            seconds = range_frames / video_fps
            hints.append(f"--fps {math.floor(fit_n / seconds * 100) / 100:g}")
    f2 = r.profile.factor**2
    floor = r.config.min_pixels or r.profile.min_tokens * f2
    lo, hi = f2, int(size_plan(r, n, height, width)[3])
    if tokens(n, max_pixels=lo, min_pixels=lo) <= limit:
        while hi - lo > f2:  # largest max_pixels that fits (tokens grow with it)
            mid = (lo + hi) // 2
            fits = tokens(n, max_pixels=mid, min_pixels=min(mid, floor)) <= limit
            lo, hi = (mid, hi) if fits else (lo, mid)
        extra = f" --min-pixels {lo}" if lo < floor else ""
        hints.append(f"--max-pixels {lo}{extra}")
    return ("try " + " or ".join(hints)) if hints else "use a shorter --start/--end range"


def plan_video_reader(reader: Any, r: Resolved, input_name: str) -> VideoPlan:
    total, fps = decoder_timing(reader)
    video = reader.info.video
    c = r.config
    duration = total / fps
    if (
        c.max_video_duration
        and duration > c.max_video_duration
        and c.start is None
        and c.end is None
    ):
        raise InputError(
            f"{input_name} lasts {duration:.1f}s, over the {c.max_video_duration:g}s limit "
            "(raise max_video_duration or pick a --start/--end range)"
        )
    if c.end is not None and c.start is not None and c.end <= c.start:
        raise UsageError(f"--end ({c.end}) must be after --start ({c.start})")
    width, height = video.width, video.height
    if video.rotation % 180 == 90 and reader.decoder_name == "pyav":
        pass  # PyAV hands out frames as stored; rotation is metadata only
    sampling = plan_sampling(
        sampling_request(r),
        total,
        fps,
        keyframes=reader.keyframes,
        change_scores=lambda first, last: change_scores(reader, first, last),
    )
    return _finish_plan(
        r,
        input_name=input_name,
        kind="video",
        decoder=reader.decoder_name,
        width=width,
        height=height,
        total=total,
        fps=fps,
        sampling=sampling,
    )


def plan_frame_list(
    frames: FrameList, r: Resolved, first_frame: np.ndarray, input_name: str
) -> VideoPlan:
    """Frame lists: every frame (padded with the last to the frame factor, as the reference),
    or an even subset when ``nframes`` is asked for."""
    c = r.config
    count = frames.count
    factor = r.profile.frame_factor
    fps = frames.fps or (c.fps if c.fps else 2.0)
    if c.nframes is not None:
        n = smart_nframes(count, fps, nframes=c.nframes, frame_factor=factor)
        indices, padded = linspace_indices(0, count - 1, n), 0
    else:
        indices = list(range(count))
        padded = ceil_by_factor(count, factor) - count
    n = len(indices) + padded
    sampling = SamplingPlan(
        "list",
        indices,
        0,
        count - 1,
        count,
        fps,
        sample_fps=fps if c.nframes is None else n / count * fps,
    )
    h, w = first_frame.shape[:2]
    return _finish_plan(
        r,
        input_name=input_name,
        kind="frames",
        decoder=None,
        width=w,
        height=h,
        total=count,
        fps=fps,
        sampling=sampling,
        padded=padded,
    )
