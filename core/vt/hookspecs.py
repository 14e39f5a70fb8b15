"""Every extension point of vt, in one place.

Plugins implement these with ``@vt.hookimpl``. ``register_*`` hooks receive a ``register``
callback; the core validates each item, records which plugin provided it and resolves name
clashes. ``choose_*`` hooks are first-result: a plugin may claim a case by returning an item;
the core's own choice is registered ``trylast`` so any plugin goes first.

Hooks are called once when registries are built, never per frame: they return objects and
factories, and the frame loop calls those directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from vt.media.source import Source
    from vt.registry import (
        CommandSpec,
        DecoderInfo,
        EncoderInfo,
        ModelAdapterInfo,
        ModelRef,
        ModelSpec,
        OutputTarget,
        ProcessorInfo,
    )

hookspec = pluggy.HookspecMarker("vt")
hookimpl = pluggy.HookimplMarker("vt")


@hookspec
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    """Register CLI commands (a function or a ``typer.Typer`` group) by ``CommandSpec``."""


@hookspec
def register_decoders(register: Callable[[DecoderInfo], None]) -> None:
    """Register video decoders: what sources they accept and how to open one."""


@hookspec
def register_processors(register: Callable[[ProcessorInfo], None]) -> None:
    """Register frame processors: factories of objects the pipeline calls per batch."""


@hookspec
def register_encoders(register: Callable[[EncoderInfo], None]) -> None:
    """Register encoders/writers: which targets (containers, image sequences) they write."""


@hookspec
def register_model_adapters(register: Callable[[ModelAdapterInfo], None]) -> None:
    """Register model adapters: loaders for model file formats (torch, ONNX, ncnn, diffusers)."""


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register named models (``realesr-animevideov3``…) and where their weights come from."""


@hookspec(firstresult=True)
def choose_decoder(source: Source, candidates: Sequence[DecoderInfo]) -> DecoderInfo | None:
    """Pick the decoder to try first for ``source`` from ``candidates``, or None to pass."""


@hookspec(firstresult=True)
def choose_encoder(target: OutputTarget, candidates: Sequence[EncoderInfo]) -> EncoderInfo | None:
    """Pick the encoder that writes ``target``, or None to pass."""


@hookspec(firstresult=True)
def choose_model_adapter(
    model: ModelRef, candidates: Sequence[ModelAdapterInfo]
) -> ModelAdapterInfo | None:
    """Pick the adapter that loads ``model`` (a resolved file or directory), or None to pass."""
