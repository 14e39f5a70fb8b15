"""Device and dtype names shared by every model adapter (torch is imported only when used)."""

from __future__ import annotations

import functools
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


#: /proc/cpuinfo flags of x86 CPUs that compute bf16 dot products in hardware
#: (AVX512-BF16: AMD Zen 4 and later, Intel Cooper Lake; AMX-BF16: Intel Sapphire Rapids on)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The first ``flags`` line of a ``/proc/cpuinfo`` text, as a set."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (Linux x86: its ``/proc/cpuinfo`` flags;
    False where they cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return bool(cpu_flags(f.read()) & NATIVE_BF16_FLAGS)
    except OSError:
        return False


def dtype_name(dtype: str | None) -> str:
    """A dtype as the user typed it, lower-cased and stripped; none given is ``auto``."""
    return (dtype or "auto").strip().lower()


def resolve_dtype(dtype: str | None, device: str, supported: tuple[str, ...]) -> str:
    """``auto`` becomes ``bf16`` on a CPU that computes it natively when the backend runs it
    (``supported``), else ``fp32``; other names come back as :func:`dtype_name` gives them
    (the model checks them)."""
    dtype = dtype_name(dtype)
    if dtype != "auto":
        return dtype
    on_cpu = device.partition(":")[0] == "cpu"
    return "bf16" if on_cpu and "bf16" in supported and cpu_has_native_bf16() else "fp32"
