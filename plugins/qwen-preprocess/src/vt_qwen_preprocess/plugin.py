"""Entry point: registers ``vt qwen-preprocess``."""

from __future__ import annotations

from collections.abc import Callable

from vt.hookspecs import hookimpl
from vt.registry import CommandSpec


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    from vt_qwen_preprocess.cli import qwen_preprocess

    register(
        CommandSpec(
            "qwen-preprocess",
            qwen_preprocess,
            help="Sample, resize and tokenise video for multimodal models.",
        )
    )
