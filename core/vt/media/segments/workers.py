"""Segments in parallel: this process and the batch runner's engines (``vt.batch.engines``:
local worker processes, or Ray actors) take segments from one queue.

A worker rebuilds the processors itself, so models load on its own device: a command run
from the CLI is re-run in the worker with the same arguments, and when it reaches the
pipeline, the pipeline runs the worker's segment instead (``vt.media.segments.serve``);
processors handed to ``process_video`` from Python are pickled to the worker. Each segment is
one batch task (``run_segment_task``), written under a temporary name and renamed into place
by the batch executor; a worker that dies fails its segment's attempt, which runs again once.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vt.errors import UsageError, VtError
from vt.media.segments.run import SegmentResult, SegmentSpec

log = logging.getLogger("vt")

TASK_FN = "vt.media.segments.workers:run_segment_task"
_RETRIES = 1  # a segment whose worker died runs once more
_group: Any = None  # the CLI, built once per worker process


def gpu_ids() -> list[str]:
    from vt.batch.engines import gpu_ids as ids

    return ids()


def default_workers() -> int:
    """One worker per visible GPU, else one."""
    return max(1, len(gpu_ids()))


def cli_context() -> Any:
    """The running vt command's context (Typer's click), or None outside a command."""
    import sys

    if "typer" not in sys.modules:  # from Python: no command is running
        return None
    from typer import main  # Typer's own copy of click holds the context

    return main.get_current_context(silent=True)  # type: ignore[attr-defined]


def cli_recipe() -> dict[str, Any] | None:
    """How a worker rebuilds this run's processors when a vt command is running: the
    command's arguments (recorded by the CLI) and the working folder."""
    ctx = cli_context()
    argv = ctx.meta.get("vt.argv") if ctx is not None else None
    if not argv:
        return None
    return {"kind": "cli", "argv": list(argv), "cwd": os.getcwd()}


def pickle_recipe(processors: Sequence[Any], config: Any, options: Any) -> dict[str, Any]:
    """How a worker rebuilds processors handed over from Python: pickled."""
    try:
        data = pickle.dumps((list(processors), config, options))
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same to the user
        raise UsageError(
            f"--workers needs processors that can be pickled to the worker "
            f"processes ({type(exc).__name__}: {exc}); run them from the vt "
            "command line, or with workers=1"
        ) from None
    return {"kind": "pickle", "data": data, "cwd": os.getcwd()}


def run_segment_task(
    input: str, output: str, *, spec: dict[str, Any], recipe: dict[str, Any], inline: bool
) -> dict[str, Any]:
    """A batch task (``vt.batch`` executor, in a worker process or a Ray actor): write the
    segment ``spec`` into ``output``; returns the :class:`SegmentResult` as a dict."""
    from vt.atomic import interrupt_on_termination
    from vt.media import segments

    job = SegmentSpec(
        **{
            **spec,
            "window": tuple(spec["window"]),
            "keep": tuple(spec["keep"]),
            "time_base": tuple(spec["time_base"]),
        }
    )
    here = os.getcwd()
    if recipe.get("cwd") and os.path.isdir(recipe["cwd"]):
        os.chdir(recipe["cwd"])  # the command's relative paths
    try:
        with interrupt_on_termination():
            if recipe["kind"] == "pickle":
                return _run_pickled(job, recipe, Path(output), inline).to_dict()
            segments.assign(segments.Assignment(job, Path(output), inline))
            try:
                _invoke(recipe["argv"])
            except segments.SegmentServed as served:
                return served.result.to_dict()
            finally:
                segments.assign(None)
            raise VtError(
                f"the command ended without reaching the pipeline: segment {job.index} not written"
            )
    finally:
        os.chdir(here)


def _invoke(argv: list[str]) -> None:
    """Run a vt command in this process; its own errors come back as exceptions."""
    global _group
    import typer
    from typer.core import TyperGroup

    if _group is None:
        from vt.cli import create_app
        from vt.plugins import get_host

        _group = typer.main.get_command(create_app(get_host()))
    rv = TyperGroup.main(_group, args=list(argv), prog_name="vt", standalone_mode=False)
    if isinstance(rv, int) and rv != 0:
        raise SystemExit(rv)


