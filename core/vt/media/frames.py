"""Frames as they flow through the pipeline: batches of RGB pixels that keep their timestamps.

A batch holds its pixels in one of two forms, and makes the other only when a consumer asks:

- host: an ``(N, H, W, 3)`` numpy array, uint8 (``rgb24``) or uint16 (``rgb48``);
- tensor: an ``(N, 3, H, W)`` floating-point torch tensor in [0, 1], on any device.

``FrameBatch.images`` is the host array and ``FrameBatch.to_tensor(device, dtype)`` the tensor;
the first conversion each way is cached on the batch. Torch processors chained on one device
therefore hand tensors to each other with no trip through host memory, and the encoder makes
the host array once, at the end of the chain. :func:`array_to_tensor` and
:func:`tensor_to_array` are the one conversion every plugin uses. Torch is imported only when
a tensor is made or converted: a run without torch processors never imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from vt.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from typing_extensions import TypeIs

# Pixel layouts a batch can hold: 8-bit and 16-bit interleaved RGB.
LAYOUT_DTYPES = {"rgb24": "uint8", "rgb48": "uint16"}  # numpy dtype names
LAYOUT_MAX = {"rgb24": 255.0, "rgb48": 65535.0}


@dataclass(frozen=True)
class FrameFormat:
    """The shape of the frames a stage emits."""

    width: int
    height: int
    layout: str = "rgb24"

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def is_tensor(value: object) -> TypeIs[torch.Tensor]:
    """Whether ``value`` is a torch tensor (without importing torch: if torch is not loaded,
    nothing can be a tensor)."""
    if isinstance(value, np.ndarray):
        return False
    # another thread may be importing torch right now: a half-made module has no tensors yet
    tensor_type = getattr(sys.modules.get("torch"), "Tensor", None)
    return tensor_type is not None and isinstance(value, tensor_type)


def array_to_tensor(
    array: np.ndarray, layout: str, device: Any = "cpu", dtype: Any = None
) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8/uint16 array -> ``(N, 3, H, W)`` float tensor in [0, 1] on
    ``device`` (``dtype`` default float32). The integer pixels cross to the device, not floats."""
    import torch

    if array.dtype == np.uint16:  # torch has no uint16 arithmetic on every device
        array = array.astype(np.int32)
    t = torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).to(dtype or torch.float32).div_(LAYOUT_MAX[layout])


def tensor_to_array(tensor: torch.Tensor, layout: str) -> np.ndarray:
    """``(N, 3, H, W)`` [0, 1] tensor (any device, any float dtype) -> ``(N, H, W, 3)``
    uint8/uint16 array: clamped and rounded on the device, integers copied to the host.
    The tensor itself is left untouched."""
    import torch

    scale = LAYOUT_MAX[layout]
    t = tensor.detach().float().clamp(0, 1).mul_(scale).round_()
    t = t.to(torch.uint8 if layout == "rgb24" else torch.int32)
    return t.permute(0, 2, 3, 1).cpu().numpy().astype(LAYOUT_DTYPES[layout], copy=False)


