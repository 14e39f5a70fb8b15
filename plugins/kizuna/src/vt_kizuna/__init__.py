"""vt-kizuna: the KizunaSR offline quality path for anime upscaling, as a vt plugin.

``from vt_kizuna import OfflineVideoProcessor, OfflineProcessorConfig, PipelineConfig``: the
spec's Python API; the five stages are also registered processors (``kizuna-normalize``,
``kizuna-reconstruct``, ``kizuna-upscale``, ``kizuna-enhance``, ``kizuna-temporal``).
"""

from __future__ import annotations

from vt.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = [
    "EncoderConfig",
    "OfflineProcessorConfig",
    "OfflineVideoProcessor",
    "PipelineConfig",
    "ProcessingReport",
    "Validation",
    "__version__",
    "validate",
]
# loaded on first use: vt imports this package with its plugins, and the API needs OpenCV
__getattr__, __dir__ = lazy_exports(__name__, {n: ".api" for n in __all__ if n != "__version__"})