def _run_pickled(
    spec: SegmentSpec, recipe: dict[str, Any], path: Path, inline: bool
) -> SegmentResult:
    from vt.media.processing import ProcessorChain
    from vt.media.segments.run import run_segment, worker_options

    processors, config, options = pickle.loads(recipe["data"])
    with ProcessorChain(processors, options.error_policy) as chain:
        return run_segment(spec, chain, config, worker_options(options, inline), path)


class SegmentPool:
    """This process plus an engine's workers, taking segments from one queue until it is
    empty. ``run_here(spec)`` processes one segment in this process (the main thread);
    ``done(spec, result)`` is called for every finished segment (from either thread)."""

    def __init__(
        self,
        engine: Any,
        recipe: dict[str, Any],
        folder: Path,
        extension: str,
        inline: bool,
        gpu: bool,
    ) -> None:
        self.engine = engine
        self.recipe = recipe
        self.folder, self.extension = folder, extension
        self.inline, self.gpu = inline, gpu
        self.lock = threading.Lock()
        self._queue: deque[SegmentSpec] = deque()
        self._inflight: dict[int, SegmentSpec] = {}
        self._attempts: dict[int, int] = {}
        self._failure: list[BaseException] = []
        self._stop = threading.Event()

    def task(self, spec: SegmentSpec) -> Any:
        from vt.batch.jobs import Task

        path = self.folder / f"seg-{spec.index:06d}.{self.extension}"
        return Task(
            row=spec.index + 1,
            index=spec.index,
            key=f"segment-{spec.index}",
            input=spec.source,
            output=str(path),
            fn=TASK_FN,
            options={"spec": asdict(spec), "recipe": self.recipe, "inline": self.inline},
            attempt=self._attempts.get(spec.index, 0) + 1,
            overwrite=True,
            group="vt-segments",
            gpu=self.gpu,
        )

    def run(
        self,
        pending: Sequence[SegmentSpec],
        run_here: Callable[[SegmentSpec], None],
        done: Callable[[SegmentSpec, SegmentResult], None],
    ) -> None:
        self._queue.extend(pending)
        first = self.task(pending[0])
        if getattr(self.engine, "name", "") == "ray":
            self.engine.start(len(pending), first=first)
        else:
            self.engine.start(len(pending))
        thread = threading.Thread(
            target=self._dispatch, args=(done,), name="vt-segments", daemon=True
        )
        thread.start()
        try:
            while not self._stop.is_set():
                with self.lock:
                    spec = self._queue.popleft() if self._queue else None
                if spec is None:
                    break
                run_here(spec)
            while thread.is_alive():  # what the workers still have
                thread.join(0.2)
        except BaseException:
            self._stop.set()
            thread.join(10)
            raise
        if self._failure:
            raise self._failure[0]

    def raise_if_failed(self) -> None:
        """Called as the local segment goes on: a worker's failure stops it at once."""
        if self._failure:
            raise self._failure[0]

    def _dispatch(self, done: Callable[[SegmentSpec, SegmentResult], None]) -> None:
        engine = self.engine
        try:
            while not self._stop.is_set():
                with self.lock:
                    while engine.free() and self._queue:
                        spec = self._queue.popleft()
                        self._inflight[spec.index] = spec
                        engine.submit(self.task(spec))
                    if not self._inflight and not self._queue:
                        return
                for task, outcome in engine.wait(0.2):
                    spec = self._inflight.pop(task.index)
                    if outcome.ok:
                        result = SegmentResult.from_dict(outcome.report)
                        result.worker = outcome.worker
                        done(spec, result)
                        continue
                    self._attempts[spec.index] = self._attempts.get(spec.index, 0) + 1
                    if "worker process died" in (outcome.error or "") and (
                        self._attempts[spec.index] <= _RETRIES
                    ):
                        log.warning("segment %d: %s; running it again", spec.index, outcome.error)
                        with self.lock:
                            self._queue.appendleft(spec)
                        continue
                    raise VtError(
                        f"segment {spec.index} failed in worker {outcome.worker}: {outcome.error}"
                    )
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._failure.append(exc)
            self._stop.set()
