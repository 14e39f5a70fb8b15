"""Frames as they flow through the pipeline: batches of RGB arrays that keep their timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# Pixel layouts a batch can hold: 8-bit and 16-bit interleaved RGB.
PIXEL_DTYPES = {"rgb24": np.uint8, "rgb48": np.uint16}
PIXEL_MAX = {"rgb24": 255.0, "rgb48": 65535.0}


@dataclass(frozen=True)
class FrameFormat:
    """The shape of the frames a stage emits."""

    width: int
    height: int
    pixel_format: str = "rgb24"

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass
class FrameBatch:
    """``N`` frames as one ``(N, H, W, 3)`` array, with each frame's PTS and source index.

    PTS are in ``time_base`` units and are carried unchanged by processors, so the encoder
    writes every frame at its input time (CFR and VFR alike).
    """

    images: np.ndarray
    pts: list[int | None]
    time_base: Fraction
    indices: list[int]
    pixel_format: str = "rgb24"

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3), got {self.images.shape}")
        n = self.images.shape[0]
        if len(self.pts) != n or len(self.indices) != n:
            raise ValueError("pts and indices must have one entry per frame")
        expected = PIXEL_DTYPES[self.pixel_format]
        if self.images.dtype != expected:
            raise ValueError(f"{self.pixel_format} frames must be {np.dtype(expected)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def format(self) -> FrameFormat:
        return FrameFormat(self.width, self.height, self.pixel_format)

    @property
    def times(self) -> list[float | None]:
        """Presentation times in seconds."""
        return [None if p is None else float(p * self.time_base) for p in self.pts]

    def with_images(self, images: np.ndarray, pixel_format: str | None = None) -> FrameBatch:
        """The same frames (PTS, indices) with new pixels, e.g. after a resize."""
        return replace(self, images=images, pixel_format=pixel_format or self.pixel_format)

    @staticmethod
    def concat(batches: Sequence[FrameBatch]) -> FrameBatch:
        first = batches[0]
        return FrameBatch(
            images=np.concatenate([b.images for b in batches]),
            pts=[p for b in batches for p in b.pts],
            time_base=first.time_base,
            indices=[i for b in batches for i in b.indices],
            pixel_format=first.pixel_format,
        )

    # -- torch interop (torch is imported only when used) --------------------------------------
    def to_tensor(
        self,
        device: Any = "cpu",
        dtype: Any = None,
        channels_last: bool = False,
    ) -> torch.Tensor:
        """``(N, 3, H, W)`` float tensor in [0, 1] on ``device``."""
        import torch

        dtype = dtype or torch.float32
        array = self.images
        if array.dtype == np.uint16:  # torch has no uint16 arithmetic on every device
            array = array.astype(np.int32)
        t = torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)
        t = t.permute(0, 3, 1, 2).to(dtype).div_(PIXEL_MAX[self.pixel_format])
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def from_tensor(self, tensor: torch.Tensor) -> FrameBatch:
        """These frames with pixels from a ``(N, 3, H, W)`` [0, 1] tensor (clamped, rounded)."""
        scale = PIXEL_MAX[self.pixel_format]
        t = tensor.detach().float().clamp_(0, 1).mul_(scale).round_()
        array = t.permute(0, 2, 3, 1).to("cpu").numpy().astype(PIXEL_DTYPES[self.pixel_format])
        return self.with_images(array)
