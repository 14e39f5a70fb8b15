"""What a batch is made of: jobs in, results out, and the light records that cross processes.

A :class:`Job` is a vt command (or a Python callable) applied to one input, writing one
output. The runner turns each job into a :class:`Task` (the complete argument list, nothing
heavy) for a worker, and each attempt comes back as an :class:`Outcome`; the caller sees one
:class:`JobResult` per job.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: a job's final states: finished now, failed after its retries, finished by an earlier run
DONE, FAILED, SKIPPED, PENDING = "done", "failed", "skipped", "pending"


@dataclass(slots=True)
class Job:
    """One unit of work: ``command`` (a vt command name) or ``fn`` (a callable, or its
    ``"module:function"`` name) applied to ``input``, writing ``output``.

    ``options`` are the command's options by name (``{"crf": 30, "preset": "ultrafast"}``) or
    the callable's keyword arguments. ``output`` may be None when the runner is given an
    ``output_dir``: the name is then derived from the input and the job's key. ``row`` is the
    1-based position in the manifest (error messages and the status table use it).
    """

    input: str
    output: str | None = None
    command: str | None = None
    fn: Callable[..., Any] | str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    row: int = 0
    #: filled in by validation: the key (a digest of command, input and options)…
    key: str = ""
    #: …and the command-line options that the key was computed from
    args: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """What runs: the command name or the callable's reference."""
        return self.command or callable_ref(self.fn)


@dataclass(slots=True)
class Task:
    """What a worker receives for one attempt: everything resolved, nothing heavy."""

    row: int
    index: int  # position in the run's job list
    key: str
    input: str
    output: str
    command: str | None = None
    argv: tuple[str, ...] = ()  # the full ``vt`` command line after ``vt``
    fn: Callable[..., Any] | str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    #: the output may be replaced (vt made it, or the user said --overwrite)
    overwrite: bool = False
    #: pool for engines that keep one set of workers per command/model (Ray)
    group: str = ""
    gpu: bool = False
    #: run the job on one core (one decoder and encoder thread; see ``run_batch``)
    single_thread: bool = False


@dataclass(slots=True)
class Outcome:
    """One attempt's result, as the worker reports it."""

    ok: bool
    error: str | None = None
    report: Any = None
    started: float = 0.0
    finished: float = 0.0
    worker: str = ""
    model_loads: int = 0

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished - self.started)


@dataclass(slots=True)
class JobResult:
    """A job's final state: ``done``, ``failed`` or ``skipped`` (``pending`` if never run)."""

    row: int
    key: str
    command: str
    input: str
    output: str
    status: str = PENDING
    attempts: int = 0
    error: str | None = None
    started: float | None = None  # epoch seconds of the last attempt
    finished: float | None = None
    seconds: float | None = None  # wall time of the last attempt
    worker: str | None = None  # host:pid that ran the last attempt
    model_loads: int | None = None  # model loads in that worker process so far
    report: Any = None  # the job's own report (a command's --json output, a callable's return)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def callable_ref(fn: Callable[..., Any] | str | None) -> str:
    """``module:qualname`` of a callable (what crosses to workers and goes in the key)."""
    if fn is None:
        return ""
    if isinstance(fn, str):
        return fn
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}:{name}"


def resolve_callable(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable from itself or from ``"package.module:function"``."""
    if callable(fn):
        return fn
    import importlib

    module, sep, name = str(fn).partition(":")
    if not sep or not module or not name:
        raise ValueError(f"a callable reference is 'module:function', got {fn!r}")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{fn!r} is not callable")
    resolved: Callable[..., Any] = target
    return resolved


def portable(path: str, base: Path | None) -> str:
    """``path`` relative to ``base`` when inside it (keys survive moving the whole tree)."""
    if base is None or "://" in path:
        return path
    root = os.fspath(base).rstrip(os.sep) + os.sep
    return path[len(root) :].replace(os.sep, "/") if path.startswith(root) else path


def job_key(
    target: str,
    input: str,
    args: Sequence[str],
    options: Mapping[str, Any] | None,
    base: Path | None,
) -> str:
    """The job's identity: what runs, on which input, with which parameters (not the output,
    so a derived output name can carry it). 16 hex digits of sha256."""
    payload = [
        target,
        portable(input, base),
        list(args),
        json.dumps(options or {}, sort_keys=True, default=str),
    ]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


#: bytes hashed at the start, the middle and the end of an input (see ``input_identity``):
#: headers and indexes change with any re-encode; a rerun of a large batch reads 48 KiB per input
SAMPLE_BYTES = 16 * 1024


def input_identity(path: str) -> dict[str, Any] | None:
    """What a done marker remembers of a job's input, so that a changed input runs again:
    size, modification time (ns) and a blake2b digest of 16 KiB at its start, middle and end
    (the whole file when smaller). A folder (or an image pattern's folder) is its files'
    count, total size and newest modification time. None for what cannot be looked at here
    (URLs, a missing path): such inputs are judged by the job's key alone."""
    if "://" in path:
        return None
    folder, name = os.path.split(path.rstrip(os.sep))
    target = folder if "%" in name else path
    try:
        st = os.stat(target)
    except OSError:
        return None
    if os.path.isdir(target):
        count = size = newest = 0
        with os.scandir(target) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                    est = entry.stat(follow_symlinks=False)
                    count, size = count + 1, size + est.st_size
                    newest = max(newest, est.st_mtime_ns)
        return {"files": count, "size": size, "mtime_ns": newest}
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(target, "rb") as f:
            if st.st_size <= 3 * SAMPLE_BYTES:
                digest.update(f.read())
            else:
                for offset in (0, (st.st_size - SAMPLE_BYTES) // 2, st.st_size - SAMPLE_BYTES):
                    f.seek(offset)
                    digest.update(f.read(SAMPLE_BYTES))
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": digest.hexdigest()}


def derived_output(input: str, key: str, output_dir: Path, ext: str | None = None) -> str:
    """``DIR/<input stem>-<key[:8]><ext>``: equal basenames from different folders, or one
    input run with different parameters, never share an output."""
    name = Path(input.split("?")[0]).name or "input"
    stem, suffix = os.path.splitext(name)
    if ext:
        suffix = ext if ext.startswith(".") else f".{ext}"
    return str(output_dir / f"{stem}-{key[:8]}{suffix or '.mp4'}")
