"""Output conversion: resized uint8 RGB frames -> the configured dtype, scaling, channel
order and layout: into a preallocated tensor (``FrameConverter``, for in-memory results), or
one NumPy frame at a time (``ArrayConverter``, for outputs streamed to a file: no torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from vt.errors import UsageError
from vt_qwen_preprocess.config import PreprocessConfig

_TORCH_DTYPES = {
    "uint8": "uint8",
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
}


def frame_shape(config: PreprocessConfig, height: int, width: int) -> tuple[int, int, int]:
    """One output frame's shape: (3, H, W) for the TCHW layout, (H, W, 3) for THWC."""
    return (3, height, width) if config.layout == "TCHW" else (height, width, 3)


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
        return self.torch.empty(
            (n, *self.frame_shape(height, width)), dtype=self.dtype, device=self.config.device
        )

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


class ArrayConverter:
    """``FrameConverter``'s conversion in NumPy, one frame at a time, so file outputs never
    import torch. Bit-identical to it: the same float32 operations (one multiply by the
    float32 scale, one subtraction of the float32 shift), the same casts (round to nearest
    even into float16, truncation into uint8). NumPy has no bfloat16: see ``supports``."""

    def __init__(self, config: PreprocessConfig, mean: tuple[float, ...], std: tuple[float, ...]):
        if not self.supports(config):
            raise ValueError(f"{config.dtype} output needs torch (FrameConverter)")
        self.dtype = np.dtype(config.dtype)
        self.chw = config.layout == "TCHW"
        self.order = [2, 1, 0] if config.channel_order == "bgr" else [0, 1, 2]
        self.scale: list[np.float32] | None = None
        self.shift = [np.float32(0.0)] * 3
        if config.normalize:
            self.scale = [np.float32(1.0 / (255.0 * std[c])) for c in self.order]
            self.shift = [np.float32(mean[c] / std[c]) for c in self.order]
        elif config.rescale:
            self.scale = [np.float32(1.0 / 255.0)] * 3

    @staticmethod
    def supports(config: PreprocessConfig) -> bool:
        return config.dtype != "bfloat16"

    def frame_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (3, height, width) if self.chw else (height, width, 3)

    def convert(self, frame: np.ndarray) -> np.ndarray:
        """One contiguous output frame from an (H, W, 3) uint8 RGB array."""
        out = np.empty(self.frame_shape(frame.shape[0], frame.shape[1]), dtype=self.dtype)
        if self.scale is None and self.order == [0, 1, 2] and not self.chw:
            out[...] = frame
            return out
        for dst, src in enumerate(self.order):
            plane: np.ndarray = frame[:, :, src]
            if self.scale is not None:
                values = plane.astype(np.float32)
                np.multiply(values, self.scale[dst], out=values)
                np.subtract(values, self.shift[dst], out=values)
                plane = values
            if self.chw:
                out[dst] = plane
            else:
                out[:, :, dst] = plane
        return out


def file_dtype(config: PreprocessConfig, raw_bfloat16: bool) -> np.dtype:
    """The NumPy dtype a file stores frames in: the output dtype, except bfloat16 (NumPy has
    none): float32 in ``.npy``/``.npz`` (as ``to_numpy`` hands it), or its raw bits as uint16
    for formats that know bfloat16 (safetensors' BF16)."""
    if config.dtype != "bfloat16":
        return np.dtype(config.dtype)
    return np.dtype(np.uint16) if raw_bfloat16 else np.dtype(np.float32)


def file_frame_converter(
    config: PreprocessConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    raw_bfloat16: bool = False,
) -> Callable[[np.ndarray], np.ndarray]:
    """(H, W, 3) uint8 RGB -> one frame as a file stores it (``file_dtype``), on the CPU
    whatever ``config.device`` says. NumPy's conversion; torch's only for bfloat16."""
    if ArrayConverter.supports(config):
        return ArrayConverter(config, mean, std).convert
    import torch

    conv = FrameConverter(replace(config, device="cpu"), mean, std)
    if raw_bfloat16:
        return lambda frame: conv.convert(frame).view(torch.int16).numpy().view(np.uint16)
    return lambda frame: conv.convert(frame).to(torch.float32).numpy()


def _as_chw(frame: Any) -> Any:
    if isinstance(frame, np.ndarray):
        import torch

        if not frame.flags.writeable:
            frame = np.array(frame)
        return torch.from_numpy(frame).permute(2, 0, 1)
    return frame
