"""Host pixels <-> the planar [0, 1] float arrays CPU runtimes (ncnn, onnxruntime) take.

The arithmetic is the core's (``vt.media.frames``: divide by the peak on the way in; clamp,
scale and round half to even on the way out), in numpy, so a backend that runs on host
arrays gives the same pixels as the torch relay did, without importing torch.
"""

from __future__ import annotations

import numpy as np

#: the largest value of each host pixel dtype
PEAKS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8/uint16 -> C-contiguous ``(3, H, W)`` float32 in [0, 1], in one
    pass straight into the planar array (no interleaved float copy in between)."""
    h, w, c = image.shape
    out = np.empty((c, h, w), np.float32)
    np.copyto(out, image.transpose(2, 0, 1))
    out /= PEAKS[image.dtype]
    return out


def from_unit_float(chw: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] (changed in place) -> ``(H, W, 3)`` ``dtype`` pixels."""
    peak = PEAKS[np.dtype(dtype)]
    if chw.dtype != np.float32:
        chw = chw.astype(np.float32)
    np.clip(chw, 0.0, 1.0, out=chw)
    chw *= peak
    np.rint(chw, out=chw)
    out = np.empty((*chw.shape[1:], chw.shape[0]), dtype)
    np.copyto(out, chw.transpose(1, 2, 0), casting="unsafe")
    return out
