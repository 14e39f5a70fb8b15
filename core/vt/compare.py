"""``vt compare``: how far a processed video is from its source, in one streaming pass."""

from __future__ import annotations

import math
from itertools import zip_longest
from pathlib import Path
from typing import Any

from vt.errors import InputError
from vt.media.decode import open_video
from vt.metrics import (
    TEMPORAL_SIGMA,
    FlowMethod,
    FrameQualityMeter,
    TemporalConsistencyMeter,
    WarpingErrorMeter,
    audio_offset,
    read_audio,
)

AUDIO_SECONDS = 30.0  # cross-correlate at most this much audio


def compare_videos(
    a: str | Path,
    b: str | Path,
    *,
    per_frame: bool = False,
    max_frames: int | None = None,
    warping: bool = True,
    temporal: bool = True,
    temporal_method: FlowMethod = "dis",
    temporal_sigma: float = TEMPORAL_SIGMA,
) -> dict[str, Any]:
    """Frame counts, durations, PTS differences, A/V offset, PSNR/SSIM, warping error and
    each video's temporal consistency (``vt.metrics.temporal_consistency``) over the frames
    compared."""
    quality = FrameQualityMeter()
    warp = WarpingErrorMeter() if warping else None
    steady = (
        {
            "a": TemporalConsistencyMeter(sigma=temporal_sigma, method=temporal_method),
            "b": TemporalConsistencyMeter(sigma=temporal_sigma, method=temporal_method),
        }
        if temporal
        else None
    )
    count_a = count_b = 0
    max_pts_diff = 0.0
    times: list[float | None] = []
    with open_video(a) as ra, open_video(b) as rb:
        info_a, info_b = ra.info, rb.info
        pairs = zip_longest(ra.frames(), rb.frames())
        for fa, fb in pairs:
            count_a += len(fa) if fa is not None else 0
            count_b += len(fb) if fb is not None else 0
            if fa is None or fb is None:
                continue
            if max_frames is not None and count_a > max_frames:
                count_a -= 1
                count_b -= 1
                break
            ta, tb = fa.times[0], fb.times[0]
            if per_frame:
                times.append(ta)
            if ta is not None and tb is not None:
                max_pts_diff = max(max_pts_diff, abs(ta - tb))
            quality.update(fa.images[0], fb.images[0])
            if warp is not None:
                warp.update(fa.images[0], fb.images[0])
            if steady is not None:
                steady["a"].update(fa.images[0])
                steady["b"].update(fb.images[0])
    result: dict[str, Any] = {
        "a": str(a),
        "b": str(b),
        "frames": {"a": count_a, "b": count_b, "equal": count_a == count_b},
        "size": {
            "a": [info_a.video.width, info_a.video.height],
            "b": [info_b.video.width, info_b.video.height],
        },
        "duration": {"a": info_a.duration, "b": info_b.duration},
        "max_pts_difference": max_pts_diff,
        "quality": _finite(quality.result(per_frame=per_frame)),
    }
    if per_frame:
        result["quality"]["time_per_frame"] = times
    if warp is not None and warp.per_frame:
        result["warping_error"] = _finite(warp.result().as_dict())
        if per_frame:  # step t -> t+1 of frame pairs: E(out)/E(in), None where the input is still
            result["warping_error"]["ratio_per_step"] = [
                (e_out / e_in) if e_in > 0 else None for e_in, e_out in warp.per_frame
            ]
    if steady is not None and steady["a"].magnitudes:
        result["temporal_consistency"] = {
            side: meter.result().as_dict(per_frame=per_frame) for side, meter in steady.items()
        }
    result["audio_offset"] = _audio_offset(a, b, info_a, info_b)
    return result


def compare_many(
    reference: str | Path, candidates: list[str | Path], **options: Any
) -> list[dict[str, Any]]:
    """``compare_videos(reference, c)`` for each candidate, one streaming pass each."""
    return [compare_videos(reference, c, **options) for c in candidates]


def _audio_offset(a: Any, b: Any, info_a: Any, info_b: Any) -> float | None:
    if not info_a.audio or not info_b.audio:
        return None
    rate = min(info_a.audio[0].sample_rate, info_b.audio[0].sample_rate, 16000)
    try:
        sa, _ = read_audio(a, rate, AUDIO_SECONDS)
        sb, _ = read_audio(b, rate, AUDIO_SECONDS)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if not len(sa) or not len(sb):
        return None
    return audio_offset(sa, sb, rate, max_lag=1.0)


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf: identical frames report PSNR as None with ``identical: true``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, float) and math.isinf(value):
            out[key] = None
            out["identical"] = True
        elif isinstance(value, list):
            out[key] = [None if isinstance(v, float) and math.isinf(v) else v for v in value]
        else:
            out[key] = value
    return out


def format_comparison(r: dict[str, Any]) -> str:
    q = r["quality"]
    lines = [
        f"frames      A {r['frames']['a']}  B {r['frames']['b']}"
        + ("" if r["frames"]["equal"] else "  (DIFFERENT)"),
        f"size        A {r['size']['a'][0]}x{r['size']['a'][1]}  "
        f"B {r['size']['b'][0]}x{r['size']['b'][1]}",
        f"duration    A {r['duration']['a']}  B {r['duration']['b']}",
        f"max PTS diff {r['max_pts_difference'] * 1000:.3f} ms",
        "PSNR        "
        + (
            "identical"
            if q.get("psnr_mean") is None
            else f"mean {q['psnr_mean']:.2f} dB, min {q['psnr_min']:.2f} dB"
        ),
        f"SSIM        mean {q['ssim_mean']:.4f}, min {q['ssim_min']:.4f}",
    ]
    w = r.get("warping_error")
    if w:
        ratio = "n/a" if w["ratio"] is None else f"{w['ratio']:.3f}"
        lines.append(f"warping err E(in) {w['e_in']:.6f}  E(out) {w['e_out']:.6f}  ratio {ratio}")
    t = r.get("temporal_consistency")
    if t:
        lines.append(
            f"temporal    A {t['a']['score']:.3f}  B {t['b']['score']:.3f}  (flow-"
            f"magnitude variance, {t['a']['method']}, sigma {t['a']['sigma']:g} px at "
            f"{t['a']['width']} px wide)"
        )
    offset = r["audio_offset"]
    lines.append(
        "audio offset "
        + ("n/a (no audio in both)" if offset is None else f"{offset * 1000:.2f} ms")
    )
    return "\n".join(lines)
