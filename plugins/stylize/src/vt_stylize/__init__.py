"""vt-stylize: temporally coherent Stable Diffusion video stylisation for vt.

``vt stylize clip.mp4 -p "anime style"`` on the command line; in Python, the ``stylize``
processor (``StylizeProcessor(prompt=…)``) chains into any vt pipeline.
"""

from __future__ import annotations

from vt.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = [
    "GpuOutOfMemory",
    "StylizeNote",
    "StylizePipeline",
    "StylizeProcessor",
    "StylizeSettings",
    "StylizeWarning",
    "__version__",
    "processing_size",
]

# loaded on first use: vt imports this package with its plugins, and these need torch/diffusers
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GpuOutOfMemory": ".errors",
        "StylizeNote": ".errors",
        "StylizeWarning": ".errors",
        "StylizePipeline": ".pipelines",
        "StylizeProcessor": ".processor",
        "processing_size": ".processor",
        "StylizeSettings": ".settings",
    },
)
