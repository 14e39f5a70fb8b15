"""Per-frame resizing to the planned size.

``bicubic`` (default): libswscale's antialiased bicubic with the reference's kernel (Keys,
a = -0.5: ``param0=0:param1=0.5``; the filter widens when downscaling, as torchvision's
``antialias=True`` does), in FFmpeg's C reference arithmetic (``bitexact``), so the same on
every machine. Pixels differ from qwen-vl-utils' float path by rounding only (mean |diff|
~0.02 of 255 on real 1080p video, at most 1) and it needs no torch, so a file output never
imports it. ``bicubic-torch``: torch's uint8 antialiased bicubic kernel (the previous
default; mean |diff| ~0.13). ``bicubic-float``: the reference's exact float path (float32,
clamp, round): bit-identical to qwen-vl-utils for the same decoded frame, several times
slower. ``swscale``: FFmpeg's default bicubic (a = -0.6), through the core's resize.

A resizer takes an (H, W, 3) uint8 RGB array and returns an (h, w, 3) uint8 RGB array (any
strides: the torch methods return a view of their tensor).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from vt.errors import UsageError
from vt_qwen_preprocess.config import RESIZE_METHODS

Resizer = Callable[[np.ndarray], np.ndarray]


def _chw(frame: np.ndarray) -> Any:
    import torch

    if not frame.flags.writeable:  # memory-mapped cache entries are read-only
        frame = np.array(frame)
    return torch.from_numpy(frame).permute(2, 0, 1)


class KeysResizer:
    """libswscale bicubic with a = -0.5, through one FFmpeg filter graph per input size (the
    ``scale`` filter is the only way to set swscale's kernel parameters from PyAV)."""

    def __init__(self, height: int, width: int) -> None:
        self.size = (int(height), int(width))
        self._graphs: dict[tuple[int, int], Any] = {}

    def _graph(self, height: int, width: int) -> Any:
        import av

        graph = av.filter.Graph()
        src = graph.add_buffer(
            width=width, height=height, format="rgb24", time_base=Fraction(1, 25)
        )
        scale = graph.add(
            "scale",
            f"w={self.size[1]}:h={self.size[0]}:"
            "flags=bicubic+accurate_rnd+bitexact:param0=0:param1=0.5",
        )
        # planar GBR out: swscale's fast path; to_ndarray hands it back as (h, w, 3) RGB
        planar = graph.add("format", "gbrp")
        sink = graph.add("buffersink")
        src.link_to(scale)
        scale.link_to(planar)
        planar.link_to(sink)
        graph.configure()
        return graph

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import av

        height, width = frame.shape[:2]
        if (height, width) == self.size:
            return frame
        graph = self._graphs.get((height, width))
        if graph is None:
            graph = self._graphs[(height, width)] = self._graph(height, width)
        graph.push(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
        return graph.pull().to_ndarray()


def make_resizer(method: str, height: int, width: int) -> Resizer:
    """A function (H, W, 3) uint8 -> (height, width, 3) uint8."""
    size = (int(height), int(width))

    def same(frame: np.ndarray) -> bool:
        return frame.shape[0] == size[0] and frame.shape[1] == size[1]

    if method == "bicubic":
        return KeysResizer(height, width)
    if method == "bicubic-torch":
        import torch.nn.functional as F

        def resize_torch(frame: np.ndarray) -> np.ndarray:
            if same(frame):
                return frame
            out = F.interpolate(
                _chw(frame)[None], size=size, mode="bicubic", align_corners=False, antialias=True
            )
            return out[0].permute(1, 2, 0).numpy()

        return resize_torch
    if method == "bicubic-float":
        import torch
        import torch.nn.functional as F

        def resize_float(frame: np.ndarray) -> np.ndarray:
            if same(frame):
                return frame
            out = F.interpolate(
                _chw(frame)[None].float(),
                size=size,
                mode="bicubic",
                align_corners=False,
                antialias=True,
            )
            return out.clamp_(0, 255).round_().to(torch.uint8)[0].permute(1, 2, 0).numpy()

        return resize_float
    if method == "swscale":
        from vt.processors.resize import resize_images

        def resize_sws(frame: np.ndarray) -> np.ndarray:
            # the core's libswscale resize: cached scaling contexts, bit-exact bicubic
            return resize_images(frame, (size[1], size[0]), "bicubic")

        return resize_sws
    raise UsageError(f"unknown resize method {method!r} ({', '.join(RESIZE_METHODS)})")
