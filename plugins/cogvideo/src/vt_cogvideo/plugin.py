"""vt's entry point for this plugin: the ``cogvideo`` command group (built lazily)."""

from __future__ import annotations

from collections.abc import Callable

from vt.hookspecs import hookimpl
from vt.registry import CommandSpec


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    # cli.py imports only typer: torch, diffusers and fastapi load when a command runs
    from vt_cogvideo.cli import build_app

    register(
        CommandSpec(
            "cogvideo",
            build_app(),
            help="CogVideoX image-to-video: generate, batch, "
            "validate, benchmark, serve an HTTP API, train LoRAs.",
        )
    )
