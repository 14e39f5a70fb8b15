"""Module-level callables for batch tests (workers import them by reference)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def copy_file(input: str, output: str, **options: Any) -> dict[str, Any]:
    """Copy ``input`` to ``output``; the report says who ran it and with what."""
    shutil.copyfile(input, output)
    return {"pid": os.getpid(), "options": options, "bytes": Path(output).stat().st_size}


def always_fails(input: str, output: str, **options: Any) -> None:
    raise RuntimeError(f"cannot process {Path(input).name}")


def fails_until(input: str, output: str, *, marker: str, failures: int = 1) -> dict[str, int]:
    """Fail the first ``failures`` calls (counted in the file ``marker``), then copy."""
    path = Path(marker)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < failures:
        raise RuntimeError(f"transient failure {calls + 1}")
    shutil.copyfile(input, output)
    return {"calls": calls + 1}


def dies_once(input: str, output: str, *, marker: str) -> dict[str, int]:
    """Kill this worker process on the first call (a lost worker), copy on the next."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died")
        os._exit(1)
    shutil.copyfile(input, output)
    return {"pid": os.getpid()}


def copy_and_tell_threads(
    input: str, output: str, *, single_thread: bool = False, **options: Any
) -> dict[str, Any]:
    """Copy; the report says whether the runner asked for a single-thread job."""
    shutil.copyfile(input, output)
    return {"single_thread": single_thread}


def copy_with_progress(
    input: str, output: str, *, progress: Any = None, steps: int = 4
) -> dict[str, Any]:
    """Copy, calling ``progress(done, steps)`` a step at a time (like frames of a video)."""
    import time

    for done in range(1, steps + 1):
        time.sleep(0.25)  # longer than the worker's progress throttle
        if progress is not None:
            progress(done, steps)
    shutil.copyfile(input, output)
    return {"progress_given": progress is not None}
