"""Resume state: ``OUT.vt-resume/`` beside the output.

The folder holds ``job.json`` (the input's identity, every parameter, the segment plan and
the segments finished so far, with what each holds) and the finished segments, each written
under a temporary name and renamed into place when complete. It belongs to one job: a run
with another input or other parameters is refused, never mixed in. Temporary-file clean-up
(``vt.tempfiles``) never touches the folder itself; inside it, the temporaries of killed
runs are removed like anywhere else. After a successful join the folder is removed, entry by
entry, only for names vt writes there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vt.errors import OutputError, UsageError
from vt.tempfiles import RESUME_SUFFIX, clean_stale, owner_pid, temp_path

JOB_FILE = "job.json"
LOCK_FILE = ".lock"
FORMAT_VERSION = 1
#: bytes hashed at the start, the middle and the end of the input (its identity with the size
#: and modification time: an edited file is caught without reading all of a long video)
SAMPLE_BYTES = 1 << 20
_OWN = re.compile(
    r"^(seg-\d{6}\.[A-Za-z0-9]+|job\.json|\.lock|\.seg-\d{6}\.[A-Za-z0-9]+"
    r"\.vt-batch\.json)$"
)


def resume_folder(output: str | os.PathLike[str]) -> Path:
    """``OUT.vt-resume`` beside ``output``."""
    output = Path(output)
    return output.with_name(output.name + RESUME_SUFFIX)


def input_identity(path: Path) -> dict[str, Any]:
    """Size, modification time and a hash of the first, middle and last MiB."""
    import hashlib  # here: a plain run checks its options but never hashes

    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for offset in sorted(
            {0, max(0, stat.st_size // 2 - SAMPLE_BYTES // 2), max(0, stat.st_size - SAMPLE_BYTES)}
        ):
            f.seek(offset)
            digest.update(f.read(SAMPLE_BYTES))
    return {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sample_sha256": digest.hexdigest(),
    }


def _is_own(name: str) -> bool:
    return bool(_OWN.match(name)) or owner_pid(name) is not None


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable ``key: old -> new`` lines for two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"]
    return []


class ResumeState:
    """The resume folder of one output: created or checked by ``open``, locked while a run
    uses it (a second run on the same output fails at once), removed by ``remove``."""

    def __init__(self, output: Path) -> None:
        self.folder = resume_folder(output)
        self.job: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self.created = False

    # -- opening -------------------------------------------------------------------------------
    def open(
        self,
        identity: dict[str, Any],
        parameters: dict[str, Any],
        plan: list[list[int]],
        resume: bool,
    ) -> None:
        """Take the folder for this job: new, or (``resume``) the same job's from an
        interrupted run. Anything else is refused with a usage error saying why."""
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise UsageError(
                f"{folder} exists and is not a folder: move it away to run "
                "with --resume or --workers"
            )
        existing = folder / JOB_FILE
        if folder.is_dir():
            stranger = sorted(p.name for p in folder.iterdir() if not _is_own(p.name))
            if stranger:
                raise UsageError(
                    f"{folder} holds files vt did not write ({stranger[0]}…): "
                    "not using it; move them away or choose another output"
                )
        else:
            try:
                folder.mkdir()
            except OSError as exc:
                raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
            self.created = True
        self._lock()
        if existing.exists() and not resume:
            self.release()
            raise UsageError(
                f"{folder} holds an interrupted run of this output: add "
                "--resume to continue it, or remove the folder to start over"
            )
        clean_stale(folder)  # what killed runs left half-written
        job = {
            "vt_resume": FORMAT_VERSION,
            "input": identity,
            "parameters": parameters,
            "plan": plan,
            "finished": {},
            "created": time.time(),
        }
        if existing.exists():
            old = self._read(existing)
            self._check_same(old, job)
            job["finished"] = old.get("finished", {})
            job["created"] = old.get("created", job["created"])
        self.job = job
        self.save()

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{path} is unreadable ({exc}): remove {self.folder} to start over"
            ) from None
        if not isinstance(data, dict) or data.get("vt_resume") != FORMAT_VERSION:
            raise UsageError(
                f"{path} was written by another vt version: remove {self.folder} to start over"
            )
        return data

    def _check_same(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """A resume must be the same job: same input (identity), parameters and plan."""
        for part, what in (
            ("input", "the input changed"),
            ("parameters", "the parameters changed"),
            ("plan", "the segment plan changed"),
        ):
            diff = _differences(old.get(part), new.get(part))
            if diff:
                shown = "; ".join(diff[:3]) + ("; …" if len(diff) > 3 else "")
                raise UsageError(
                    f"cannot resume from {self.folder}: {what} ({shown}); run "
                    "with the same input and options, or remove the folder to "
                    "start over"
                )

    def _lock(self) -> None:
        fd = os.open(self.folder / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"another vt run is using {self.folder}") from None
        self._lock_fd = fd

    # -- segments ------------------------------------------------------------------------------
    def finished(self) -> dict[int, dict[str, Any]]:
        return {int(k): v for k, v in self.job.get("finished", {}).items()}

    def record(self, index: int, result: dict[str, Any]) -> None:
        self.job.setdefault("finished", {})[str(index)] = result
        self.save()

    def forget(self, index: int) -> None:
        if self.job.get("finished", {}).pop(str(index), None) is not None:
            self.save()

    def save(self) -> None:
        """Rewrite ``job.json`` atomically (a kill leaves the old or the new one)."""
        path = self.folder / JOB_FILE
        tmp = temp_path(path)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.job, f, indent=1, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    # -- end -----------------------------------------------------------------------------------
    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> bool:
        """Remove the folder: only the names vt writes there; False when something else
        was left (then the folder stays)."""
        self.release()
        for entry in self._entries():
            if _is_own(entry.name):
                with contextlib.suppress(OSError):
                    entry.unlink()
        try:
            self.folder.rmdir()
        except OSError:
            return False
        return True

    def _entries(self) -> Iterator[Path]:
        try:
            yield from list(self.folder.iterdir())
        except OSError:
            return
