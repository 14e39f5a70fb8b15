"""vt-kizuna: the KizunaSR offline quality path for anime upscaling, as a vt plugin.

``from vt_kizuna import OfflineVideoProcessor, OfflineProcessorConfig, PipelineConfig``: the
spec's Python API; the five stages are also registered processors (``kizuna-normalize``,
``kizuna-reconstruct``, ``kizuna-upscale``, ``kizuna-enhance``, ``kizuna-temporal``).
"""

from __future__ import annotations

from vt_kizuna.api import (
    EncoderConfig,
    OfflineProcessorConfig,
    OfflineVideoProcessor,
    PipelineConfig,
    ProcessingReport,
    Validation,
    validate,
)

__version__ = "0.1.0"
__all__ = ["EncoderConfig", "OfflineProcessorConfig", "OfflineVideoProcessor", "PipelineConfig",
           "ProcessingReport", "Validation", "__version__", "validate"]
