"""Output conversion: resized uint8 RGB frames -> the configured dtype, scaling, channel
order and layout, written into a preallocated tensor."""

from __future__ import annotations

from typing import Any

import numpy as np

from vt.errors import UsageError
from vt_qwen_preprocess.config import PreprocessConfig

_TORCH_DTYPES = {"uint8": "uint8", "float32": "float32", "float16": "float16",
                 "bfloat16": "bfloat16"}


class FrameConverter:
    """(H, W, 3) uint8 RGB -> one output frame (dtype, scaling, channel order, layout).

    Writes straight into a preallocated output, one channel plane at a time (a strided read
    into a contiguous write is several times faster than permuting whole frames)."""

    def __init__(self, config: PreprocessConfig, mean: tuple[float, ...], std: tuple[float, ...]):
        import torch

        self.torch = torch
        self.config = config
        try:
            device = torch.device(config.device)
        except RuntimeError:
            raise UsageError(f"unknown device {config.device!r} (cpu, cuda, cuda:1...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"device {config.device!r} requested but no CUDA GPU is available")
        self.dtype = getattr(torch, _TORCH_DTYPES[config.dtype])
        self.chw = config.layout == "TCHW"
        self.order = [2, 1, 0] if config.channel_order == "bgr" else [0, 1, 2]
        self.scale: list[float] | None = None
        self.shift: list[float] = [0.0, 0.0, 0.0]
        if config.normalize:
            self.scale = [1.0 / (255.0 * std[c]) for c in self.order]
            self.shift = [mean[c] / std[c] for c in self.order]
        elif config.rescale:
            self.scale = [1.0 / 255.0] * 3

    def frame_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (3, height, width) if self.chw else (height, width, 3)

    def allocate(self, n: int, height: int, width: int) -> Any:
        return self.torch.empty((n, *self.frame_shape(height, width)), dtype=self.dtype,
                                device=self.config.device)

    def convert(self, frame: Any) -> Any:
        """One output frame from a (3, H, W) uint8 tensor or an (H, W, 3) uint8 array."""
        chw = _as_chw(frame)
        out = self.allocate(1, chw.shape[1], chw.shape[2])
        self.write(out, 0, chw)
        return out[0]

    def write(self, out: Any, position: int, frame: Any) -> None:
        """Convert one frame (a (3, H, W) uint8 tensor or (H, W, 3) array) into ``out``."""
        chw = _as_chw(frame)
        target = out[position]
        if not self.chw:
            target = target.permute(2, 0, 1)  # a (3, H, W) view of the (H, W, 3) slot
        if self.scale is None and self.order == [0, 1, 2]:
            target.copy_(chw)  # one pass: layout and dtype conversion together
            return
        for dst, src in enumerate(self.order):
            plane = chw[src]
            if self.scale is not None:
                plane = plane.to(self.torch.float32).mul_(self.scale[dst]).sub_(self.shift[dst])
            target[dst].copy_(plane)


def _as_chw(frame: Any) -> Any:
    if isinstance(frame, np.ndarray):
        import torch

        if not frame.flags.writeable:
            frame = np.array(frame)
        return torch.from_numpy(frame).permute(2, 0, 1)
    return frame


def hwc_array(chw: Any) -> np.ndarray:
    """A (3, H, W) uint8 tensor as an (H, W, 3) array (what the frame cache stores)."""
    return chw.permute(1, 2, 0).contiguous().numpy()
