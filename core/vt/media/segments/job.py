"""A segmented run, start to finish: check, plan, resume state, segments (here and in
workers), join, clean-up."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from vt.atomic import atomic_file, interrupt_on_termination
from vt.errors import UsageError, VtError
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameFormat
from vt.media.info import probe
from vt.media.output import atomic_output, resolve_target
from vt.media.pipeline import (
    PipelineOptions,
    PipelineReport,
    ProgressCallback,
    _chain_for,
    _prepare_output,
    _span,
    process_video,
)
from vt.media.processing import FrameProcessor, ProcessorChain, processor_attribute
from vt.media.segments import check_options
from vt.media.segments.join import join_segments
from vt.media.segments.plan import (
    DEFAULT_SEGMENT_SECONDS,
    NotSegmentable,
    Segment,
    Timeline,
    decode_window,
    describe_plan,
    plan_segments,
    scan_timeline,
    selected_range,
)
from vt.media.segments.run import SegmentResult, SegmentSpec, encode_segment, sync, verify
from vt.media.segments.state import ResumeState, input_identity
from vt.media.segments.workers import (
    SegmentPool,
    cli_context,
    cli_recipe,
    default_workers,
    gpu_ids,
    pickle_recipe,
)
from vt.media.source import Source
from vt.registry import OutputTarget

log = logging.getLogger("vt")

#: command options that do not change the output: a resume may change them
FREE_OPTIONS = frozenset(
    {
        "resume",
        "segment_workers",
        "segment_engine",
        "json_",
        "quiet",
        "threads",
        "overwrite",
        "sheet",
    }
)


def context_of(processors: Sequence[Any]) -> tuple[int, int]:
    """Frames of context (before, after) the chain needs around a segment: each processor's
    ``temporal_context`` (an int: frames before; a pair: before and after), summed along the
    chain (a frame of a later stage depends on its inputs' contexts too)."""
    before = after = 0
    for p in processors:
        value = processor_attribute(p, "temporal_context")
        pair = (value, 0) if isinstance(value, int) else tuple(value)
        if len(pair) != 2 or not all(isinstance(v, int) and v >= 0 for v in pair):
            raise VtError(
                f"processor {getattr(p, 'name', type(p).__name__)}: "
                f"temporal_context must be frames >= 0 or (before, after), got "
                f"{value!r}"
            )
        before, after = before + pair[0], after + pair[1]
    return before, after


def why_not(
    source: Source, target: OutputTarget, processors: Sequence[Any], options: PipelineOptions
) -> str | None:
    """Why this run cannot be segmented (None: it can)."""
    if target.kind != "container":
        return "image sequences are written frame by frame"
    if source.kind != "file":
        return "the input is not a video file"
    if options.decoder not in (None, "pyav"):
        return f"segments are decoded with pyav, not {options.decoder}"
    for p in processors:
        name = getattr(p, "name", type(p).__name__)
        if not processor_attribute(p, "segmentable"):
            return f"processor {name} cannot be split into segments"
        if processor_attribute(p, "temporal") and context_of([p]) == (0, 0):
            return (
                f"processor {name} carries state from frame to frame and declares no "
                "temporal_context"
            )
    return None


def _asked(options: PipelineOptions) -> str:
    asked = [
        flag
        for flag, on in (
            ("--resume", options.resume),
            ("--workers", options.workers not in (None, 1)),
            ("--segment-seconds", options.segment_seconds is not None),
        )
        if on
    ]
    return "/".join(asked) or "segments"


def worker_count(options: PipelineOptions) -> int:
    """``--workers``: N, 0 for one per visible GPU; unset: 1, or one per GPU with --resume."""
    if options.workers is None:
        return default_workers() if options.resume else 1
    return options.workers or default_workers()


def process_segmented(
    source: Source,
    output: str | Path,
    processors: Sequence[FrameProcessor] | ProcessorChain,
    config: EncoderConfig,
    options: PipelineOptions,
    progress: ProgressCallback | None = None,
) -> PipelineReport:
    """Run ``source`` through ``processors`` into ``output`` in segments (module docstring):
    the output equals one pass's in frame count and every PTS, and in every pixel for
    processors that are deterministic and declare their context; only the encoder's
    rate control restarts at each segment."""
    check_options(options)
    target = resolve_target(output)
    listed = processors.processors if isinstance(processors, ProcessorChain) else processors
    why = why_not(source, target, listed, options)
    timeline: Timeline | None = None
    if why is None:
        assert source.path is not None
        _prepare_output(target, source, config, options.overwrite)  # before any work
        info = probe(Source.parse(source.path), count_frames=False)
        try:
            timeline = scan_timeline(Source.parse(source.path), info.video.fps)
        except NotSegmentable as exc:
            why = f"the input cannot be cut at keyframes: {exc}"
    if why is not None or timeline is None:
        log.warning("%s: %s: running in one pass", _asked(options), why)
        one_pass = replace(options, resume=False, workers=None, segment_seconds=None)
        return process_video(source, output, processors, config, one_pass, progress)
    return _Run(source, target, processors, config, options, progress, info, timeline).run()


class _Run:
    """One segmented run (``process_segmented`` after its checks)."""

    def __init__(
        self,
        source: Source,
        target: OutputTarget,
        processors: Sequence[FrameProcessor] | ProcessorChain,
        config: EncoderConfig,
        options: PipelineOptions,
        progress: ProgressCallback | None,
        info: Any,
        timeline: Timeline,
    ) -> None:
        self.source, self.target = source, target
        self.processors, self.config, self.options = processors, config, options
        self.progress, self.info, self.timeline = progress, info, timeline
        self.workers = worker_count(options)
        self.state = ResumeState(Path(options.resume_output or target.path))
        self.results: dict[int, SegmentResult] = {}
        self.reused = 0
        self.reused_ids: set[int] = set()
        self.frames_done = 0
        self.frames_flushing = 0  # of segments whose encoders are draining (progress)
        self.lock = threading.Lock()

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> PipelineReport:
        started = time.perf_counter()
        chain, owned = _chain_for(self.processors, self.options.error_policy)
        opened = False
        try:
            with interrupt_on_termination():
                fmt_out, specs = self._plan(chain)
                self._open_state(chain, specs)
                opened = True
                pending = self._reusable(specs)
                self._process(chain, pending)
                report = self._join(specs, fmt_out)
            self.state.remove()
        except BaseException:
            if opened and not self.options.resume:
                self.state.remove()  # nothing asked to keep it
            else:
                self.state.release()
            if not owned:
                chain.reset()
            raise
        finally:
            if owned:
                chain.close()
        report.wall_time = time.perf_counter() - started
        report.fps = report.frames_out / report.wall_time if report.wall_time else 0.0
        return report

    def _plan(self, chain: ProcessorChain) -> tuple[FrameFormat, list[SegmentSpec]]:
        src, tl, video = self.source, self.timeline, self.info.video
        first, stop = _selection(src, tl, self.info)
        layout = self.options.layout or chain.layout_for(video.bit_depth)
        fmt_out = chain.configure(FrameFormat(video.width, video.height, layout))
        before, after = context_of(chain.processors)
        batch = chain.batch_size
        seconds = self.options.segment_seconds or DEFAULT_SEGMENT_SECONDS
        self.segments = plan_segments(tl, first, stop, seconds)
        self.selection = (first, stop)
        specs = [self._spec(s, first, stop, before, after, batch) for s in self.segments]
        return fmt_out, specs

    def _spec(
        self, segment: Segment, first: int, stop: int, before: int, after: int, batch: int
    ) -> SegmentSpec:
        tl = self.timeline

        def pts_at(position: int) -> int | None:
            return tl.pts[position] if position < len(tl.pts) else None

        a, b = decode_window(segment, first, stop, before, after, batch)
        tb = tl.time_base
        assert self.source.path is not None
        return SegmentSpec(
            index=segment.index,
            source=str(self.source.path.resolve()),
            start=self.source.start,
            end=self.source.end,
            window=(tl.pts[a], pts_at(b)),
            keep=(tl.pts[segment.first], pts_at(segment.end)),
            window_first=a,
            frames=segment.frames,
            time_base=(tb.numerator, tb.denominator),
            origin=tl.origin,
        )

    def _parameters(self, chain: ProcessorChain) -> dict[str, Any]:
        """Everything that shapes the output, as JSON: a resume must match it."""
        options = self.options
        encoder = {k: v for k, v in asdict(self.config).items() if k != "threads"}
        encoder["threads"] = self.config.threads  # encoder threads change x264's output
        params: dict[str, Any] = {
            "output": str(self.state.folder.resolve()),
            "encoder": encoder,
            "pipeline": {
                "audio": options.audio,
                "subtitles": options.subtitles,
                "error_policy": options.error_policy,
                "layout": options.layout,
                "batch_size": options.batch_size,
                "start": options.start,
                "end": options.end,
                "single_thread": options.single_thread,
                "segment_seconds": options.segment_seconds,
            },
            "processors": [
                f"{type(p).__module__}.{type(p).__qualname__}: {_describe(p)}"
                for p in chain.processors
            ],
        }
        command = _command_parameters()
        if command is not None:
            params["command"] = command
        plain: dict[str, Any] = json.loads(json.dumps(params, default=str))
        return plain

    def _open_state(self, chain: ProcessorChain, specs: list[SegmentSpec]) -> None:
        assert self.source.path is not None
        plan = describe_plan(self.segments, self.timeline)
        self.state.open(
            input_identity(self.source.path),
            self._parameters(chain),
            plan,
            resume=self.options.resume,
        )

    def _path(self, spec: SegmentSpec) -> Path:
        return self.state.folder / f"seg-{spec.index:06d}.{self._extension}"

    @property
    def _extension(self) -> str:
        return self.target.path.suffix.lstrip(".").lower() or "mkv"

    def _reusable(self, specs: list[SegmentSpec]) -> list[SegmentSpec]:
        """Finished segments that check out are kept; the rest (and anything half-made) is
        run (again)."""
        finished = self.state.finished()
        pending = []
        for spec in specs:
            path, record = self._path(spec), finished.get(spec.index)
            if record is not None and path.exists():
                result = SegmentResult.from_dict(record)
                problem = verify(path, result)
                if problem is None:
                    self.results[spec.index] = result
                    self.reused += 1
                    self.reused_ids.add(spec.index)
                    self.frames_done += result.frames
                    continue
                log.warning(
                    "segment %d cannot be reused (%s): running it again", spec.index, problem
                )
            if record is not None:
                self.state.forget(spec.index)
            path.unlink(missing_ok=True)  # ours: a segment file without a record
            pending.append(spec)
        if self.reused:
            log.info("resuming: %d of %d segments already done", self.reused, len(specs))
        self._tick(0)
        return pending

    # -- segments ------------------------------------------------------------------------------
    def _process(self, chain: ProcessorChain, pending: list[SegmentSpec]) -> None:
        if not pending:
            return
        cores = os.cpu_count() or 1
        inline = cores // max(1, self.workers) < 2
        local = self._local_options(inline)
        pool: SegmentPool | None = None

        def start_here(spec: SegmentSpec) -> tuple[Callable[[], None], Callable[[], None]]:
            """Encode ``spec`` here; then (complete, abandon): flush, commit and record it, or
            drop it."""

            def tick(done: int, total: int | None) -> None:
                if pool is not None:
                    pool.raise_if_failed()
                self._tick(done)

            path = self._path(spec)
            # committed or discarded by hand, maybe in the flush thread: signals are the
            # run's business (interrupt_on_termination), not each segment file's
            write = atomic_file(path, overwrite=True, suffix=path.suffix)
            try:
                encoded = encode_segment(
                    spec, chain, self.config, local, write.path, tick, known=self.info
                )
            except BaseException:
                write.discard()
                raise
            with self.lock:
                self.frames_flushing += spec.frames

            def complete() -> None:
                try:
                    result = encoded.finish()
                except BaseException:
                    write.discard()
                    raise
                write.commit()
                result.worker = "main"
                self._done(spec, result, drained=spec.frames)

            def abandon() -> None:
                with self.lock:
                    self.frames_flushing -= spec.frames
                encoded.abort()
                write.discard()

            return complete, abandon

        def run_here(spec: SegmentSpec) -> None:
            start_here(spec)[0]()

        workers = min(self.workers, len(pending))
        if workers <= 1:
            _overlapping_flushes(pending, start_here)
            return
        engine = self._engine(workers - 1)
        recipe = cli_recipe() or pickle_recipe(chain.processors, self.config, self.options)
        gpu = any(d != "cpu" for p in chain.processors for d in processor_attribute(p, "devices"))
        pool = SegmentPool(engine, recipe, self.state.folder, self._extension, inline, gpu)
        aborted = True
        try:
            pool.run(pending, run_here, self._done)
            aborted = False
        finally:
            engine.close(abort=aborted)

    def _local_options(self, inline: bool) -> PipelineOptions:
        from vt.media.segments.run import worker_options

        options: PipelineOptions = worker_options(self.options, inline)
        return options

    def _engine(self, children: int) -> Any:
        if self.options.engine == "ray":
            from vt.batch.engines import RayEngine

            return RayEngine(workers=children)
        from vt.batch.engines import LocalEngine

        gpus = gpu_ids()
        # this process works on the first GPU; the workers take the others, then wrap around.
        # Spawned, never forked: this process is mid-run (decoder, encoder and library
        # threads), and a fork copies their locks held
        return LocalEngine(workers=children, gpus=gpus[1:] + gpus[:1], method="spawn")

    def _done(self, spec: SegmentSpec, result: SegmentResult, drained: int = 0) -> None:
        """Record a finished segment (``drained``: its frames counted as flushing until now)."""
        if self.options.resume:  # on disk before the job file says it is done
            sync(self._path(spec))
        with self.lock:
            self.results[spec.index] = result
            self.state.record(spec.index, result.to_dict())
            self.frames_done += result.frames
            self.frames_flushing -= drained
            self._tick(0)

    def _tick(self, partial: int) -> None:
        """Progress: finished segments' frames, those of the one whose encoder is draining,
        and ``partial`` of the one running here."""
        if self.progress is not None:
            first, stop = self.selection
            self.progress(self.frames_done + self.frames_flushing + partial, stop - first)

    # -- join ----------------------------------------------------------------------------------
    def _join(self, specs: list[SegmentSpec], fmt_out: FrameFormat) -> PipelineReport:
        paths = [self._path(spec) for spec in specs]
        results = [self.results[spec.index] for spec in specs]
        options = self.options
        with atomic_output(self.target, options.overwrite) as tmp:
            joined = join_segments(
                paths,
                tmp,
                self.source,
                self.info,
                self.config,
                audio=options.audio,
                subtitles=options.subtitles,
                warn=lambda message: log.warning("%s", message),
                orders=[r.decode_order for r in results],
            )
        frames = sum(r.frames for r in results)
        if joined.frames != frames:
            raise VtError(f"the join wrote {joined.frames} frames of {frames}")
        first, stop = self.selection
        tl = self.timeline
        fps = self.info.video.fps or Fraction(25)
        span = round(float((tl.pts[stop - 1] - tl.pts[first]) * tl.time_base + 1 / fps), 6)
        warnings: list[str] = []
        for message in [w for r in results for w in r.warnings] + joined.warnings:
            if message not in warnings:
                warnings.append(message)
        return PipelineReport(
            input=self.source.describe(),
            output=str(self.target.path),
            decoder="pyav",
            codec=self.config.codec,
            pixel_format=results[0].pixel_format,
            size_in=(self.info.video.width, self.info.video.height),
            size_out=fmt_out.size,
            frames_in=stop - first,
            frames_out=joined.frames,
            duration_in=span,
            duration_out=span,
            audio=joined.audio,
            subtitles=joined.subtitles,
            frame_errors=sum(r.frame_errors for r in results),
            decode_errors=sum(r.decode_errors for r in results),
            warnings=warnings,
            segments={
                "count": len(specs),
                "reused": self.reused,
                "workers": self.workers,
                "seconds": options.segment_seconds or DEFAULT_SEGMENT_SECONDS,
                "written_by": _written_by(
                    r for s, r in zip(specs, results, strict=True) if s.index not in self.reused_ids
                ),
            },
        )


def _written_by(results: Iterable[SegmentResult]) -> dict[str, int]:
    """Segments this run wrote, per process ("main": the run's own)."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.worker or "main"] = counts.get(result.worker or "main", 0) + 1
    return counts


def _selection(source: Source, timeline: Timeline, info: Any) -> tuple[int, int]:
    first, stop = selected_range(timeline, source.start, source.end)
    if stop <= first:
        raise UsageError(
            f"no frames selected from {source.describe()}"
            f"{_span(source, info.duration)}: nothing written"
        )
    return first, stop


def _describe(processor: Any) -> str:
    try:
        return str(processor.describe())
    except Exception:  # noqa: BLE001 - a description is informative only
        return getattr(processor, "name", type(processor).__name__)


def _command_parameters() -> dict[str, Any] | None:
    """The running vt command and its options (those that change the output)."""
    ctx = cli_context()
    if ctx is None:
        return None
    names: list[str] = []
    node = ctx
    while node.parent is not None:
        names.append(str(node.info_name))
        node = node.parent
    options = {k: v for k, v in ctx.params.items() if k not in FREE_OPTIONS}
    return {"name": " ".join(reversed(names)), "options": options}


def _overlapping_flushes(
    specs: list[SegmentSpec],
    start: Callable[[SegmentSpec], tuple[Callable[[], None], Callable[[], None]]],
) -> None:
    """Run segments one after another in this process, each one's encoder flush (and commit)
    in a helper thread while the next one decodes: the same files as strictly one after
    another, without the cores idling while a frame-threaded encoder drains."""
    with ThreadPoolExecutor(1, thread_name_prefix="vt-segment-flush") as flusher:
        flushing: Future[None] | None = None
        try:
            for spec in specs:
                complete, abandon = start(spec)
                try:
                    if flushing is not None:
                        flushing.result()  # the previous segment's error stops the run here
                except BaseException:
                    abandon()
                    raise
                flushing = flusher.submit(complete)
            if flushing is not None:
                flushing.result()
        except BaseException:
            if flushing is not None:
                wait([flushing])  # a segment being committed ends first (kept for --resume)
            raise
