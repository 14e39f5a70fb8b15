"""Letterbox: an aspect-preserving resize into a target x target square, padding centred.

Scaling is libswscale's (the core's ``resize_images`` and cached ``reformat``). Decoded
4:2:0 frames are scaled and padded in YUV (``process_frame``): a letterbox-only job never
converts to RGB, as ffmpeg's ``scale,pad`` does not.
"""

from __future__ import annotations

import re

import av
import numpy as np

from vt.errors import UsageError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt.media.swscale import reformat
from vt.processors.resize import METHODS, check_method, resize_images

_NAMED = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
}


def parse_color(text: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """``black``, ``#RRGGBB`` or ``R,G,B`` (0-255) -> an RGB triple."""
    if isinstance(text, tuple):
        rgb = text
    else:
        value = str(text).strip().lower()
        if value in _NAMED:
            return _NAMED[value]
        if re.fullmatch(r"#?[0-9a-f]{6}", value):
            value = value.lstrip("#")
            return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
        parts = value.split(",")
        try:
            rgb = tuple(int(p) for p in parts)  # type: ignore[assignment]
        except ValueError:
            rgb = ()  # type: ignore[assignment]
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise UsageError(
            f"pad colour must be a name (black, white, gray), #RRGGBB or R,G,B; got {text!r}"
        )
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def fit(width: int, height: int, target: int) -> tuple[int, int, int, int]:
    """``(inner_w, inner_h, x, y)``: the content's size and offset inside target x target.

    Sizes and offsets are even so that 4:2:0 chroma lines up with luma; the content keeps its
    aspect ratio to within one pixel of rounding.
    """
    scale = target / max(width, height)
    w = max(2, min(target, 2 * round(width * scale / 2)))
    h = max(2, min(target, 2 * round(height * scale / 2)))
    x = (target - w) // 2 // 2 * 2
    y = (target - h) // 2 // 2 * 2
    return w, h, x, y


def _yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, U, V of an RGB colour (what encoders assume for SD sizes)."""
    r, g, b = (c / 255 for c in rgb)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return round(y), round(u), round(v)


class Letterbox(FrameProcessor):
    """Fit frames into ``size`` x ``size`` keeping their aspect ratio; pad the rest."""

    name = "letterbox"
    batch_size = 8
    layouts = ("rgb24", "rgb48")
    accepts_av_frames = True

    def __init__(
        self,
        size: int = 224,
        pad_color: str | tuple[int, int, int] = "black",
        method: str = "lanczos",
    ) -> None:
        if int(size) < 2 or int(size) % 2:
            raise UsageError(f"target size must be an even number >= 2, got {size}")
        self.size = int(size)
        self.color = parse_color(pad_color)
        self.method = check_method(method)
        self._fit: tuple[int, int, int, int] | None = None
        self._yuv_canvas: np.ndarray | None = None

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        self._fit = fit(fmt.width, fmt.height, self.size)
        self._yuv_canvas = None
        return FrameFormat(self.size, self.size, fmt.layout)

    def process(self, batch: FrameBatch) -> FrameBatch:
        assert self._fit is not None, "configure() first"
        w, h, x, y = self._fit
        images = batch.images
        inner = resize_images(images, (w, h), self.method)
        fill = np.array(self.color, dtype=np.uint32)
        if images.dtype == np.uint16:
            fill = fill * 257
        out = np.empty((len(images), self.size, self.size, 3), dtype=images.dtype)
        out[:] = fill.astype(images.dtype)
        out[:, y : y + h, x : x + w] = inner
        return batch.with_images(out)

    def process_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Scale in YUV 4:2:0 (other formats are converted to it by the same swscale call),
        then place the planes on a padded canvas."""
        assert self._fit is not None, "configure() first"
        w, h, x, y = self._fit
        t = self.size
        scaled = reformat(
            frame, width=w, height=h, format="yuv420p", interpolation=METHODS[self.method]
        )
        planes = scaled.to_ndarray().reshape(-1)
        if self._yuv_canvas is None:
            canvas = np.empty(t * t * 3 // 2, dtype=np.uint8)
            yy, uu, vv = _yuv(self.color)
            canvas[: t * t], canvas[t * t : t * t * 5 // 4], canvas[t * t * 5 // 4 :] = yy, uu, vv
            self._yuv_canvas = canvas
        out = self._yuv_canvas.copy()
        oy = out[: t * t].reshape(t, t)
        ou = out[t * t : t * t * 5 // 4].reshape(t // 2, t // 2)
        ov = out[t * t * 5 // 4 :].reshape(t // 2, t // 2)
        oy[y : y + h, x : x + w] = planes[: w * h].reshape(h, w)
        c = (w // 2) * (h // 2)
        ou[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[w * h : w * h + c].reshape(
            h // 2, w // 2
        )
        ov[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = planes[w * h + c :].reshape(
            h // 2, w // 2
        )
        result = av.VideoFrame.from_ndarray(out.reshape(t * 3 // 2, t), format="yuv420p")
        result.pts = frame.pts
        if frame.time_base is not None:
            result.time_base = frame.time_base
        return result
