"""Helpers shared by vt-kizuna's tests."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import numpy as np

from vt.media.frames import FrameBatch, FrameFormat


def batches(frames: np.ndarray, size: int = 1, start: int = 0) -> list[FrameBatch]:
    """Frames as FrameBatches of ``size``, PTS = index (time base 1/25)."""
    out = []
    for i in range(0, len(frames), size):
        chunk = frames[i : i + size]
        idx = list(range(start + i, start + i + len(chunk)))
        fmt = "rgb48" if frames.dtype == np.uint16 else "rgb24"
        out.append(FrameBatch(np.ascontiguousarray(chunk), idx, Fraction(1, 25), idx, fmt))
    return out


def run_chain(stages: list[Any], frames: np.ndarray, size: int = 1, start: int = 0) -> FrameBatch:
    """Frames through processors in order, flushing at the end, as the pipeline does;
    returns everything that came out, concatenated."""
    fmt = FrameFormat(
        frames.shape[2], frames.shape[1], "rgb48" if frames.dtype == np.uint16 else "rgb24"
    )
    for stage in stages:
        fmt = stage.configure(fmt)
    out: list[FrameBatch] = []

    def push(batch: FrameBatch, first: int) -> None:
        current = [batch]
        for stage in stages[first:]:
            produced = []
            for b in current:
                result = stage.process(b)
                if result is not None and len(result):
                    produced.append(result)
            current = produced
        out.extend(current)

    for batch in batches(frames, size, start):
        push(batch, 0)
    for i, stage in enumerate(stages):
        for held in stage.flush():
            push(held, i + 1)
    return FrameBatch.concat(out)


def to8(images: np.ndarray) -> np.ndarray:
    """uint16 frames to uint8 (rounded), uint8 unchanged."""
    if images.dtype == np.uint8:
        return images
    return np.clip(images.astype(np.float32) / 257.0 + 0.5, 0, 255).astype(np.uint8)


def mean_psnr(ref: np.ndarray, out: np.ndarray) -> float:
    from vt.metrics import psnr

    return float(np.mean([psnr(a, b) for a, b in zip(ref, out)]))


def mean_ssim(ref: np.ndarray, out: np.ndarray) -> float:
    from vt.metrics import ssim

    return float(np.mean([ssim(a, b) for a, b in zip(ref, out)]))


def encode_decode(
    frames: np.ndarray, codec: str = "libx264", options: dict[str, str] | None = None
) -> np.ndarray:
    """Frames through a lossy codec and back (in memory): real compression artefacts."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream(codec, rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
