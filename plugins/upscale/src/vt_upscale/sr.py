"""The loaded super-resolution model every adapter returns.

Modelled on spandrel's descriptor: a model knows its scale, channels, the dtypes it supports
and its input size requirements, and is called with an ``(N, C, H, W)`` float tensor in
[0, 1] on its device, returning ``(N, C, H*scale, W*scale)`` in [0, 1]. A backend that
runs on host memory (ncnn, onnxruntime on the CPU) also takes frames as they are decoded,
``(H, W, 3)`` uint8/uint16, through :meth:`SRModel.upscale_image`, so no torch tensor (nor
torch) is needed between the decoder, the model and the encoder. Tiling, batching, OOM
recovery and the final resample live in :mod:`vt_upscale.upscaler`, not here.
"""

from __future__ import annotations

import numpy as np

from vt.models import ModelDescriptor, SizeRequirements, Tiling

__all__ = ["SRModel", "SizeRequirements", "Tiling"]


class SRModel(ModelDescriptor):
    """A loaded super-resolution model (see the module docstring for the contract)."""

    task = "super-resolution"
    scale: int = 1  # type: ignore[assignment]
    #: frames go to :meth:`upscale_image` as host arrays (no tensors, no torch)
    host_arrays: bool = False
    #: calls from several threads at once are safe and run in parallel (they release the GIL)
    concurrent_calls: bool = False
    #: the backend keeps its working memory in pools of its own (ncnn, onnxruntime's arena),
    #: so malloc may hand large blocks back to the system (vt_upscale.memory)
    pooled_memory: bool = False

    def upscale_image(self, image: np.ndarray) -> np.ndarray:
        """One ``(H, W, 3)`` uint8/uint16 RGB frame -> ``(H*scale, W*scale, 3)`` of the same
        dtype (only when ``host_arrays``)."""
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """Threads each call uses from now on (the upscaler's thread plan)."""

    def restore_threads(self) -> None:
        """Undo what ``set_threads`` changed outside this model (torch's process-wide
        count); models whose threads are their own have nothing to undo."""
