"""The batch runner: validate every job, skip what is finished, run the rest on an engine,
retry failures, and record each result as it lands.

>>> from vt.batch import Job, run_batch
>>> report = run_batch([Job("a.mp4", "out/a.mkv", command="transcode",
...                         options={"crf": 30})], workers=2, retries=1)
>>> report.failed
0
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vt.batch.jobs import DONE, FAILED, SKIPPED, Job, JobResult, Task, input_identity
from vt.batch.manifest import CommandTable, prepare
from vt.batch.status import RunLock, StatusTable, marker_path, output_exists, read_marker
from vt.errors import UsageError

log = logging.getLogger("vt")


@dataclass
class Counts:
    """Where the batch stands, handed to the progress callback with each result."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


ProgressFn = Callable[[JobResult, Counts], None]
#: ``job_progress(result, done, total)``: a running job's own progress (frames, for video)
JobProgressFn = Callable[[JobResult, int, "int | None"], None]


@dataclass
class BatchReport:
    """What a run did: one result per job, counts, and where the time went."""

    results: list[JobResult]
    engine: str
    workers: int
    wall_s: float = 0.0
    startup_s: float = 0.0  # engine start-up (workers, Ray) before the first job ran
    status_path: Path | None = None
    counts: Counts = field(default_factory=lambda: Counts(0))
    single_thread: bool = False  # jobs ran on one core each (see ``single_thread_rule``)
    stale_removed: int = 0  # temporaries of killed runs removed from the output folders

    @property
    def done(self) -> int:
        return self.counts.done

    @property
    def failed(self) -> int:
        return self.counts.failed

    @property
    def skipped(self) -> int:
        return self.counts.skipped

    @property
    def pending(self) -> int:
        return self.counts.total - self.counts.finished

    def summary(self) -> str:
        c = self.counts
        text = (
            f"{c.total} jobs: {c.done} done, {c.failed} failed, {c.skipped} skipped "
            f"(finished before)"
        )
        if self.pending:
            text += f", {self.pending} not run"
        text += f" in {self.wall_s:.1f} s ({self.engine}, {self.workers} worker"
        text += f"{'s' if self.workers != 1 else ''}"
        text += f"{', single-thread jobs' if self.single_thread else ''}"
        text += f", start-up {self.startup_s:.1f} s)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.counts.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "pending": self.pending,
            "engine": self.engine,
            "workers": self.workers,
            "single_thread": self.single_thread,
            "stale_removed": self.stale_removed,
            "wall_s": round(self.wall_s, 3),
            "startup_s": round(self.startup_s, 3),
            "status": str(self.status_path) if self.status_path else None,
            "failures": [
                {"row": r.row, "input": r.input, "error": r.error}
                for r in self.results
                if r.status == FAILED
            ],
        }


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (i from 0 to n-1) → ``(i, n)``."""
    if text is None or isinstance(text, tuple):
        return text
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard takes i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return i, n


def in_shard(job: Job, shard: tuple[int, int] | None) -> bool:
    """Rows 1, 1+n, 1+2n… are shard 0: deterministic, balanced, and the same on every
    machine that reads the same manifest."""
    return shard is None or (job.row - 1) % shard[1] == shard[0]


def _gpu_hint(options: Mapping[str, Any]) -> bool:
    """Whether a job looks like GPU work (a model, --ai, a CUDA device)."""

    def truthy(value: Any) -> bool:
        return str(value).strip().lower() not in ("", "0", "false", "no", "off", "none")

    return (
        truthy(options.get("model", ""))
        or truthy(options.get("ai", ""))
        or str(options.get("device", "")).startswith("cuda")
    )


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def single_thread_rule(
    engine: str, at_once: int, cpus_per_job: float = 1.0, cores: int | None = None
) -> bool:
    """Whether jobs should run single-threaded when the caller does not say: when each job
    has at most one core to itself. Locally that is when the jobs running at once are at
    least as many as the usable cores (a job's own decode, process and encode threads would
    only fight the other jobs for them); on Ray, when an actor asks for at most one CPU."""
    if engine == "ray":
        return cpus_per_job <= 1
    return at_once >= (cores if cores is not None else usable_cores())


def clean_output_folders(jobs: Iterable[Job], also: Iterable[Path] = ()) -> int:
    """Remove the temporaries that killed vt processes left beside the jobs' outputs (and in
    ``also``); ``vt.tempfiles`` touches only its own names whose process is gone."""
    from vt.tempfiles import clean_stale

    folders = {os.path.dirname(marker_path(j.output)) for j in jobs if j.output}
    folders.update(os.fspath(f) for f in also)
    removed = 0
    for folder in sorted(folders):
        if os.path.isdir(folder):
            removed += clean_stale(folder).removed
    return removed


def _plan(job: Job, overwrite: bool) -> tuple[str, Any]:
    """``("skip", marker)``, ``("refuse", message)`` or ``("run", may_overwrite)``.

    A job is finished when its marker says done with the same key and the same input
    identity (size, time, sampled hash: a changed input runs again) and its output exists."""
    marker = read_marker(job.output or "")
    exists = output_exists(job.output or "")
    if (
        marker
        and marker.get("state") == DONE
        and marker.get("key") == job.key
        and exists
        and marker.get("input_id") == input_identity(job.input)
    ):
        return "skip", marker
    if exists and marker is None and not overwrite and "--overwrite" not in job.args:
        return "refuse", (
            f"output exists and was not written by vt batch: {job.output} "
            "(use --overwrite to replace it)"
        )
    return "run", exists  # a marker proves vt made the output: it may be replaced


def run_batch(
    jobs: Iterable[Job],
    *,
    workers: int | None = None,
    retries: int = 1,
    engine: str = "local",
    address: str | None = None,
    status: str | os.PathLike[str] | None = None,
    status_format: str | None = None,
    shard: str | tuple[int, int] | None = None,
    overwrite: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    output_ext: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    base: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    cpus_per_job: float = 1.0,
    gpus_per_job: float | None = None,
    dry_run: bool = False,
    name: str = "jobs",
    single_thread: bool | None = None,
    job_progress: JobProgressFn | None = None,
) -> BatchReport:
    """Run ``jobs`` and return one :class:`JobResult` per job (in the jobs' order).

    ``workers`` jobs run at once (default: one per GPU, else one; on Ray: as many as the
    cluster's CPUs allow). A failing job is retried ``retries`` times, then recorded as
    failed; the others go on. Finished jobs (marker present, same key) are skipped.
    ``status`` (a path; format from its suffix unless ``status_format``) is rewritten after
    every job. ``defaults`` are options every job gets unless it sets them; ``base`` is the
    folder keys are made relative to. ``progress(result, counts)`` is called in this process
    as each job finishes. Bad jobs raise ``UsageError`` before anything runs.

    ``single_thread`` runs every job on one core (commands get ``--single-thread``, callables
    with a ``single_thread`` parameter get ``single_thread=True``; a job whose options set it
    keeps its own); None decides by :func:`single_thread_rule`. Before the jobs run, the
    temporaries of killed runs are removed from the output folders.

    ``job_progress(result, done, total)`` is called in this process while a job runs, for
    callables with a ``progress`` parameter (they call ``progress(done, total)``; a video job
    counts frames); the local engine relays it, Ray does not (its jobs report when done).
    """
    from vt.batch.manifest import manifest_format

    clock = time.perf_counter()
    if retries < 0:
        raise UsageError("--retries must be >= 0")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be >= 1")
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r} (use local or ray)")
    shard = parse_shard(shard)
    job_list = list(jobs)
    table = CommandTable() if any(j.command is not None for j in job_list) else None
    base_path = Path(os.path.abspath(base if base is not None else os.getcwd()))
    prepare(
        job_list,
        output_dir=output_dir,
        output_ext=output_ext,
        defaults=defaults,
        base=base_path,
        table=table,
        name=name,
    )
    job_list = [j for j in job_list if in_shard(j, shard)]
    status_path = Path(status).absolute() if status is not None else None
    if status_path is not None and not dry_run:
        status_path.parent.mkdir(parents=True, exist_ok=True)
    fmt = status_format or (manifest_format(status_path) if status_path else "json")
    results = [
        JobResult(row=j.row, key=j.key, command=j.target, input=j.input, output=j.output or "")
        for j in job_list
    ]
    table_out = StatusTable(status_path, fmt, results)
    counts = Counts(total=len(job_list))
    runner: Any = None
    if engine == "ray":
        from vt.batch.engines import RayEngine, import_ray

        import_ray()  # say how to install it before anything else happens
        runner = RayEngine(address, workers, cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job)
    else:
        from vt.batch.engines import LocalEngine

        runner = LocalEngine(workers, commands=table is not None)
        if job_progress is not None:
            runner.on_progress = lambda task, done, total: job_progress(
                table_out.results[task.index], done, total
            )
    report = BatchReport(
        table_out.results, engine, runner.workers or 0, status_path=status_path, counts=counts
    )

    def finish(index: int, result: JobResult) -> None:
        table_out.results[index] = result
        if result.status == DONE:
            counts.done += 1
        elif result.status == FAILED:
            counts.failed += 1
        elif result.status == SKIPPED:
            counts.skipped += 1
        if progress is not None:
            progress(result, counts)

    lock = RunLock(status_path) if status_path is not None and not dry_run else nullcontext()
    with lock:
        if not dry_run:  # under the lock: no other run of this batch is writing there
            report.stale_removed = clean_output_folders(
                job_list, [status_path.parent] if status_path is not None else []
            )
            if report.stale_removed:
                log.info("removed %d temporaries of killed runs", report.stale_removed)
        queue: deque[tuple[int, int, bool]] = deque()  # (index, attempt, may overwrite)
        for index, job in enumerate(job_list):
            action, detail = _plan(job, overwrite)
            result = table_out.results[index]
            if action == "skip":
                result.status, result.report = SKIPPED, detail.get("report")
                result.finished = detail.get("finished")
                finish(index, result)
            elif action == "refuse":
                result.status, result.error = FAILED, detail
                finish(index, result)
            else:
                queue.append((index, 1, bool(detail) or overwrite))
        if dry_run:
            report.wall_s = time.perf_counter() - clock
            return report
        if engine == "ray":  # one pool at a time: group the queue by command/model
            order: dict[str, int] = {}
            for index, _, _ in queue:
                order.setdefault(_group(job_list[index]), len(order))
            queue = deque(sorted(queue, key=lambda item: order[_group(job_list[item[0]])]))
        at_once = min(runner.workers or usable_cores(), len(queue))
        report.single_thread = (
            single_thread
            if single_thread is not None
            else (single_thread_rule(engine, at_once, cpus_per_job))
        )
        table_out.write()
        if queue:
            _run(
                job_list,
                queue,
                runner,
                table,
                retries,
                table_out,
                counts,
                finish,
                report,
                _sets_single_thread(defaults),
            )
        table_out.write()
    report.wall_s = time.perf_counter() - clock
    return report


def _group(job: Job) -> str:
    return f"{job.target}|{job.options.get('model', '')}"


def _sets_single_thread(options: Mapping[str, Any] | None) -> bool:
    return any(str(k).lstrip("-").replace("-", "_") == "single_thread" for k in options or {})


def _task(
    job: Job,
    index: int,
    attempt: int,
    may_overwrite: bool,
    table: CommandTable | None,
    single_thread: bool = False,
) -> Task:
    """The worker's task for one attempt; ``single_thread`` is the runner's choice, which a
    job whose options (or the batch's defaults) set ``single_thread`` does not get."""
    task = Task(
        row=job.row,
        index=index,
        key=job.key,
        input=job.input,
        output=job.output or "",
        command=job.command,
        fn=job.fn,
        options=job.options,
        attempt=attempt,
        overwrite=may_overwrite,
        group=_group(job),
        gpu=_gpu_hint(job.options),
        single_thread=single_thread,
    )
    if job.command is not None and table is not None:
        info = table.info(job.command, f"row {job.row}")
        task.argv = tuple(info.argv(job.input, task.output, job.args, may_overwrite, single_thread))
        task.options = {}
    return task


def _run(
    jobs: list[Job],
    queue: deque[tuple[int, int, bool]],
    engine: Any,
    table: CommandTable | None,
    retries: int,
    status: StatusTable,
    counts: Counts,
    finish: Callable[[int, JobResult], None],
    report: BatchReport,
    defaults_set_single_thread: bool = False,
) -> None:
    retry: deque[tuple[int, int, bool]] = deque()

    def single(job: Job) -> bool:
        return (
            report.single_thread
            and not defaults_set_single_thread
            and not _sets_single_thread(job.options)
        )

    previous = _sigterm_as_interrupt()
    try:
        head = jobs[queue[0][0]]
        first = _task(head, queue[0][0], 1, False, table, single(head))
        if engine.name == "ray":
            engine.start(len(queue), first)
        else:
            engine.start(len(queue))
        report.startup_s = engine.startup_s
        report.workers = getattr(engine, "capacity", None) or engine.workers
        running = 0
        while queue or retry or running:
            while engine.free() and (retry or queue):
                index, attempt, may_overwrite = (retry or queue).popleft()
                job = jobs[index]
                engine.submit(_task(job, index, attempt, may_overwrite, table, single(job)))
                running += 1
            counts.running = running
            for task, outcome in engine.wait():
                running -= 1
                index = task.index
                result = status.results[index]
                result.attempts = task.attempt
                result.error, result.report = outcome.error, outcome.report
                result.started, result.finished = outcome.started, outcome.finished
                result.seconds, result.worker = outcome.seconds, outcome.worker or None
                result.model_loads = outcome.model_loads
                if outcome.ok:
                    result.status = DONE
                elif task.attempt <= retries:  # try again, after the jobs already waiting
                    # an output the failed attempt left (with its marker) is vt's to replace
                    mine = output_exists(task.output) and read_marker(task.output) is not None
                    retry.append((index, task.attempt + 1, task.overwrite or mine))
                    status.maybe_write()
                    continue
                else:
                    result.status = FAILED
                counts.running = running
                finish(index, result)
                status.maybe_write()
        engine.close()
    except BaseException:
        engine.close(abort=True)
        status.write()  # what was cut short stays pending; finished jobs are all recorded
        raise
    finally:
        _restore(previous)


def _sigterm_as_interrupt() -> Any:
    """SIGTERM stops a batch like Ctrl-C: workers stopped, status written."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None


def _restore(previous: Any) -> None:
    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except ValueError:  # pragma: no cover
            pass


__all__ = [
    "BatchReport",
    "Counts",
    "JobProgressFn",
    "ProgressFn",
    "parse_shard",
    "run_batch",
    "single_thread_rule",
]
