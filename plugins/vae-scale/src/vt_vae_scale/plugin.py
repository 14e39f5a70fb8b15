"""vt's entry point for this plugin: the ``vae-scale`` command and its two processors."""

from __future__ import annotations

from collections.abc import Callable

from vt.hookspecs import hookimpl
from vt.registry import CommandSpec, ProcessorInfo


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    from vt_vae_scale.cli import vae_scale

    register(
        CommandSpec(
            "vae-scale",
            vae_scale,
            help="Scale many videos (or a metadata "
            "table) to a square training size: letterbox or an autoencoder "
            "round trip.",
        )
    )


def _letterbox(**options: object) -> object:
    from vt_vae_scale.letterbox import Letterbox

    return Letterbox(**options)  # type: ignore[arg-type]


def _roundtrip(**options: object) -> object:
    from vt_vae_scale.roundtrip import VaeRoundtrip

    return VaeRoundtrip(**options)  # type: ignore[arg-type]


@hookimpl
def register_processors(register: Callable[[ProcessorInfo], None]) -> None:
    # factories, not classes: torch and diffusers load only when a processor is built
    register(
        ProcessorInfo(
            name="letterbox",
            factory=_letterbox,
            description="aspect-preserving resize into size x size with centred "
            "padding (libswscale; YUV without RGB when alone)",
            layouts=("rgb24", "rgb48"),
            devices=("cpu",),
            batch_size=8,
            temporal=False,
        )
    )
    register(
        ProcessorInfo(
            name="vae-roundtrip",
            factory=_roundtrip,
            description="encode and decode frames with a diffusers autoencoder "
            "(AutoencoderKL/AutoencoderTiny, hub id or folder); same size out",
            layouts=("rgb24", "rgb48"),
            devices=("cpu", "cuda", "mps"),
            batch_size=250,
            temporal=False,
        )
    )
