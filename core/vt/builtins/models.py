"""The core's model adapter (diffusers) and its default adapter choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vt.hookspecs import hookimpl
from vt.registry import ModelAdapterInfo, ModelRef


@hookimpl
def register_model_adapters(register: Callable[[ModelAdapterInfo], None]) -> None:
    # always listed; ``available()`` says what to install when diffusers is missing
    from vt.models.diffusers_adapter import DIFFUSERS

    register(DIFFUSERS)


@hookimpl(trylast=True)
def choose_model_adapter(
    model: ModelRef, candidates: Sequence[ModelAdapterInfo]
) -> ModelAdapterInfo | None:
    """The first available candidate that reads the model's format."""
    for adapter in candidates:
        if adapter.accepts(model) and adapter.available() is None:
            return adapter
    return None
