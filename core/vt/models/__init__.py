"""Models: the typed descriptor every adapter returns, and one loader for every plugin."""

from vt.models.descriptor import (
    DTYPES,
    ModelDescriptor,
    Provenance,
    SizeRequirements,
    Tiling,
    UnsupportedModelConfig,
)
from vt.models.devices import cuda_available, resolve_device, resolve_dtype, torch_dtype
from vt.models.loader import FORMAT_PACKAGES, choose_adapter, load_model, resolve_model
from vt.models.memo import MemoStats, cached_load, clear_model_memo, is_memoised, memo_stats

__all__ = [
    "DTYPES",
    "FORMAT_PACKAGES",
    "MemoStats",
    "ModelDescriptor",
    "Provenance",
    "SizeRequirements",
    "Tiling",
    "UnsupportedModelConfig",
    "cached_load",
    "choose_adapter",
    "clear_model_memo",
    "cuda_available",
    "is_memoised",
    "load_model",
    "memo_stats",
    "resolve_device",
    "resolve_dtype",
    "resolve_model",
    "torch_dtype",
]
