"""Classical resampling in libswscale (the resampler FFmpeg's ``scale`` filter uses)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import av

from vt.errors import UsageError
from vt.lazy import lazy_module
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt.media.swscale import reformat

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

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


def target_size(
    width: int,
    height: int,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    even: bool = False,
) -> tuple[int, int]:
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


def check_method(method: str) -> str:
    method = method.lower()
    if method not in METHODS:
        raise UsageError(f"unknown resize method {method!r} (use {', '.join(METHODS)})")
    return method


class Resize(FrameProcessor):
    """Resize frames with a libswscale method (lanczos by default).

    On decoded frames (``process_frame``) it scales in the frame's own pixel format, as
    ffmpeg's ``scale`` filter does, so a resize-only job needs no RGB round trip.
    """

    batch_size = 1
    layouts = ("rgb24", "rgb48")
    accepts_av_frames = True

    def __init__(
        self,
        scale: float | None = None,
        size: tuple[int, int] | None = None,
        method: str = "lanczos",
        even: bool = False,
    ) -> None:
        self.scale, self.size, self.method, self.even = scale, size, check_method(method), even
        self.name = f"resize:{self.method}"
        self._out: tuple[int, int] | None = None

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        self._out = target_size(fmt.width, fmt.height, self.scale, self.size, self.even)
        return FrameFormat(*self._out, fmt.layout)

    def process(self, batch: FrameBatch) -> FrameBatch:
        assert self._out is not None, "configure() first"
        return batch.with_images(resize_images(batch.images, self._out, self.method))

    def process_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        assert self._out is not None, "configure() first"
        return reformat(
            frame, width=self._out[0], height=self._out[1], interpolation=METHODS[self.method]
        )


#: packed RGB in, planar GBR out: libswscale's fast path, returned as the same RGB array
_SCALE_FORMATS = {"uint8": ("rgb24", "gbrp"), "uint16": ("rgb48le", "gbrp16le")}


def resize_images(images: np.ndarray, size: tuple[int, int], method: str = "lanczos") -> np.ndarray:
    """Resize (N, H, W, 3) or (H, W, 3) uint8/uint16 RGB arrays to ``size`` = (w, h).

    Scales into planar GBR, which libswscale does 2-2.5x faster than packed RGB; lanczos,
    bicubic and nearest are bit-identical to the packed path.
    """
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.dtype.name not in _SCALE_FORMATS:
        raise UsageError(f"cannot resize {batch.dtype} images (uint8 or uint16 RGB only)")
    width, height = int(size[0]), int(size[1])
    if batch.shape[1:3] == (height, width):
        return images
    packed, planar = _SCALE_FORMATS[batch.dtype.name]
    flag = METHODS[check_method(method)]
    out = np.empty((batch.shape[0], height, width, 3), dtype=batch.dtype)
    for i, image in enumerate(batch):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=packed)
        out[i] = reformat(
            frame, width=width, height=height, format=planar, interpolation=flag
        ).to_ndarray()
    return out[0] if single else out
