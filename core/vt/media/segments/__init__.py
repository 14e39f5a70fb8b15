"""Segmented runs: one long video cut at its keyframes into segments, each processed and
encoded to a file of its own, then joined by stream copy into the output (with the source's
audio and subtitles muxed once). Segments make a run resumable (``--resume``: finished ones
are kept in ``OUT.vt-resume/`` and reused) and parallel (``--workers N``: processes, on this
machine or Ray's). A plain run never comes here: it is one pass.

- ``plan``: the frame timeline (demux only) and the keyframe-aligned segments.
- ``run``: one segment (with the context frames temporal processors declare) into a file.
- ``join``: the segment files and the side streams into the output.
- ``state``: the resume folder and its job file.
- ``job``: the whole run (``process_segmented``); ``workers``: the worker processes.

Processors say how they segment with two class attributes (``vt.media.processing``):
``temporal_context`` (frames before, or ``(before, after)``, each output frame depends on) and
``segmentable`` (False: one pass, with a note saying why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.media.segments.state import resume_folder
from vt.tempfiles import RESUME_SUFFIX

__all__ = [
    "RESUME_SUFFIX",
    "Assignment",
    "SegmentServed",
    "assign",
    "assigned",
    "check_options",
    "process_segmented",
    "resume_folder",
    "serve",
    "wanted",
]

if TYPE_CHECKING:  # pragma: no cover
    from vt.media.encode import EncoderConfig
    from vt.media.pipeline import PipelineOptions, PipelineReport, ProgressCallback
    from vt.media.processing import FrameProcessor, ProcessorChain
    from vt.media.segments.run import SegmentResult, SegmentSpec
    from vt.media.source import Source


@dataclass
class Assignment:
    """The segment a worker process runs when the command it re-runs reaches the pipeline."""

    spec: SegmentSpec
    path: Path  # where the segment file goes (a temporary name; the caller commits it)
    inline: bool  # decode, process and encode in one thread (fewer than 2 cores per worker)


class SegmentServed(BaseException):  # noqa: N818 - a signal, not an error
    """Raised through a re-run command once its segment is written: whatever the command
    would do after its pipeline (a summary, a contact sheet, a remux) is not for a worker."""

    def __init__(self, result: SegmentResult) -> None:
        super().__init__(f"segment {result.index} written")
        self.result = result


_assignment: Assignment | None = None


def assigned() -> Assignment | None:
    """The segment this process was asked to run, if it is a segment worker."""
    return _assignment


def assign(assignment: Assignment | None) -> None:
    global _assignment
    _assignment = assignment


def wanted(options: PipelineOptions) -> bool:
    """Whether the options ask for a segmented run (else: one pass)."""
    return bool(
        options.resume
        or options.segment_seconds is not None
        or (options.workers is not None and options.workers != 1)
    )


ENGINES = ("local", "ray")


def check_options(options: PipelineOptions) -> None:
    """Usage errors in the segment options (before anything is read)."""
    import math

    from vt.errors import UsageError

    if options.workers is not None and options.workers < 0:
        raise UsageError(f"--workers must be 0 (one per GPU) or more, got {options.workers}")
    seconds = options.segment_seconds
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--segment-seconds must be a positive number, got {seconds}")
    if options.engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {options.engine!r}")
    if options.fps and wanted(options):
        # frames are picked by time across the whole video; per segment the picks could differ
        raise UsageError(
            "a new frame rate (fps) cannot be combined with --resume, --workers or "
            "--segment-seconds yet: run it in one pass"
        )


def serve(
    source: Source,
    processors: Sequence[FrameProcessor] | ProcessorChain,
    config: EncoderConfig,
    options: PipelineOptions,
    progress: ProgressCallback | None = None,
) -> None:
    """Run the assigned segment with the processors the re-run command built, then raise
    :class:`SegmentServed` with the result."""
    from vt.errors import VtError
    from vt.media.processing import ProcessorChain
    from vt.media.segments.run import run_segment, worker_options

    job = _assignment
    assert job is not None
    if (
        source.kind != "file"
        or source.path is None
        or (source.path.resolve() != Path(job.spec.source).resolve())
    ):
        raise VtError(
            f"segment worker: the command read {source.describe()}, not {job.spec.source}"
        )
    owned = not isinstance(processors, ProcessorChain)
    chain = (
        processors
        if isinstance(processors, ProcessorChain)
        else ProcessorChain(processors, options.error_policy)
    )
    try:
        result = run_segment(
            job.spec, chain, config, worker_options(options, job.inline), job.path, progress
        )
    finally:
        if owned:
            chain.close()
    raise SegmentServed(result)


def process_segmented(
    source: Source,
    output: str | Path,
    processors: Sequence[FrameProcessor] | ProcessorChain,
    config: EncoderConfig,
    options: PipelineOptions,
    progress: ProgressCallback | None = None,
) -> PipelineReport:
    """See :func:`vt.media.segments.job.process_segmented`."""
    from vt.media.segments.job import process_segmented as run

    return run(source, output, processors, config, options, progress)


def __getattr__(name: str) -> Any:  # the heavier parts load when used
    if name in ("SegmentSpec", "SegmentResult", "run_segment"):
        from vt.media.segments import run

        return getattr(run, name)
    raise AttributeError(name)
