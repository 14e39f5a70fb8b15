"""The loaded super-resolution model every adapter returns.

Modelled on spandrel's descriptor: a model knows its scale, channels, the dtypes it supports
and its input size requirements, and is called with an ``(N, C, H, W)`` float tensor in
[0, 1] on its device, returning ``(N, C, H*scale, W*scale)`` in [0, 1]. Tiling, batching,
OOM recovery and the final resample live in :mod:`vt_upscale.upscaler`, not here.
"""

from __future__ import annotations

from vt.models import ModelDescriptor, SizeRequirements, Tiling

__all__ = ["SRModel", "SizeRequirements", "Tiling"]


class SRModel(ModelDescriptor):
    """A loaded super-resolution model (see the module docstring for the contract)."""

    task = "super-resolution"
    scale: int = 1  # type: ignore[assignment]
