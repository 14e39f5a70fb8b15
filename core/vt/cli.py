"""The ``vt`` program's entry point: answers ``--version`` at once, builds the app otherwise.

The app itself lives in ``vt.cli_app`` (Typer, Rich and the plugin host load there), so the
fastest answers never import them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if args in (["--version"], ["-V"]):
        from vt import __version__

        print(f"vt {__version__}")
        return
    # torch's CPU allocator backs blocks of 2 MB and more with transparent huge pages: a model
    # on the CPU allocates fresh activations every call, and 4 KB page faults on them took
    # 28 % of a 640x360 upscale's wall time (docs/benchmarks.md). Read at torch's first
    # allocation; inherited by worker processes; THP_MEM_ALLOC_ENABLE=0 turns it off.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    from vt.cli_app import create_app

    create_app()(args=args, prog_name="vt")


def __getattr__(name: str) -> Any:  # ``from vt.cli import create_app`` keeps working
    if name in ("create_app", "VtGroup", "LIST_KINDS"):
        from vt import cli_app

        return getattr(cli_app, name)
    raise AttributeError(f"module 'vt.cli' has no attribute {name!r}")
