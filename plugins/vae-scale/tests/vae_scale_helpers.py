"""Helpers shared by vt-vae-scale's tests (a uniquely named module: every plugin has a
conftest, so ``from conftest import`` picks whichever was imported first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def solid_clip(
    path: Path,
    width: int,
    height: int,
    frames: int = 4,
    audio: bool = False,
    color: tuple[int, int, int] = (200, 150, 90),
) -> Path:
    """A clip of one bright colour with light noise: its non-pad area is easy to measure."""
    import av

    from vt.testing import make_video

    if audio:  # make_video's pattern with a tone; the content test clips need no audio
        return make_video(path, frames=frames, width=width, height=height, audio=True)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[:] = color
            img += rng.integers(0, 8, img.shape, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_frames(path: str | Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def content_box(image: np.ndarray, threshold: int = 50) -> tuple[int, int]:
    """(width, height) of the rows/columns that are mostly not the black pad."""
    bright = image.max(axis=2) > threshold
    cols = np.flatnonzero(bright.mean(axis=0) > 0.5)
    rows = np.flatnonzero(bright.mean(axis=1) > 0.5)
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
