"""vt-upscale: classical and AI video super-resolution for vt, with any model format.

``from vt_upscale import upscale_video, Upscaler``: load a model once, upscale frames or files.
Names load on first use, so vt's plugin loading (which imports this package) stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Upscaler", "UpscaleWarning", "upscale_video", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Upscaler", "UpscaleWarning", "upscale_video"):
        from vt_upscale import upscaler

        return getattr(upscaler, name)
    raise AttributeError(f"module 'vt_upscale' has no attribute {name!r}")
