"""Helpers for vt-cogvideo's tests (a uniquely named module: ``conftest`` is ambiguous when
the core's and the plugins' tests run together)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_frames(path: Path) -> np.ndarray:
    """All frames of a video as (N, H, W, 3) uint8."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