class FrameBatch:
    """``N`` frames with each frame's PTS and source index, as a host array or a tensor.

    ``images`` may be an ``(N, H, W, 3)`` uint8/uint16 numpy array (the host form) or an
    ``(N, 3, H, W)`` floating torch tensor in [0, 1] on any device (the tensor form);
    ``layout`` is the host layout either form stands for (``rgb24`` or ``rgb48``).
    PTS are in ``time_base`` units and are carried unchanged by processors, so the encoder
    writes every frame at its input time (CFR and VFR alike).

    Treat the arrays and tensors a batch hands out as read-only (copy before changing them in
    place): the batch caches them, and a frame passed through on error is read again.
    """

    __slots__ = ("_array", "_tensor", "pts", "time_base", "indices", "layout")

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        pts: list[int | None],
        time_base: Fraction,
        indices: list[int],
        layout: str = "rgb24",
    ) -> None:
        if layout not in LAYOUT_DTYPES:
            raise ValueError(f"frame layout must be one of {', '.join(LAYOUT_DTYPES)}")
        self._array: np.ndarray | None = None
        self._tensor: torch.Tensor | None = None
        if is_tensor(images):
            if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
                raise ValueError(
                    f"tensor frames must be (N, 3, H, W) floating point, got "
                    f"{tuple(images.shape)} {images.dtype}"
                )
            self._tensor = images
        else:
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"frames must be (N, H, W, 3), got {images.shape}")
            expected = LAYOUT_DTYPES[layout]
            if images.dtype != expected:
                raise ValueError(f"{layout} frames must be {np.dtype(expected)}")
            self._array = images
        self.pts = pts
        self.time_base = time_base
        self.indices = indices
        self.layout = layout
        if len(pts) != len(self) or len(indices) != len(self):
            raise ValueError("pts and indices must have one entry per frame")

    # -- forms -----------------------------------------------------------------------------
    @property
    def images(self) -> np.ndarray:
        """The host array ``(N, H, W, 3)``; converted from the tensor once, then cached."""
        if self._array is None:
            assert self._tensor is not None
            self._array = tensor_to_array(self._tensor, self.layout)
        return self._array

    def to_tensor(
        self, device: Any = None, dtype: Any = None, channels_last: bool = False
    ) -> torch.Tensor:
        """The ``(N, 3, H, W)`` tensor in [0, 1] on ``device`` (default: where the batch's
        tensor is, else the CPU). A tensor already on that device (and of ``dtype``, when one
        is given) comes back as it is; one made from the host array is cached."""
        if self._tensor is None:
            self._tensor = array_to_tensor(self.images, self.layout, device or "cpu", dtype)
        t = self._tensor
        if device is not None or dtype is not None:
            t = t.to(device=device, dtype=dtype)  # the same tensor when nothing changes
        if channels_last:
            import torch

            t = t.contiguous(memory_format=torch.channels_last)
        return t

    @property
    def has_tensor(self) -> bool:
        """Whether the batch holds a tensor (given, or made by ``to_tensor``)."""
        return self._tensor is not None

    @property
    def has_array(self) -> bool:
        """Whether the batch holds the host array (given, or made by ``images``)."""
        return self._array is not None

    @property
    def device(self) -> torch.device | None:
        """The device of the batch's tensor; None when it holds only the host array."""
        return None if self._tensor is None else self._tensor.device

    # -- shape -----------------------------------------------------------------------------
    def __len__(self) -> int:
        pixels = self._array if self._array is not None else self._tensor
        return int(pixels.shape[0])  # type: ignore[union-attr]

    @property
    def width(self) -> int:
        if self._array is not None:
            return int(self._array.shape[2])
        return int(self._tensor.shape[3])  # type: ignore[union-attr]

    @property
    def height(self) -> int:
        if self._array is not None:
            return int(self._array.shape[1])
        return int(self._tensor.shape[2])  # type: ignore[union-attr]

    @property
    def format(self) -> FrameFormat:
        return FrameFormat(self.width, self.height, self.layout)

    @property
    def times(self) -> list[float | None]:
        """Presentation times in seconds."""
        return [None if p is None else float(p * self.time_base) for p in self.pts]

    def __repr__(self) -> str:
        form = f"tensor on {self.device}" if self.has_tensor else "array"
        return (
            f"FrameBatch({len(self)}x{self.width}x{self.height} {self.layout}, "
            f"{form}, indices={self.indices[:1]}..)"
        )

    # -- new batches -----------------------------------------------------------------------
    def with_images(self, images: np.ndarray, layout: str | None = None) -> FrameBatch:
        """The same frames (PTS, indices) with new host pixels, e.g. after a resize."""
        return FrameBatch(images, self.pts, self.time_base, self.indices, layout or self.layout)

    def from_tensor(self, tensor: torch.Tensor, layout: str | None = None) -> FrameBatch:
        """The same frames (PTS, indices) with pixels from an ``(N, 3, H, W)`` [0, 1] tensor,
        kept on its device: nothing is copied until a consumer asks for ``images``."""
        return FrameBatch(tensor, self.pts, self.time_base, self.indices, layout or self.layout)

    def with_timing(self, pts: list[int | None], time_base: Fraction | None = None) -> FrameBatch:
        """The same pixels (whatever forms the batch holds) with new timestamps."""
        if len(pts) != len(self):
            raise ValueError("pts must have one entry per frame")
        return self._view(slice(None), pts, time_base or self.time_base)

    def __getitem__(self, frames: slice) -> FrameBatch:
        """Frames ``start:stop`` as a batch (views of whatever forms this batch holds)."""
        if not isinstance(frames, slice) or frames.step not in (None, 1):
            raise TypeError("FrameBatch takes a start:stop slice")
        return self._view(frames, self.pts[frames], self.time_base)

    def _view(self, frames: slice, pts: list[int | None], time_base: Fraction) -> FrameBatch:
        out = FrameBatch.__new__(FrameBatch)
        out._array = None if self._array is None else self._array[frames]
        out._tensor = None if self._tensor is None else self._tensor[frames]
        out.pts, out.indices = pts, self.indices[frames]
        out.time_base, out.layout = time_base, self.layout
        return out

    @staticmethod
    def concat(batches: Sequence[FrameBatch]) -> FrameBatch:
        """One batch of these frames in order: arrays joined on the host when every batch has
        one, else tensors joined on the first tensor's device (no host round trip)."""
        first = batches[0]
        if len(batches) == 1:
            return first
        pts = [p for b in batches for p in b.pts]
        indices = [i for b in batches for i in b.indices]
        if all(b.has_array for b in batches):
            images: Any = np.concatenate([b.images for b in batches])
        else:
            import torch

            lead = next(b for b in batches if b.has_tensor).to_tensor()
            images = torch.cat([b.to_tensor(lead.device, lead.dtype) for b in batches])
        return FrameBatch(images, pts, first.time_base, indices, first.layout)
