"""vt's entry point for this plugin: the ``stylize`` command and the ``stylize`` processor."""

from __future__ import annotations

from collections.abc import Callable

from vt.hookspecs import hookimpl
from vt.registry import CommandSpec, ProcessorInfo


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    from vt_stylize.cli import stylize

    register(
        CommandSpec(
            "stylize",
            stylize,
            help="Stylise a video with Stable Diffusion "
            "(img2img, ControlNet, AnimateDiff), temporally coherent; optional "
            "Real-ESRGAN x4.",
        )
    )


def _factory(**options: object) -> object:
    from vt_stylize.processor import StylizeProcessor

    return StylizeProcessor(**options)  # type: ignore[arg-type]


@hookimpl
def register_processors(register: Callable[[ProcessorInfo], None]) -> None:
    register(
        ProcessorInfo(
            name="stylize",
            factory=_factory,
            description="Stable Diffusion img2img/ControlNet/AnimateDiff stylisation; options: "
            "prompt, model, controlnet, animatediff, strength, steps, guidance, seed, noise, "
            "cross_frame_attention, max_res, keep_size, lora, device, dtype, batch_size (see "
            "vt_stylize.StylizeSettings)",
            layouts=("rgb24",),
            devices=("cpu", "cuda"),
            batch_size=1,
            temporal=True,
        )
    )
