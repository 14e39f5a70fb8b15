"""Classical resampling in libswscale (the resampler FFmpeg's ``scale`` filter uses)."""

from __future__ import annotations

import av
import numpy as np

from vt.errors import UsageError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor

#: method name -> libswscale interpolation flag
METHODS = {
    "lanczos": "LANCZOS",
    "bicubic": "BICUBIC",
    "bilinear": "BILINEAR",
    "area": "AREA",
    "nearest": "POINT",
    "spline": "SPLINE",
    "gauss": "GAUSS",
}
_AV_FORMATS = {"rgb24": "rgb24", "rgb48": "rgb48le"}


def target_size(width: int, height: int, scale: float | None = None,
                size: tuple[int, int] | None = None, even: bool = False) -> tuple[int, int]:
    """Output size from a scale factor or an explicit (w, h) where -1 keeps the aspect ratio."""
    if size is not None:
        w, h = size
        if w == -1 and h == -1:
            raise UsageError("width and height cannot both be -1")
        if w == -1:
            w = round(width * h / height)
        if h == -1:
            h = round(height * w / width)
    elif scale is not None:
        if scale <= 0:
            raise UsageError(f"scale must be positive, got {scale}")
        w, h = round(width * scale), round(height * scale)
    else:
        raise UsageError("give a scale or a size")
    if even:
        w, h = w + (w % 2), h + (h % 2)
    if w <= 0 or h <= 0:
        raise UsageError(f"resize to {w}x{h} is empty")
    return int(w), int(h)


class Resize(FrameProcessor):
    """Resize frames with a libswscale method (lanczos by default)."""

    batch_size = 1
    pixel_formats = ("rgb24", "rgb48")

    def __init__(self, scale: float | None = None, size: tuple[int, int] | None = None,
                 method: str = "lanczos", even: bool = False) -> None:
        if method not in METHODS:
            raise UsageError(f"unknown resize method {method!r} (use {', '.join(METHODS)})")
        self.scale, self.size, self.method, self.even = scale, size, method, even
        self.name = f"resize:{method}"
        self._out: tuple[int, int] | None = None

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        self._out = target_size(fmt.width, fmt.height, self.scale, self.size, self.even)
        return FrameFormat(*self._out, fmt.pixel_format)

    def process(self, batch: FrameBatch) -> FrameBatch:
        assert self._out is not None, "configure() first"
        return batch.with_images(resize_images(batch.images, self._out, self.method,
                                               batch.pixel_format))


def resize_images(images: np.ndarray, size: tuple[int, int], method: str = "lanczos",
                  pixel_format: str = "rgb24") -> np.ndarray:
    """Resize (N, H, W, 3) RGB arrays to ``size`` = (w, h) in libswscale."""
    if (images.shape[2], images.shape[1]) == tuple(size):
        return images
    fmt = _AV_FORMATS[pixel_format]
    out = []
    for image in images:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        frame = frame.reformat(width=size[0], height=size[1], interpolation=METHODS[method])
        out.append(frame.to_ndarray(format=fmt))
    return np.stack(out)
