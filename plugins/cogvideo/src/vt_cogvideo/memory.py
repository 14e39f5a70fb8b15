"""Peak memory of one generation: VRAM on CUDA, resident set size on the CPU."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Self


def _vm_hwm() -> int | None:
    """This process's peak RSS (``VmHWM``) in bytes, Linux only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ``clear_refs`` 5), so the
    next reading is this generation's peak, not the process's; False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    hwm = _vm_hwm()
    if hwm is not None:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.bytes``: the peak VRAM allocated
    by torch on a CUDA device, else the peak RSS of the process during the block."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.device = device
        self.bytes = 0
        self.kind = "vram" if self.cuda else "rss"

    def __enter__(self) -> Self:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            reset_peak_rss()
        return self

    def __exit__(self, *_: object) -> None:
        if self.cuda:
            import torch

            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.bytes = peak_rss()
