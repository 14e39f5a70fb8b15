"""What stylisation reports: out-of-memory as one actionable line, warnings and notes."""

from __future__ import annotations

import gc
import warnings

from vt.errors import VtError


class StylizeWarning(UserWarning):
    """The run changed course (upscaling skipped, prompt truncated…): shown as a warning."""


class StylizeNote(UserWarning):
    """An option that does nothing here (offload or xformers off CUDA): shown as a note."""


class GpuOutOfMemory(VtError):
    """The device ran out of memory even with one frame per call."""


def warn(message: str) -> None:
    warnings.warn(message, StylizeWarning, stacklevel=2)


def note(message: str) -> None:
    warnings.warn(message, StylizeNote, stacklevel=2)


def is_oom(exc: BaseException) -> bool:
    """A device out-of-memory error (CUDA, MPS, or an allocator's message)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "failed to allocate" in text
    )


def free_memory() -> None:
    """Give cached device memory back (after an OOM, between passes)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def oom_error(what: str, exc: BaseException, hints: str) -> GpuOutOfMemory:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return GpuOutOfMemory(f"out of GPU memory {what} ({first[:120]}): try {hints}")
