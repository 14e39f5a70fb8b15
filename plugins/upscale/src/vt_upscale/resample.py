"""Classical resampling: the core's libswscale resizer (FFmpeg's ``scale`` filter), reused.

Thin helpers over :mod:`vt.processors.resize` so the AI path's final resample and the
classical path are the very same code as ``vt``'s ``resize`` processor.
"""

from __future__ import annotations

import numpy as np

from vt.errors import UsageError
from vt.processors.resize import METHODS, resize_images, target_size

__all__ = ["METHODS", "check_method", "resize", "scaled_size"]


def check_method(method: str) -> str:
    method = method.lower()
    if method not in METHODS:
        raise UsageError(f"unknown resize method {method!r} (use {', '.join(METHODS)})")
    return method


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Output size for a scale factor (rounded)."""
    return target_size(width, height, scale=scale)


def resize(images: np.ndarray, width: int, height: int, method: str = "lanczos",
           threads: int = 0) -> np.ndarray:
    """Resize ``(N, H, W, 3)`` or ``(H, W, 3)`` uint8/uint16 RGB images with libswscale."""
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.dtype not in (np.uint8, np.uint16):
        raise UsageError(f"cannot resize {batch.dtype} images (uint8 or uint16 RGB only)")
    pixel_format = "rgb48" if batch.dtype == np.uint16 else "rgb24"
    out = resize_images(batch, (width, height), check_method(method), pixel_format)
    return out[0] if single else out
