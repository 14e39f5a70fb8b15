"""Device and dtype names shared by every model adapter (torch is imported only when used)."""

from __future__ import annotations

import glob
import sys
from typing import TYPE_CHECKING

from vt.errors import UsageError, VtError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def torch_dtype(name: str) -> torch.dtype:
    import torch

    try:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
    except KeyError:
        raise UsageError(f"unknown dtype {name!r} (use fp32, fp16 or bf16)") from None


#: device nodes through which Linux exposes GPUs that torch.cuda can use (NVIDIA, ROCm, WSL2)
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def no_gpu_device_nodes() -> bool:
    """True on Linux when no GPU device node exists: no torch build can see a CUDA device,
    so the answer needs no torch import (~650 MB of RSS and seconds for a CUDA build)."""
    return sys.platform.startswith("linux") and not any(glob.glob(p) for p in _GPU_NODES)


def cuda_available() -> bool:
    if "torch" not in sys.modules and no_gpu_device_nodes():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str | None) -> str:
    """``auto`` becomes ``cuda`` when a CUDA device is usable, else ``cpu``."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda"):
        if not cuda_available():
            raise VtError(f"device {device!r} requested but CUDA is not available here")
        import torch

        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise VtError(f"no CUDA device {device!r} ({torch.cuda.device_count()} present)")
        return device
    if device in ("cpu", "mps"):
        return device
    raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda[:i])")
