"""Where batch tasks run: a pool of worker processes on this machine, or Ray actors.

Both keep long-lived workers that run tasks in-process through :class:`Executor` (the CLI
and models built once per worker). The runner drives either through the same small
interface: ``start``, ``free``, ``submit``, ``wait``, ``close``.

- :class:`LocalEngine`: N processes (forked while torch is not loaded here, else spawned),
  one task each at a time, each pinned to one GPU where there are GPUs. A worker that dies (a
  crash, the OOM killer) fails its task's
  attempt and is replaced. Workers die with the runner (``PR_SET_PDEATHSIG`` → SIGTERM, so an
  output in progress is cleaned up) instead of outliving a killed ``vt batch``.
- :class:`RayEngine`: Ray actors, one pool per command/model, each actor asking for
  ``num_cpus`` (and ``num_gpus`` for GPU work). Ray restarts a lost actor and retries its task
  (``max_restarts``/``max_task_retries``); a job's own failure comes back as an outcome and
  vt's retry policy handles it. Plain actors and ``ray.wait`` rather than
  ``ray.util.ActorPool``: a lost actor's failure must be tied back to its job, which the
  pool's ``get_next_unordered`` does not do.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vt.batch.executor import Executor
from vt.batch.jobs import Outcome, Task
from vt.errors import UsageError, VtError

RAY_HINT = "the Ray engine needs Ray: pip install 'vt[ray]' (or: pip install 'ray[data]')"


def gpu_ids() -> list[str]:
    """GPUs this process may use, without importing torch: ``CUDA_VISIBLE_DEVICES`` when
    set, else the NVIDIA driver's list."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        return [] if ids[:1] == ["-1"] else ids
    folder = Path("/proc/driver/nvidia/gpus")
    try:
        return [str(i) for i in range(len(list(folder.iterdir())))]
    except OSError:
        return []


def default_workers() -> int:
    """One worker per GPU where there are GPUs, else one."""
    return max(1, len(gpu_ids()))


# -- local ---------------------------------------------------------------------------------------
def start_method() -> str:
    """``fork`` on Linux while this process has not imported torch: a worker then starts in
    milliseconds with the CLI and plugins already loaded. ``spawn`` otherwise: a CUDA context
    (or torch's thread pools) must never be forked."""
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return "fork"
    return "spawn"


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the runner dies (a SIGKILLed ``vt batch`` must not leave
    workers writing outputs nobody records)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the runner died before we asked
        os._exit(1)


