"""Stage 1, normalize: frames into the working space (16-bit full-range RGB).

The decoder has already turned YUV into RGB with the stream's own matrix and range, so what
is left is the bit depth and, for sources whose RGB still carries studio levels (16-235,
e.g. a limited-range file tagged as full range), the range. 8-bit frames become 16-bit
exactly (x 257), 10/12-bit frames arrive as rgb48 already; the later stages then round only
once, at the end of the chain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vt.errors import UsageError
from vt.media.frames import FrameBatch
from vt_kizuna.working import FloatStage

RANGES = ("full", "limited")


class Normalize(FloatStage):
    """rgb24/rgb48 in, rgb48 out; ``input_range="limited"`` expands 16-235 to 0-255."""

    name = "kizuna-normalize"
    output_layout = "rgb48"
    halo = 1  # pointwise: any strip works

    def __init__(self, input_range: str = "full", threads: int | None = None) -> None:
        super().__init__(threads)
        if input_range not in RANGES:
            raise UsageError(f"input_range must be one of {', '.join(RANGES)}, got {input_range!r}")
        self.input_range = input_range

    def apply(self, x: np.ndarray, context: Any = None) -> np.ndarray:
        # limited range: black at 16/255, white at 235/255 on every RGB channel
        x -= np.float32(16 / 255)
        x *= np.float32(255 / 219)
        return x

    def convert(self, batch: FrameBatch) -> FrameBatch:
        if self.input_range == "limited":
            return super().convert(batch)
        if batch.layout == "rgb48":
            return batch  # already the working space
        # exact 8 -> 16 bit: v * 257 maps 0..255 onto 0..65535
        return batch.with_images(
            np.multiply(batch.images, np.uint16(257), dtype=np.uint16), "rgb48"
        )
