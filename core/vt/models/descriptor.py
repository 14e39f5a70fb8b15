"""What every model adapter returns: a typed description of a loaded model and the model.

The shape follows spandrel's ``ModelDescriptor``: a caller asks a loaded model what it does
(task, scale, channels), what it accepts (size requirements, tiling), where it can run
(devices, dtypes) and where its weights came from, then calls it. Adapters subclass this.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from vt.errors import UsageError, VtError

DTYPES = ("fp32", "fp16", "bf16")


class UnsupportedModelConfig(UsageError):
    """A model asked to run on a device or in a dtype it does not support."""


class Tiling(str, Enum):
    """Whether a model may be run on tiles of its input."""

    SUPPORTED = "supported"  # tiles give the same result as the whole input
    DISCOURAGED = "discouraged"  # works, but seams or context loss are visible
    INTERNAL = "internal"  # the model tiles by itself (e.g. a VAE with enable_tiling)
    NONE = "none"  # whole inputs only


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

    def accepts(self, height: int, width: int) -> bool:
        return self.padded(height, width) == (height, width)


@dataclass(frozen=True)
class Provenance:
    """Where a loaded model's weights came from."""

    path: Path | None
    source: str  # "path", "cache", "package:<dist>", "download", "huggingface"
    sha256: str | None = None
    name: str | None = None
    repo_id: str | None = None  # a Hugging Face id, when it came from the hub or its cache
    revision: str | None = None


class ModelDescriptor:
    """A loaded model: what it is, where it runs, where it came from, and the callable.

    Call it like the model (``descriptor(x)`` calls ``descriptor.model(x)``); move it with
    ``to(device, dtype)``, which raises :class:`UnsupportedModelConfig` for combinations the
    model or its backend cannot run.
    """

    task: str = "unknown"  # super-resolution, restoration, autoencoder, diffusion-pipeline…
    name: str = "model"
    backend: str = "?"
    scale: float = 1
    input_channels: int = 3
    output_channels: int = 3
    size_requirements: SizeRequirements = SizeRequirements()
    tiling: Tiling = Tiling.SUPPORTED
    #: frames per call the backend takes at once (None: any)
    max_batch: int | None = None
    #: where this backend can run at all, and in which dtypes
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("fp32",)
    #: what this model's weights allow, within ``dtypes``
    supports_half: bool = False
    supports_bfloat16: bool = False
    device: str = "cpu"
    dtype: str = "fp32"
    provenance: Provenance | None = None
    model: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def check(self, device: str, dtype: str) -> None:
        """Raise :class:`UnsupportedModelConfig` when this model cannot run in ``dtype`` on
        ``device`` (one line saying what would work instead)."""
        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r} (use fp32, fp16 or bf16)")
        kind = device.partition(":")[0]
        if kind not in self.devices:
            raise UnsupportedModelConfig(
                f"{self.name}: the {self.backend} backend runs on "
                f"{'/'.join(self.devices)}, not {device}"
            )
        if dtype not in self.dtypes:
            raise UnsupportedModelConfig(
                f"{self.name}: the {self.backend} backend runs in "
                f"{'/'.join(self.dtypes)} only, not {dtype}"
            )
        if dtype == "fp16" and not self.supports_half:
            raise UnsupportedModelConfig(
                f"{self.name}: this model does not support fp16 (use fp32 or bf16)"
            )
        if dtype == "bf16" and not self.supports_bfloat16:
            raise UnsupportedModelConfig(
                f"{self.name}: this model does not support bf16 (use fp32)"
            )
        if dtype == "fp16" and kind != "cuda":
            raise UnsupportedModelConfig(
                f"fp16 needs a CUDA device (device is {device}); use fp32 or bf16"
            )
        if dtype == "bf16" and kind == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                raise UnsupportedModelConfig(f"{device} does not support bf16; use fp16 or fp32")

    def to(self, device: str | None = None, dtype: str | None = None) -> ModelDescriptor:
        """Move the model; returns ``self``."""
        from vt.models.devices import resolve_device

        device = resolve_device(device or self.device)
        dtype = dtype or self.dtype
        self.check(device, dtype)
        self._move(device, dtype)
        self.device, self.dtype = device, dtype
        return self

    def _move(self, device: str, dtype: str) -> None:
        """Put the weights on ``device`` in ``dtype`` (torch modules by default)."""
        if hasattr(self.model, "to"):
            from vt.models.devices import torch_dtype

            self.model.to(device=device, dtype=torch_dtype(dtype))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``vt list models``, reports)."""
        p = self.provenance
        return {
            "name": self.name,
            "task": self.task,
            "backend": self.backend,
            "scale": self.scale,
            "channels": [self.input_channels, self.output_channels],
            "size_requirements": {
                "minimum": self.size_requirements.minimum,
                "multiple_of": self.size_requirements.multiple_of,
                "square": self.size_requirements.square,
            },
            "tiling": Tiling(self.tiling).value,
            "device": self.device,
            "dtype": self.dtype,
            "supports_half": self.supports_half,
            "supports_bfloat16": self.supports_bfloat16,
            "source": p.source if p else None,
            "path": str(p.path) if p and p.path else None,
            "sha256": p.sha256 if p else None,
        }

    def close(self) -> None:
        """Release the model's resources (weights, sessions, GPU memory)."""
        self.model = None


def unexpected(adapter: str, got: object) -> VtError:
    return VtError(
        f"model adapter {adapter!r} returned {type(got).__name__}, not a ModelDescriptor"
    )