def _worker_main(
    conn: Any, runner_end: Any, env: dict[str, str], parent: int, commands: bool = True
) -> None:
    """A local worker: build the CLI once, then run tasks until told to stop."""
    runner_end.close()  # a forked child holds the runner's end too: drop it
    os.environ.update(env)
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner handles Ctrl-C and stops us

    def progress(task: Task, done: int, total: int | None) -> None:
        conn.send(("progress", (task.index, done, total)))

    try:
        executor = Executor(progress_sink=progress)
        conn.send(("ready", executor.ready(commands)))
        while True:
            try:
                task = conn.recv()
            except EOFError:
                return
            if task is None:
                return
            conn.send(("done", executor.run(task)))
    except KeyboardInterrupt:  # SIGTERM inside an atomic output: it cleaned up, now stop
        return
    except BrokenPipeError:
        return
    except Exception as exc:  # noqa: BLE001 - tell the runner why this worker cannot work
        try:
            conn.send(("broken", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass


class _Worker:
    def __init__(self, index: int, process: Any, conn: Any) -> None:
        self.index, self.process, self.conn = index, process, conn
        self.task: Task | None = None
        self.ready = False
        self.name = f"local:{process.pid}"


class LocalEngine:
    """N long-lived worker processes on this machine."""

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        gpus: Sequence[str] | None = None,
        commands: bool = True,
        method: str | None = None,
    ) -> None:
        self.gpus = list(gpu_ids() if gpus is None else gpus)
        self.commands = commands  # the batch has command jobs: workers build the CLI at start
        self.workers = workers or max(1, len(self.gpus))
        self.startup_s = 0.0
        #: ``on_progress(task, done, total)``: a running job's own progress (e.g. frames)
        self.on_progress: Callable[[Task, int, int | None], None] | None = None
        self._pool: list[_Worker] = []
        self._failed_starts = 0
        import multiprocessing

        # ``method``: a multiprocessing start method (default: ``start_method()``)
        self._mp: Any = multiprocessing.get_context(method or start_method())

    def _spawn(self, index: int) -> _Worker:
        env = {"CUDA_VISIBLE_DEVICES": self.gpus[index % len(self.gpus)]} if self.gpus else {}
        parent_conn, child_conn = self._mp.Pipe()
        process = self._mp.Process(
            target=_worker_main,
            args=(child_conn, parent_conn, env, os.getpid(), self.commands),
            name=f"vt-batch-{index}",
        )
        process.start()
        child_conn.close()
        return _Worker(index, process, parent_conn)

    def start(self, tasks: int) -> None:
        started = time.perf_counter()
        self._pool = [self._spawn(i) for i in range(max(1, min(self.workers, tasks)))]
        while not all(w.ready for w in self._pool):  # start-up is reported on its own
            self._poll(None)
        self.startup_s = time.perf_counter() - started

    def free(self) -> int:
        return sum(w.task is None for w in self._pool)

    def submit(self, task: Task) -> None:
        worker = min((w for w in self._pool if w.task is None), key=lambda w: not w.ready)
        worker.task = task
        worker.conn.send(task)

    def wait(self, timeout: float | None = None) -> list[tuple[Task, Outcome]]:
        return self._poll(timeout)

    def _poll(self, timeout: float | None) -> list[tuple[Task, Outcome]]:
        from multiprocessing.connection import wait

        watch: dict[Any, _Worker] = {}
        for w in self._pool:
            if w.task is not None or not w.ready:
                watch[w.conn] = w
                watch[w.process.sentinel] = w
        if not watch:
            return []
        results: list[tuple[Task, Outcome]] = []
        seen: set[int] = set()
        for obj in wait(list(watch), timeout):
            w = watch[obj]
            if id(w) in seen:
                continue
            seen.add(id(w))
            try:
                while w.conn.poll():
                    kind, payload = w.conn.recv()
                    if kind == "ready":
                        w.ready, w.name = True, f"{payload}"
                    elif kind == "done" and w.task is not None:
                        results.append((w.task, payload))
                        w.task = None
                    elif kind == "progress" and w.task is not None:
                        index, done, total = payload
                        if self.on_progress is not None and index == w.task.index:
                            self.on_progress(w.task, done, total)
                    elif kind == "broken":
                        raise VtError(f"a batch worker cannot start: {payload}")
            except (EOFError, OSError):
                pass
            if not w.process.is_alive():
                results.extend(self._replace(w))
        return results

    def _replace(self, dead: _Worker) -> list[tuple[Task, Outcome]]:
        dead.process.join(1)
        code = dead.process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        out = []
        if dead.task is not None:
            now = time.time()
            out.append(
                (
                    dead.task,
                    Outcome(
                        ok=False,
                        error=f"worker process died ({how})",
                        started=now,
                        finished=now,
                        worker=dead.name,
                    ),
                )
            )
        elif not dead.ready:
            self._failed_starts += 1
            if self._failed_starts > 2 * self.workers:
                raise VtError(
                    f"batch workers die while starting ({how}); run one job with "
                    "`vt --debug` to see why"
                )
        dead.conn.close()
        self._pool[self._pool.index(dead)] = self._spawn(dead.index)
        return out

    def close(self, abort: bool = False) -> None:
        for w in self._pool:
            if abort:
                if w.process.is_alive():
                    w.process.terminate()  # SIGTERM: an output in progress is cleaned up
            else:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + (10 if abort else 30)
        for w in self._pool:
            w.process.join(max(0.1, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
            w.conn.close()
        self._pool = []


# -- Ray -----------------------------------------------------------------------------------------
def import_ray() -> Any:
    """Ray, or a usage error saying how to install it (exit 2)."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_HINT) from None
    return ray


class RayWorker:
    """The actor: one Executor (CLI and models) for its lifetime."""

    def __init__(self) -> None:
        self.executor = Executor()

    def ready(self) -> str:
        return self.executor.ready()

    def run(self, task: Task) -> Outcome:
        return self.executor.run(task)


class RayEngine:
    """Ray actors, one pool per command/model; a local Ray is started when no address is
    given (``--address``, else ``RAY_ADDRESS``)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float | None = None,
        max_restarts: int = 3,
    ) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers
        self.cpus_per_job, self.gpus_per_job = cpus_per_job, gpus_per_job
        self.max_restarts = max_restarts
        self.startup_s = 0.0
        self.capacity = 1
        self.cluster_gpus = 0.0
        self._ray: Any = None
        self._owns = False
        self._idle: dict[str, list[Any]] = {}
        self._inflight: dict[Any, tuple[Task, Any]] = {}
        self._actors = 0
        self._cls: Any = None

    def start(self, tasks: int, first: Task | None = None) -> None:
        ray = import_ray()
        self._ray = ray
        started = time.perf_counter()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
            common = {"logging_level": logging.WARNING, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **common)
            else:  # "local": a new embedded Ray, never someone else's on this machine
                ray.init(
                    address="local",
                    include_dashboard=False,
                    object_store_memory=128 * 1024 * 1024,
                    **common,
                )
            self._owns = True
        resources = ray.cluster_resources()
        self.cluster_gpus = float(resources.get("GPU", 0))
        cpus = float(resources.get("CPU", 1))
        self.capacity = self.workers or max(1, int(cpus // max(self.cpus_per_job, 1e-6)))
        self._cls = ray.remote(RayWorker)
        if first is not None:  # the first pool's actors start before the clock for jobs
            actors = [self._new_actor(first) for _ in range(max(1, min(self.capacity, tasks)))]
            ray.get([a.ready.remote() for a in actors])
            self._idle[first.group] = actors
        self.startup_s = time.perf_counter() - started

    def _gpus_for(self, task: Task) -> float:
        if self.gpus_per_job is not None:
            return self.gpus_per_job
        return 1.0 if task.gpu and self.cluster_gpus > 0 else 0.0

    def _new_actor(self, task: Task) -> Any:
        self._actors += 1
        return self._cls.options(
            num_cpus=self.cpus_per_job,
            num_gpus=self._gpus_for(task),
            max_restarts=self.max_restarts,
            max_task_retries=self.max_restarts,
        ).remote()

    def free(self) -> int:
        return max(0, self.capacity - len(self._inflight))

    def submit(self, task: Task) -> None:
        idle = self._idle.setdefault(task.group, [])
        if idle:
            actor = idle.pop()
        else:
            if self._actors >= self.capacity:  # make room: retire another pool's idle actor
                for group, actors in self._idle.items():
                    if group != task.group and actors:
                        self._ray.kill(actors.pop())
                        self._actors -= 1
                        break
            actor = self._new_actor(task)
        self._inflight[actor.run.remote(task)] = (task, actor)

    def wait(self, timeout: float | None = None) -> list[tuple[Task, Outcome]]:
        ray = self._ray
        if not self._inflight:
            return []
        done, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        results = []
        for ref in done:
            task, actor = self._inflight.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # lost beyond Ray's own retries
                self._actors -= 1
                now = time.time()
                outcome = Outcome(
                    ok=False,
                    error=f"Ray worker lost: {_first_line(exc)}",
                    started=now,
                    finished=now,
                )
                results.append((task, outcome))
                continue
            except ray.exceptions.RayError as exc:
                now = time.time()
                outcome = Outcome(
                    ok=False, error=f"Ray: {_first_line(exc)}", started=now, finished=now
                )
            self._idle.setdefault(task.group, []).append(actor)
            results.append((task, outcome))
        return results

    def close(self, abort: bool = False) -> None:
        ray = self._ray
        if ray is None:
            return
        actors = [a for pool in self._idle.values() for a in pool]
        actors += [actor for _, actor in self._inflight.values()]
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._idle, self._inflight, self._actors = {}, {}, 0
        if self._owns:
            ray.shutdown()
            self._owns = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
