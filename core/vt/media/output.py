"""Output targets: what a path names (a container file or an image sequence), the checks
before anything is decoded, and ``atomic_output``, which writes a target through
``vt.atomic`` (nothing appears under the final name until complete; see the guarantees
there). A frame folder is never the working folder nor one that holds the input.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# FRAMES_MARKER, is_vt_folder and rename_noreplace are imported from here by callers too
from vt.atomic import (  # noqa: F401
    FRAMES_MARKER,
    AtomicWrite,
    atomic_file,
    atomic_folder,
    is_vt_folder,
    rename_noreplace,
)
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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(target: OutputTarget, source: Source, overwrite: bool) -> None:
    final = final_path(target)
    if source.kind == "file" and source.path is not None and final.exists():
        if final.resolve() == source.path.resolve():
            raise UsageError(f"output is the input file: {final}")
    if target.kind == "images":
        _check_frame_folder(final, source, overwrite)
    elif final.is_dir():
        raise UsageError(f"output is a directory: {final}")
    elif final.exists() and not overwrite:
        raise UsageError(f"output exists: {final} (use --overwrite to replace it)")
    parent = final.parent
    if not parent.exists():
        raise OutputError(f"output folder does not exist: {parent}")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")


def _check_frame_folder(final: Path, source: Source, overwrite: bool) -> None:
    here = final.resolve()
    if _inside(Path.cwd().resolve(), here):
        raise UsageError(
            f"output folder {final} is the working folder (or holds it): "
            "write the frames to a new folder"
        )
    inputs = [source.path] if source.path is not None else list(source.paths[:1])
    for item in inputs:
        if item is not None and _inside(item.resolve(), here):
            raise UsageError(
                f"output folder {final} holds the input: write the frames to a new folder"
            )
    if not final.exists():
        return
    if not final.is_dir():
        raise UsageError(f"output {final} exists and is not a folder")
    if not any(final.iterdir()):
        return  # an empty folder: nothing to lose
    if not overwrite:
        raise UsageError(f"output exists: {final} (use --overwrite to replace it)")
    if not is_vt_folder(final):
        raise UsageError(
            f"output folder {final} was not written by vt (no {FRAMES_MARKER} "
            "marker): refusing to replace it; choose a new or empty folder"
        )


@contextmanager
def atomic_output(target: OutputTarget, overwrite: bool = False) -> Iterator[OutputTarget]:
    """Yield a temporary target beside the final one; move it into place on success.

    On any error, and on Ctrl-C, SIGTERM or SIGHUP, the temporary file or folder is removed
    and the final name is left as it was. Temporary names carry the PID, so the leftovers of
    a killed run are removed by the next run writing to the same folder.
    """
    final = final_path(target)
    if target.kind == "images":
        with atomic_folder(final, overwrite=overwrite) as folder:
            yield OutputTarget(folder / target.path.name, "images")
    else:
        with atomic_file(final, overwrite=overwrite, suffix=final.suffix) as tmp:
            yield OutputTarget(tmp, "container")
