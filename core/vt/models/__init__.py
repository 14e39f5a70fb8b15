"""Models: the typed descriptor every adapter returns, and one loader for every plugin."""

from vt.models.descriptor import (
    DTYPES,
    ModelDescriptor,
    Provenance,
    SizeRequirements,
    Tiling,
    UnsupportedModelConfig,
)
from vt.models.devices import cuda_available, resolve_device, torch_dtype
from vt.models.loader import FORMAT_PACKAGES, choose_adapter, load_model, resolve_model

__all__ = [
    "DTYPES", "FORMAT_PACKAGES", "ModelDescriptor", "Provenance", "SizeRequirements", "Tiling",
    "UnsupportedModelConfig", "choose_adapter", "cuda_available", "load_model",
    "resolve_device", "resolve_model", "torch_dtype",
]
