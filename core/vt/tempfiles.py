"""Temporary files that carry their owner's PID, so a later run can clean up after a kill.

Every temporary file or folder vt writes beside a final path (outputs, cache entries,
downloads) is named ``.<final name>.vt-tmp-<pid>-<random><suffix>``. A process killed with
SIGKILL cannot remove its own; ``clean_stale`` removes those whose process is gone. Names
that do not match the pattern (a resumable run's ``OUT.vt-resume/`` state, the user's own
files) are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

MARK = ".vt-tmp-"
#: a resumable run's state folder beside its output (``vt.media.segments``): never removed
#: here, whatever its name looks like
RESUME_SUFFIX = ".vt-resume"
_STALE = re.compile(r"^\..+\.vt-tmp-(\d+)-[0-9a-f]{8}(\.[^/]*)?$")


def temp_path(final: str | os.PathLike[str], suffix: str = "") -> Path:
    """A fresh temporary name beside ``final`` (nothing is created)."""
    final = Path(final)
    return final.with_name(f".{final.name}{MARK}{os.getpid()}-{os.urandom(4).hex()}{suffix}")


def owner_pid(path: str | os.PathLike[str]) -> int | None:
    """The PID in a vt temporary name, or None when ``path`` is not one (a resume folder
    never is, even beside an output whose own name looks like a temporary)."""
    name = Path(path).name
    if name.endswith(RESUME_SUFFIX):
        return None
    match = _STALE.match(name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class Cleanup:
    removed: int = 0
    bytes_freed: int = 0


def size_of(path: Path) -> int:
    """Bytes under ``path`` (a file or a folder), not following links."""
    try:
        if path.is_symlink() or not path.is_dir():
            return path.lstat().st_size
        return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink())
    except OSError:
        return 0


def stale_entries(folder: str | os.PathLike[str]) -> list[Path]:
    """vt temporary files and folders in ``folder`` whose owning process is gone."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    stale = []
    for entry in entries:
        pid = owner_pid(entry)
        if pid is not None and not pid_alive(pid):
            stale.append(entry)
    return stale


def clean_stale(folder: str | os.PathLike[str]) -> Cleanup:
    """Remove the temporary files that dead vt processes left in ``folder``."""
    result = Cleanup()
    for entry in stale_entries(folder):
        size = size_of(entry)
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        result.removed += 1
        result.bytes_freed += size
    return result
