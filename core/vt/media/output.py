"""Output targets and atomic writes: nothing appears under the final name until complete."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vt.errors import OutputError, UsageError
from vt.media.source import IMAGE_EXTENSIONS, Source
from vt.registry import OutputTarget


def resolve_target(output: str | os.PathLike[str]) -> OutputTarget:
    """A container file, or an image sequence (a folder path ending in '/', an existing folder,
    or a pattern like ``out/%06d.png``)."""
    text = os.fspath(output)
    path = Path(text).expanduser()
    if "%" in path.name and path.suffix.lower() in IMAGE_EXTENSIONS:
        return OutputTarget(path, "images")
    if text.endswith(os.sep) or path.is_dir():
        return OutputTarget(path / "%06d.png", "images")
    if not path.suffix:
        raise UsageError(f"output {text!r} has no extension: say .mp4, .mkv, .mov, .webm…")
    return OutputTarget(path, "container")


def final_path(target: OutputTarget) -> Path:
    """The path that must not exist before, and appears after: the file or the folder."""
    return target.path.parent if target.kind == "images" else target.path


def check_output(target: OutputTarget, source: Source, overwrite: bool) -> None:
    final = final_path(target)
    if source.kind == "file" and source.path is not None and final.exists():
        if final.resolve() == source.path.resolve():
            raise UsageError(f"output is the input file: {final}")
    if source.kind == "frames" and source.path is not None and final.resolve() == (
        source.path.resolve()
    ):
        raise UsageError(f"output is the input folder: {final}")
    if final.exists():
        empty_dir = final.is_dir() and not any(final.iterdir())
        if not overwrite and not empty_dir:
            raise UsageError(f"output exists: {final} (use --overwrite to replace it)")
        if final.is_dir() and target.kind == "container":
            raise UsageError(f"output is a directory: {final}")
    parent = final.parent
    if not parent.exists():
        raise OutputError(f"output folder does not exist: {parent}")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")


@contextmanager
def atomic_output(target: OutputTarget, overwrite: bool = False) -> Iterator[OutputTarget]:
    """Yield a temporary target beside the final one; rename it into place on success.

    On any error, and on Ctrl-C or SIGTERM, the temporary file or folder is removed and the
    final name is left as it was.
    """
    final = final_path(target)
    prefix = f".{final.name}.vt-partial-"
    if target.kind == "images":
        tmp_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
        tmp = OutputTarget(tmp_dir / target.path.name, "images")
        tmp_final = tmp_dir
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
        os.close(fd)
        tmp_final = Path(name)
        tmp = OutputTarget(tmp_final, "container")
    previous = _raise_on_sigterm()
    try:
        yield tmp
        if final.exists() and final.is_dir() and target.kind == "images":
            shutil.rmtree(final) if overwrite or not any(final.iterdir()) else None
        os.replace(tmp_final, final)
    except BaseException:
        if tmp_final.is_dir():
            shutil.rmtree(tmp_final, ignore_errors=True)
        else:
            tmp_final.unlink(missing_ok=True)
        raise
    finally:
        _restore_sigterm(previous)


def _raise_on_sigterm() -> object:
    """Turn SIGTERM into KeyboardInterrupt so cleanup runs (main thread only)."""
    try:
        def handler(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None


def _restore_sigterm(previous: object) -> None:
    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]
        except ValueError:  # pragma: no cover
            pass
