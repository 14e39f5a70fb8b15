"""Runs batch tasks inside a long-lived worker (a local worker process or a Ray actor).

The vt CLI is built once per worker and each command is invoked in-process, so whatever a
command caches per process — models through :mod:`vt.models`' memo above all — is reused by
the worker's next job instead of being loaded per job. A job's stdout is its report (commands
run with ``--json`` where they have it); its stderr is kept (the tail) for the error message.

A callable job may take two keyword parameters from the runner besides its options:
``single_thread`` (run on one core) and ``progress`` (``progress(done, total)`` as it goes,
e.g. frames; relayed to the runner's ``job_progress`` by local workers, at most
:data:`PROGRESS_EVERY` seconds apart).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vt.batch.jobs import Outcome, Task, input_identity, resolve_callable
from vt.batch.status import output_exists, read_marker, remove_marker, write_marker

#: how much of a job's stdout/stderr a worker keeps (a report larger than this is dropped)
CAPTURE_LIMIT = 256 * 1024
REPORT_LIMIT = 64 * 1024
#: seconds between two progress messages of one job (the last one is always sent)
PROGRESS_EVERY = 0.2

#: where a worker sends a job's progress: ``sink(task, done, total)``
ProgressSink = Callable[[Task, int, "int | None"], None]


class _Tail(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size, self.dropped = limit, 0, 0
        self.parts: list[str] = []

    def write(self, text: str | bytes) -> int:
        if isinstance(text, bytes):  # some writers hand text streams bytes
            text = text.decode(errors="replace")
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


class Executor:
    """Runs tasks one at a time in this process; build it once per worker."""

    def __init__(self, progress_sink: ProgressSink | None = None) -> None:
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._group: Any = None
        self.progress_sink = progress_sink

    def ready(self, commands: bool = True) -> str:
        """Build the vt CLI (plugins loaded once) and say who we are. A worker that runs
        only callables skips it (``commands`` False): it is built on first use anyway."""
        if commands:
            self.group()
        return self.worker

    def group(self) -> Any:
        if self._group is None:
            import typer

            from vt.cli import create_app
            from vt.plugins import get_host

            self._group = typer.main.get_command(create_app(get_host()))  # every command built
        return self._group

    def run(self, task: Task) -> Outcome:
        """One attempt at ``task``; never raises (a failure is an ``Outcome``)."""
        from vt.models import memo_stats

        started = time.time()
        try:
            report = self._attempt(task)
            ok, error = True, None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any job failure is reported, not raised
            ok, error, report = False, _message(exc), getattr(exc, "vt_report", None)
        return Outcome(
            ok=ok,
            error=error,
            report=report,
            started=started,
            finished=time.time(),
            worker=self.worker,
            model_loads=memo_stats().loads,
        )

    def _attempt(self, task: Task) -> Any:
        out = Path(task.output)
        folder = out.parent if "%" not in out.name else out.parent.parent
        folder.mkdir(parents=True, exist_ok=True)
        previous = read_marker(task.output)
        # the input as this attempt found it: a later change makes a rerun do the job again
        identity = input_identity(task.input)
        write_marker(
            task.output,
            {
                "state": "started",
                "key": task.key,
                "row": task.row,
                "input": task.input,
                "input_id": identity,
                "target": task.command or str(task.fn),
                "started": time.time(),
            },
        )
        try:
            report = self._call(task)
            if not output_exists(task.output):
                raise RuntimeError(f"the job finished but wrote nothing at {task.output}")
        except BaseException:
            if previous is None and not output_exists(task.output):
                remove_marker(task.output)  # leave things as they were before the job
            raise
        # last: the marker that says this output is complete and which parameters made it
        write_marker(
            task.output,
            {
                "state": "done",
                "key": task.key,
                "row": task.row,
                "input": task.input,
                "input_id": identity,
                "target": task.command or str(task.fn),
                "finished": time.time(),
                "report": report,
            },
        )
        return report

    def _call(self, task: Task) -> Any:
        stdout, stderr = _Tail(CAPTURE_LIMIT), _Tail(CAPTURE_LIMIT)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                if task.command is not None:
                    self._command(task)
                    report = _parse_report(stdout)
                else:
                    report = self._callable(task)
        except BaseException as exc:
            exc.vt_report = _stderr_report(stderr)  # type: ignore[attr-defined]
            lines = [ln for ln in stderr.getvalue().splitlines() if ln.strip()]
            if isinstance(exc, SystemExit) and lines:  # the command's own last word
                exc.vt_detail = lines[-1]  # type: ignore[attr-defined]
            raise
        extra = _stderr_report(stderr)
        if extra and isinstance(report, dict):
            report = {**report, **extra}
        elif extra and report is None:
            report = extra
        return report

    def _command(self, task: Task) -> None:
        from typer.core import TyperGroup

        # TyperGroup.main, not VtGroup.main: errors come back as exceptions, not exits
        rv = TyperGroup.main(
            self.group(), args=list(task.argv), prog_name="vt", standalone_mode=False
        )
        if isinstance(rv, int) and rv != 0:
            raise SystemExit(rv)

    def _callable(self, task: Task) -> Any:
        """``fn(input, tmp, **options)`` into a temporary name, renamed on success. A callable
        with a ``single_thread`` parameter is told the runner's choice (unless the job's own
        options set it)."""
        from vt.tempfiles import temp_path

        fn = resolve_callable(task.fn)  # type: ignore[arg-type]
        options = dict(task.options)
        if "single_thread" not in options and takes(fn, "single_thread"):
            options["single_thread"] = task.single_thread
        if self.progress_sink is not None and "progress" not in options and takes(fn, "progress"):
            options["progress"] = _throttled(self.progress_sink, task)
        final = Path(task.output)
        tmp = temp_path(final, final.suffix)
        try:
            result = fn(task.input, str(tmp), **options)
            if not tmp.exists():
                raise RuntimeError(f"{task.fn} wrote nothing at the output path it was given")
            if final.is_dir() and not final.is_symlink() and task.overwrite:
                shutil.rmtree(final)  # the runner allows it only when vt made it (or --overwrite)
            os.replace(tmp, final)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        return _jsonable(result)


def takes(fn: Any, name: str) -> bool:
    """Whether ``fn`` names a parameter ``name`` (``**kwargs`` alone does not count: the
    callable may pass them on to something that does not take it)."""
    import inspect

    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    param = parameters.get(name)
    return param is not None and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)


def _throttled(sink: ProgressSink, task: Task) -> Callable[[int, int | None], None]:
    """``progress(done, total)`` for one job: passed on at most every PROGRESS_EVERY
    seconds, and always when ``done`` reaches ``total``."""
    last = [0.0]

    def progress(done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY or (total is not None and done >= total):
            last[0] = now
            try:
                sink(task, int(done), None if total is None else int(total))
            except (OSError, ValueError):  # the runner is gone: the job's own end says so
                pass

    return progress


def _message(exc: BaseException) -> str:
    detail = getattr(exc, "vt_detail", None)
    if isinstance(exc, SystemExit):
        code = exc.code
        text = f"exited with code {code}"
        return f"{text}: {detail}" if detail else text
    if hasattr(exc, "format_message"):  # click's usage errors
        return str(exc.format_message())
    from vt.errors import VtError

    text = str(exc)
    if isinstance(exc, VtError):
        return text.splitlines()[0] if text else type(exc).__name__
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _parse_report(stdout: _Tail) -> Any:
    text = stdout.getvalue().strip()
    if not text or stdout.dropped:
        return None
    try:
        report = json.loads(text)
    except ValueError:  # not JSON: keep the last lines the command printed
        return {"stdout": text[-2000:]}
    return report if len(text) <= REPORT_LIMIT else {"note": "report too large to keep"}


def _stderr_report(stderr: _Tail) -> dict[str, Any] | None:
    text = stderr.getvalue().strip()
    return {"stderr": text[-2000:]} if text else None


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        return {"result": repr(value)[:2000]}
    return json.loads(text) if len(text) <= REPORT_LIMIT else {"note": "report too large"}
