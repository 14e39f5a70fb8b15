"""Built-in frame processors."""

from __future__ import annotations

from collections.abc import Callable

from vt.hookspecs import hookimpl
from vt.processors.resize import METHODS, Resize
from vt.registry import ProcessorInfo


@hookimpl
def register_processors(register: Callable[[ProcessorInfo], None]) -> None:
    register(
        ProcessorInfo(
            name="resize",
            factory=Resize,  # formats, devices, batch size: Resize's own
            description=f"libswscale resampling ({', '.join(METHODS)}); scale= or size=(w, h)",
        )
    )
