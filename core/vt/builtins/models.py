"""The core's default model-adapter choice (plugins register the adapters themselves)."""

from __future__ import annotations

from collections.abc import Sequence

from vt.hookspecs import hookimpl
from vt.registry import ModelAdapterInfo, ModelRef


@hookimpl(trylast=True)
def choose_model_adapter(
    model: ModelRef, candidates: Sequence[ModelAdapterInfo]
) -> ModelAdapterInfo | None:
    """The first available candidate that reads the model's format."""
    for adapter in candidates:
        if adapter.accepts(model) and adapter.available() is None:
            return adapter
    return None
