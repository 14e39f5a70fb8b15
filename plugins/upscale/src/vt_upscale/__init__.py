"""vt-upscale: classical and AI video super-resolution for vt, with any model format.

``from vt_upscale import upscale_video, Upscaler``: load a model once, upscale frames or files.
"""

from __future__ import annotations

from vt_upscale.upscaler import Upscaler, UpscaleWarning, default_output, upscale_video

__version__ = "0.1.0"
__all__ = ["Upscaler", "UpscaleWarning", "default_output", "upscale_video", "__version__"]
