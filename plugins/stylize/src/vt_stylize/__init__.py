"""vt-stylize: temporally coherent Stable Diffusion video stylisation for vt.

``vt stylize clip.mp4 -p "anime style"`` on the command line; in Python, the ``stylize``
processor (``StylizeProcessor(prompt=…)``) chains into any vt pipeline.
"""

from __future__ import annotations

from vt_stylize.errors import GpuOutOfMemory, StylizeNote, StylizeWarning
from vt_stylize.pipelines import StylizePipeline
from vt_stylize.processor import StylizeProcessor, processing_size
from vt_stylize.settings import StylizeSettings

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
