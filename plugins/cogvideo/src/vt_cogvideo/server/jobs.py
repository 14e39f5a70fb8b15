"""One generation at a time: a bounded queue of jobs in front of a single worker thread."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from vt.errors import ModelUnavailableError, UsageError
from vt_cogvideo.server.artifacts import ArtifactStore

if TYPE_CHECKING:
    from vt_cogvideo.generation import GenerationRequest, GenerationResult, Generator

log = logging.getLogger(__name__)


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class QueueFull(Exception):
    """Every queue slot is taken (the API answers 429)."""


class RunnerStopped(Exception):
    """The server is shutting down and takes no more jobs (the API answers 503)."""


@dataclass
class Job:
    """A generation request and what became of it. The worker thread writes the progress
    fields; readers take ``snapshot()``."""

    id: str
    #: what the worker runs; dropped when the job finishes (it holds the uploaded image)
    request: GenerationRequest | None
    #: the request as the client gave it (JSON), for GET /jobs/{id}
    summary: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    status: JobStatus = JobStatus.QUEUED
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total_steps: int | None = None
    result: GenerationResult | None = None
    error: str | None = None
    #: the HTTP status a synchronous caller gets for the failure (422, 503 or 500)
    error_status: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    #: resolves to the job itself when it reaches a finished status
    future: concurrent.futures.Future[Job] = field(default_factory=concurrent.futures.Future)

    def progress(self, step: int, total: int) -> None:
        self.step, self.total_steps = step, total

    def finish(
        self, status: JobStatus, *, error: str | None = None, error_status: int | None = None
    ) -> None:
        self.status, self.error, self.error_status = status, error, error_status
        self.finished = time.time()
        self.request = None  # finished records are kept: not their images
        if not self.future.done():
            self.future.set_result(self)


class JobRunner:
    """Holds the jobs, runs them one by one on ``generator`` in a worker thread.

    ``queue_size`` jobs may wait behind the running one; ``submit`` raises ``QueueFull``
    beyond that. A queued job can be cancelled outright; a running one is asked to stop
    through the ``cancel`` event the generator checks between denoising steps. After each
    finished video the artifact folder is pruned to ``keep_artifacts``.
    """

    def __init__(
        self,
        generator: Generator,
        store: ArtifactStore,
        *,
        queue_size: int,
        keep_artifacts: int = 0,
        keep_jobs: int = 1000,
        on_done: Callable[[Job], None] | None = None,
    ) -> None:
        self.generator = generator
        self.store = store
        self.queue_size = queue_size
        self.keep_artifacts = keep_artifacts
        self.keep_jobs = keep_jobs
        self.on_done = on_done
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.completed = 0

    # the API side -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="vt-cogvideo-worker", daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def shutdown(self) -> None:
        """Take no more jobs, cancel what waits, ask the running job to stop (returns at
        once: called from the signal handler, so open requests get their answer)."""
        with self._lock:
            self._stopping = True
            while self._waiting:
                self._waiting.popleft().finish(JobStatus.CANCELLED, error="server shut down")
            if self._running is not None:
                self._running.cancel.set()
            self._lock.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """``shutdown()``, then wait for the worker."""
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, request: GenerationRequest, summary: dict[str, Any] | None = None) -> Job:
        with self._lock:
            if self._stopping:
                raise RunnerStopped("the server is shutting down")
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"the queue is full ({self.queue_size} jobs wait already)")
            job = Job(id=uuid.uuid4().hex, request=request, summary=summary or {})
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old_jobs()
            self._lock.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self, status: JobStatus | None = None) -> list[Job]:
        """The jobs held, newest first."""
        with self._lock:
            return [
                job
                for job in reversed(self._jobs.values())
                if status is None or job.status is status
            ]

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once, ask a running one to stop; None if unknown. A
        finished job is returned unchanged."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status is JobStatus.QUEUED:
                self._waiting.remove(job)
                job.cancel.set()
                job.finish(JobStatus.CANCELLED, error="cancelled before it started")
            elif job.status is JobStatus.RUNNING:
                job.cancel.set()
            return job

    def position(self, job: Job) -> int | None:
        """How many jobs run or wait before ``job`` (0: next), None unless queued."""
        with self._lock:
            if job.status is not JobStatus.QUEUED:
                return None
            ahead = next((i for i, j in enumerate(self._waiting) if j is job), 0)
            return ahead + (1 if self._running is not None else 0)

    def depth(self) -> dict[str, Any]:
        with self._lock:
            return {
                "waiting": len(self._waiting),
                "running": self._running is not None,
                "capacity": self.queue_size,
                "completed": self.completed,
            }

    def protected_artifacts(self) -> frozenset[str]:
        """Videos that must survive pruning: the running job's, not yet written anyway."""
        with self._lock:
            return frozenset(
                {self.store.video_path(self._running.id).name} if self._running else ()
            )

    # the worker side ----------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._lock:
            while not self._waiting and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            job = self._waiting.popleft()
            job.status, job.started = JobStatus.RUNNING, time.time()
            self._running = job
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running = None
                    self.completed += 1
            if job.status is JobStatus.DONE:
                self._prune()
            if self.on_done is not None:
                self.on_done(job)

    def _run(self, job: Job) -> None:
        from vt_cogvideo.generation import Cancelled

        output = self.store.video_path(job.id)
        assert job.request is not None  # only finished jobs drop it
        try:
            result = self.generator.generate(
                job.request, output, progress=job.progress, cancel=job.cancel
            )
        except Cancelled as exc:
            job.finish(JobStatus.CANCELLED, error=str(exc) or "cancelled while running")
        except UsageError as exc:  # a request the model cannot take, found late
            job.finish(JobStatus.FAILED, error=str(exc), error_status=422)
        except ModelUnavailableError as exc:
            job.finish(JobStatus.FAILED, error=str(exc), error_status=503)
        except Exception as exc:  # the worker must survive any failure of one job
            log.exception("job %s failed", job.id)
            job.finish(JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}", error_status=500)
        else:
            job.result = result
            job.finish(JobStatus.DONE)

    def _prune(self) -> None:
        try:
            deleted = self.store.prune(self.keep_artifacts, self.protected_artifacts())
        except OSError as exc:
            log.warning("cannot prune %s: %s", self.store.folder, exc)
            return
        if deleted:
            log.info("pruned %d old artifacts", len(deleted))

    def _forget_old_jobs(self) -> None:
        """Drop the oldest finished job records beyond ``keep_jobs`` (lock held)."""
        excess = len(self._jobs) - self.keep_jobs
        if excess <= 0:
            return
        for job_id in [j.id for j in self._jobs.values() if j.status in FINISHED][:excess]:
            del self._jobs[job_id]
