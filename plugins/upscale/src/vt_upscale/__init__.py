"""vt-upscale: classical and AI video super-resolution for vt, with any model format.

``from vt_upscale import upscale_video, Upscaler``: load a model once, upscale frames or files.
Names load on first use, so vt's plugin loading (which imports this package) stays cheap.
"""

from __future__ import annotations

from vt.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["Upscaler", "UpscaleWarning", "upscale_video", "__version__"]
__getattr__, __dir__ = lazy_exports(__name__, {n: ".upscaler" for n in __all__[:-1]})
