"""The loaded super-resolution model every adapter returns.

Modelled on spandrel's descriptor: a model knows its scale, channels, the dtypes it supports
and its input size requirements, and is called with an ``(N, C, H, W)`` float tensor in
[0, 1] on its device, returning ``(N, C, H*scale, W*scale)`` in [0, 1]. Tiling, batching,
OOM recovery and the final resample live in :mod:`vt_upscale.upscaler`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vt.errors import UsageError, VtError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class SizeRequirements:
    """Input sizes a model accepts; inputs are padded to meet them, outputs cropped back."""

    minimum: int = 0
    multiple_of: int = 1
    square: bool = False
    fixed: tuple[int, int] | None = None  # (height, width) of a static-shape model

    def padded(self, height: int, width: int) -> tuple[int, int]:
        """The smallest accepted (height, width) at least as large as the input."""
        if self.fixed is not None:
            return self.fixed
        h, w = max(height, self.minimum), max(width, self.minimum)
        if self.square:
            h = w = max(h, w)
        m = max(self.multiple_of, 1)
        return -(-h // m) * m, -(-w // m) * m


def torch_dtype(name: str) -> torch.dtype:
    import torch

    try:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
    except KeyError:
        raise UsageError(f"unknown dtype {name!r} (use fp32, fp16 or bf16)") from None


def resolve_device(device: str | None) -> str:
    """``auto`` becomes ``cuda`` when a CUDA device is usable, else ``cpu``."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VtError(f"device {device!r} requested but CUDA is not available here")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise VtError(f"no CUDA device {device!r} ({torch.cuda.device_count()} present)")
        return device
    if device in ("cpu", "mps"):
        return device
    raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda[:i])")


class SRModel:
    """A loaded super-resolution model (see the module docstring for the contract)."""

    backend: str = "?"
    name: str = "model"
    scale: int = 1
    input_channels: int = 3
    output_channels: int = 3
    supports_half: bool = False
    supports_bfloat16: bool = False
    size_requirements: SizeRequirements = SizeRequirements()
    #: frames per call the backend takes at once (None: any)
    max_batch: int | None = None
    #: whether tiles of the input give the same result as the whole input
    tiling: str = "supported"  # "supported" | "discouraged" | "internal"
    device: str = "cpu"
    dtype: str = "fp32"
    #: devices and dtypes this backend can run on at all
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("fp32",)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_dtype(self, dtype: str, device: str) -> None:
        """Raise a one-line ``VtError`` when this model cannot run in ``dtype`` on ``device``."""
        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r} (use fp32, fp16 or bf16)")
        if dtype not in self.dtypes:
            raise VtError(
                f"{self.name}: the {self.backend} adapter runs in "
                f"{'/'.join(self.dtypes)} only, not {dtype}"
            )
        if dtype == "fp16" and not self.supports_half:
            raise VtError(f"{self.name}: this model does not support fp16 (use fp32 or bf16)")
        if dtype == "bf16" and not self.supports_bfloat16:
            raise VtError(f"{self.name}: this model does not support bf16 (use fp32)")
        if dtype == "fp16" and not device.startswith("cuda"):
            raise VtError(f"fp16 needs a CUDA device (device is {device}); use fp32 or bf16")
        if dtype == "bf16" and device.startswith("cuda"):
            import torch

            if not torch.cuda.is_bf16_supported():
                raise VtError(f"{device} does not support bf16; use fp16 or fp32")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "scale": self.scale,
            "channels": [self.input_channels, self.output_channels],
            "device": self.device,
            "dtype": self.dtype,
            "supports_half": self.supports_half,
            "supports_bfloat16": self.supports_bfloat16,
        }

    def close(self) -> None:
        """Release the model's resources."""
