"""vt's entry point for this plugin: the ``upscale`` command, processors, adapters, models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vt.hookspecs import hookimpl
from vt.registry import CommandSpec, ModelAdapterInfo, ModelRef, ModelSpec, ProcessorInfo


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    from vt_upscale.cli import upscale

    register(
        CommandSpec(
            "upscale",
            upscale,
            help="Upscale a video: Lanczos/bicubic… or AI "
            "super-resolution (Real-ESRGAN and any .pth/.onnx/ncnn model).",
        )
    )


@hookimpl
def register_processors(register: Callable[[ProcessorInfo], None]) -> None:
    from vt_upscale.processors import processor_infos

    for info in processor_infos():
        register(info)


@hookimpl
def register_model_adapters(register: Callable[[ModelAdapterInfo], None]) -> None:
    from vt_upscale.adapters import ADAPTERS

    for adapter in ADAPTERS:
        register(adapter)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    from vt_upscale.models import model_specs

    for spec in model_specs():
        register(spec)


@hookimpl
def choose_model_adapter(
    model: ModelRef, candidates: Sequence[ModelAdapterInfo]
) -> ModelAdapterInfo | None:
    from vt_upscale.adapters import choose

    return choose(model, candidates)
