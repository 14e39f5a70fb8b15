"""vt's entry point for this plugin: the ``kizuna`` command and the five stage processors."""

from __future__ import annotations

from collections.abc import Callable

from vt.hookspecs import hookimpl
from vt.registry import CommandSpec, ProcessorInfo


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    from vt_kizuna.cli import kizuna

    register(
        CommandSpec(
            "kizuna",
            kizuna,
            help="KizunaSR offline quality path for anime: "
            "normalize, reconstruct, upscale (shader or AI), enhance, temporal.",
        )
    )


@hookimpl
def register_processors(register: Callable[[ProcessorInfo], None]) -> None:
    from vt_kizuna.processors import processor_infos

    for info in processor_infos():
        register(info)
