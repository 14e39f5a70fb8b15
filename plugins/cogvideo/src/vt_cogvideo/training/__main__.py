"""``python -m vt_cogvideo.training train-lora …``: the training commands without the vt
program, for ``accelerate launch -m vt_cogvideo.training train-lora …`` (multi-GPU, or an
``accelerate config`` of your own). Errors are one line, as in ``vt``."""

from __future__ import annotations

import typer

from vt.cli_app import VtGroup
from vt_cogvideo.training.commands import register


def main() -> None:
    app = typer.Typer(
        cls=VtGroup,
        name="vt-cogvideo-training",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        help="vt-cogvideo training commands (see vt cogvideo --help).",
    )
    register(app)
    app(prog_name="python -m vt_cogvideo.training")


if __name__ == "__main__":
    main()
