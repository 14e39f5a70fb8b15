"""The frame pipeline: decode -> processors -> encode, overlapped in bounded queues.

Decoding (and conversion to RGB) runs in one thread, processors in the calling thread,
encoding in another; the queues hold a few batches, so memory is bounded by a few frames
whatever the video's length. When no processor needs RGB (none at all, or only ones that
work on decoded frames, like ``resize``), frames stay in their decoded pixel format.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from vt.errors import UsageError, VtError
from vt.media.color import resolve_colors
from vt.media.decode import VideoReader, open_video
from vt.media.decoders.pyav_reader import PyAVReader
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.output import atomic_output, check_output, resolve_target
from vt.media.prefetch import prefetch
from vt.media.processing import FrameProcessor, ProcessorChain
from vt.media.source import Source
from vt.registry import EncoderInfo, OutputTarget

T = TypeVar("T")

log = logging.getLogger("vt")

#: ``progress(frames_done, frames_total_or_None)``, called from the encoder thread
ProgressCallback = Callable[[int, int | None], None]
_END = object()


@dataclass
class PipelineOptions:
    overwrite: bool = False
    audio: bool = True
    subtitles: bool = True
    error_policy: str = "abort"  # abort | pass (source frame passed through, with a warning)
    decoder: str | None = None
    threads: int = 0
    queue_size: int = 4
    # one core for the whole job: decoder and encoder on one thread each, and decode, process
    # and encode taking turns in the calling thread, for running jobs side by side (one per core)
    single_thread: bool = False
    batch_size: int | None = None  # decoded batch; None: the first processor's batch_size
    layout: str | None = None  # rgb24 | rgb48; None: rgb48 for >8-bit input if accepted
    start: float | None = None  # seconds: process only [start, end); output starts at zero
    end: float | None = None
    fps: Fraction | None = None  # output frame rate: frames picked by time (vt.media.retime)
    # segmented runs (vt.media.segments): any of these cuts the video at keyframes into
    # segments encoded separately and joined by stream copy; a plain run is one pass
    resume: bool = False  # keep finished segments in OUT.vt-resume/ and reuse them
    workers: int | None = None  # processes; None: 1 (with resume: one per GPU), 0: one per GPU
    segment_seconds: float | None = None  # target segment length (default 5 s)
    engine: str = "local"  # where workers run: local processes or ray (RAY_ADDRESS)
    resume_output: str | Path | None = None  # names OUT.vt-resume (default: the output)


@dataclass
class PipelineReport:
    input: str
    output: str
    decoder: str
    codec: str
    pixel_format: str
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    frames_in: int = 0
    frames_out: int = 0
    duration_in: float | None = None
    duration_out: float | None = None
    wall_time: float = 0.0
    fps: float = 0.0
    audio: str = "none"
    subtitles: str = "none"
    frame_errors: int = 0
    decode_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    segments: dict[str, Any] | None = None  # segmented runs: count, reused, workers

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _prepare_output(
    target: OutputTarget, source: Source | None, config: EncoderConfig, overwrite: bool
) -> EncoderInfo:
    """Check the output can be written and pick the encoder for it (before any decoding)."""
    # generated video without audio reads nothing: no input path for the output to clash with
    check_output(target, source or Source("bytes", data=b""), overwrite)
    if target.kind == "container":
        config.validate()
    return choose_encoder(target)


def choose_encoder(target: OutputTarget) -> EncoderInfo:
    """The registered encoder that writes ``target`` (the ``choose_encoder`` hook's pick)."""
    from vt.plugins import get_host

    host = get_host()
    encoders = [e for e in host.encoders.items() if e.accepts(target)]
    encoder: EncoderInfo | None = host.call_first(
        "choose_encoder", target=target, candidates=encoders
    )
    if encoder is None:
        raise UsageError(f"no encoder writes {target.path.name}")
    return encoder


def _chain_for(
    processors: Sequence[FrameProcessor] | ProcessorChain, error_policy: str
) -> tuple[ProcessorChain, bool]:
    """The chain to run, and whether this run owns it (builds it now, closes it after)."""
    if isinstance(processors, ProcessorChain):
        return processors, False
    return ProcessorChain(processors, error_policy), True


def process_video(
    source: Source | str | Path | bytes,
    output: str | Path,
    processors: Sequence[FrameProcessor] | ProcessorChain = (),
    config: EncoderConfig | None = None,
    options: PipelineOptions | None = None,
    progress: ProgressCallback | None = None,
) -> PipelineReport:
    """Run ``source`` through ``processors`` into ``output``; return what happened.

    ``processors`` are built into a :class:`ProcessorChain` for this file and closed at the
    end; a ``ProcessorChain`` is used as it is (with its own error policy) and left open for
    the next file. The output appears only when complete. Frame count and PTS are checked at
    the end: a mismatch is an error (a processor must not drop or invent frames).
    """

    config = config or EncoderConfig()
    options = options or PipelineOptions()
    if options.single_thread:
        config, options = replace(config, threads=1), replace(options, threads=1)
    src = source if isinstance(source, Source) else Source.parse(source)
    if options.start is not None or options.end is not None:
        src = src.with_range(options.start, options.end)
    from vt.media import segments

    if segments.assigned() is not None:  # a segment worker: this call runs its segment
        segments.serve(src, processors, config, options, progress)
    if segments.wanted(options):
        return segments.process_segmented(src, output, processors, config, options, progress)
    target = resolve_target(output)
    encoder = _prepare_output(target, src, config, options.overwrite)
    chain, owned = _chain_for(processors, options.error_policy)
    errors_before = chain.frame_errors
    started = time.perf_counter()
    try:
        with open_video(
            src,
            decoder=options.decoder,
            threads=options.threads,
            options={"error_policy": options.error_policy},
        ) as reader:
            info = reader.info
            video = info.video
            layout = options.layout or chain.layout_for(video.bit_depth)
            _check_selection(src, video.duration or info.duration)
            fmt_in = FrameFormat(video.width, video.height, layout)
            fmt_out = chain.configure(fmt_in)
            report = PipelineReport(
                input=src.describe(),
                output=str(target.path),
                decoder=reader.decoder_name,
                codec=config.codec if target.kind == "container" else "images",
                pixel_format="",
                size_in=fmt_in.size,
                size_out=fmt_out.size,
            )
            # the header's count, else an estimate: progress never waits for a packet scan
            total = video.frame_count or (
                round(video.duration * float(video.fps)) if video.duration and video.fps else None
            )
            if total and (src.start is not None or src.end is not None) and video.fps:
                span_end = src.end if src.end is not None else (video.duration or 0)
                total = max(0, round((span_end - (src.start or 0)) * float(video.fps)))
            if total and options.fps and video.fps:
                total = round(total / video.fps * options.fps)
            with atomic_output(target, options.overwrite) as tmp:
                writer = encoder.open(
                    tmp,
                    config,
                    fmt_out,
                    src,
                    info,
                    audio=options.audio,
                    subtitles=options.subtitles,
                    colors=reader.colors,
                    rate=options.fps,
                    time_base=_time_base(options.fps),
                )
                try:
                    _run(reader, chain, writer, report, options, layout, progress, total)
                    writer.close()
                except BaseException:
                    writer.abort()
                    raise
            report.pixel_format = writer.pixel_format
            report.audio, report.subtitles = writer.audio_mode, writer.subtitle_mode
            report.warnings = list(writer.warnings)
            report.frame_errors = chain.frame_errors - errors_before
            report.decode_errors = getattr(reader, "decode_errors", 0)
    except BaseException:
        if not owned:
            chain.reset()  # the caller's chain goes on to its next file clean
        raise
    finally:
        if owned:
            chain.close()
    report.wall_time = time.perf_counter() - started
    report.fps = report.frames_out / report.wall_time if report.wall_time else 0.0
    return report


def _span(src: Source, duration: float | None) -> str:
    asked = (
        f" between {src.start or 0:g} s and {src.end:g} s"
        if src.end is not None
        else (f" from {src.start:g} s" if src.start else "")
    )
    return asked + (f" (the clip lasts {duration:.3f} s)" if duration else "")


def _check_selection(src: Source, duration: float | None) -> None:
    """A time range that starts past the end selects no frame: say so before writing."""
    if src.start is not None and duration and src.start >= duration:
        raise UsageError(f"no frames selected{_span(src, duration)}: nothing written")


def write_video(
    batches: Iterable[FrameBatch],
    output: str | Path,
    *,
    fps: float | Fraction,
    processors: Sequence[FrameProcessor] | ProcessorChain = (),
    config: EncoderConfig | None = None,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
    audio: str | Path | None = None,
    colorspace: str | None = None,
    progress: ProgressCallback | None = None,
    total: int | None = None,
) -> PipelineReport:
    """Encode generated frames (image-to-video models, renders: no source video) into
    ``output``, atomically, through ``processors`` (a list, closed at the end, or a
    ``ProcessorChain`` left open).

    The first batch fixes the input size and bit depth. Frames keep their PTS (in the first
    batch's time base, increasing); frames without PTS are numbered at ``fps``. ``audio`` is
    a file whose audio streams are muxed in (copied, or re-encoded when the container cannot
    hold them) and cut where the video ends. The frames are converted to YUV with
    ``colorspace`` (``bt709``, ``bt601``, ``bt470bg``, ``bt2020``; default BT.709 from 720
    lines up, BT.601 below) and the output is tagged with it. ``progress(done, total)`` is
    called after each written frame.
    """
    from vt.media.color import matrix_name

    config = config or EncoderConfig()
    rate = Fraction(fps).limit_denominator(1001000)
    if rate <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    if colorspace is not None:
        colorspace = matrix_name(colorspace)
    target = resolve_target(output)
    audio_source = Source.parse(audio) if audio is not None else None
    if audio_source is not None and audio_source.kind == "frames":
        raise UsageError(f"audio must be a file, not an image sequence: {audio}")
    encoder = _prepare_output(target, audio_source, config, overwrite)  # before any frame
    iterator = iter(batches)
    try:
        first = next(iterator)
    except StopIteration:
        raise UsageError("no frames to write") from None
    chain, owned = _chain_for(processors, "abort")
    errors_before = chain.frame_errors
    time_base = first.time_base if first.pts and first.pts[0] is not None else 1 / rate
    fmt_in = first.format
    started = time.perf_counter()
    try:
        fmt_out = chain.configure(fmt_in)
        colors = resolve_colors((0, 2, 2, 2), fmt_out.height, untagged=colorspace)
        report = PipelineReport(
            input="<generated>",
            output=str(target.path),
            decoder="-",
            codec=config.codec if target.kind == "container" else "images",
            pixel_format="",
            size_in=fmt_in.size,
            size_out=fmt_out.size,
        )
        seen_in, seen_out = _Tally(), _Tally()

        def timed() -> Iterator[FrameBatch]:
            """The caller's batches with every PTS set and checked to increase."""
            last: int | None = None
            for batch in itertools.chain([first], iterator):
                if batch.format != fmt_in:
                    raise UsageError(
                        f"frame size changed from {fmt_in.width}x{fmt_in.height}"
                        f" {fmt_in.layout} to {batch.width}x{batch.height} "
                        f"{batch.layout}"
                    )
                pts: list[int | None] = []
                for p in batch.pts:
                    if p is None:  # frame number at fps, in the output time base
                        p = round((seen_in.count + len(pts)) / (rate * time_base))
                    if last is not None and p <= last:
                        raise UsageError(
                            f"generated frames must have increasing PTS (pts {p} after {last})"
                        )
                    pts.append(p)
                    last = p
                seen_in.add(pts, time_base)
                yield batch.with_timing(pts, time_base)

        def processed() -> Iterator[FrameBatch]:
            for batch in timed():
                yield from chain.feed(batch)
            yield from chain.flush()

        with atomic_output(target, overwrite) as tmp:
            writer = encoder.open(
                tmp,
                config,
                fmt_out,
                audio_source,
                None,
                time_base=time_base,
                rate=rate,
                colors=colors,
                metadata=dict(metadata or {}),
            )
            try:
                _encode(
                    processed(),
                    writer,
                    seen_out,
                    time_base,
                    progress,
                    total,
                    PipelineOptions.queue_size,
                )
                _check_counts(seen_in, seen_out)
                writer.close()
            except BaseException:
                writer.abort()
                raise
    except BaseException:
        if not owned:
            chain.reset()
        raise
    finally:
        if owned:
            chain.close()
    report.frames_in, report.frames_out = seen_in.count, seen_out.count
    report.duration_in, report.duration_out = seen_in.duration(rate), seen_out.duration(rate)
    report.pixel_format = writer.pixel_format
    report.audio = writer.audio_mode
    report.warnings = list(writer.warnings)
    report.frame_errors = chain.frame_errors - errors_before
    report.wall_time = time.perf_counter() - started
    report.fps = seen_out.count / report.wall_time if report.wall_time else 0.0
    return report


class _Tally:
    """Frames seen on one side of the pipeline: count, PTS fingerprint and time span.

    Comparing two tallies checks that every input frame came out once with its PTS, in
    constant memory (a sum and a sum of squares instead of the list of timestamps).
    """

    def __init__(self) -> None:
        self.count = 0
        self.fingerprint = (0, 0)
        self.first: float | None = None
        self.last: float | None = None

    def add(self, pts: Sequence[int | None], time_base: Fraction) -> None:
        self.count += len(pts)
        s, sq = self.fingerprint
        for p in pts:
            if p is None:
                continue
            s, sq = s + p, sq + p * p
            t = float(p * time_base)
            self.first = t if self.first is None else min(self.first, t)
            self.last = t if self.last is None else max(self.last, t)
        self.fingerprint = (s, sq)

    def duration(self, fps: Fraction | None) -> float | None:
        if self.first is None or self.last is None:
            return None
        return round(self.last - self.first + 1 / float(fps or 25), 6)


def _run(
    reader: VideoReader,
    chain: ProcessorChain,
    writer: Any,
    report: PipelineReport,
    options: PipelineOptions,
    layout: str,
    progress: ProgressCallback | None,
    total: int | None,
) -> None:
    tb: Fraction = reader.info.video.time_base
    out_tb = _time_base(options.fps) or tb  # what the frames handed on are timed in
    seen_in, seen_out = _Tally(), _Tally()

    retime = _retimer(reader, options.fps)
    if chain.native and isinstance(reader, PyAVReader):
        # no processor needs RGB: decoded frames go to the encoder in their own format
        decoded: Iterable[Any] = (f for _, f in reader.av_frames())
        frames = _decoded(retime(decoded, tb) if retime else decoded, options, "vt-decode")

        def processed() -> Iterator[Any]:
            for frame in frames:
                seen_in.add([frame.pts], out_tb)
                yield from chain.process_frame(frame)
    else:
        batches = reader.frames(layout=layout, batch_size=options.batch_size or chain.batch_size)
        frames = _decoded(retime(batches) if retime else batches, options, "vt-decode")

        def processed() -> Iterator[Any]:
            for batch in frames:
                seen_in.add(batch.pts, batch.time_base)
                yield from chain.feed(batch)
            yield from chain.flush()

    try:
        _encode(
            processed(),
            writer,
            seen_out,
            out_tb,
            progress,
            total,
            0 if options.single_thread else options.queue_size,
        )
    finally:
        frames.close()  # stops the decode thread now, not when the generator is collected
    if seen_in.count == 0:
        raise UsageError(
            f"no frames selected from {reader.source.describe()}"
            f"{_span(reader.source, reader.info.duration)}: nothing written"
        )
    _check_counts(seen_in, seen_out)
    report.frames_in, report.frames_out = seen_in.count, seen_out.count
    fps = options.fps or reader.info.video.fps
    report.duration_in, report.duration_out = seen_in.duration(fps), seen_out.duration(fps)


def _time_base(fps: Fraction | None) -> Fraction | None:
    """Converted frames' time base (one tick per frame), None without conversion."""
    if not fps:
        return None
    from vt.media.retime import time_base_for

    return time_base_for(fps)


def _retimer(reader: VideoReader, fps: Fraction | None) -> Callable[..., Iterator[Any]] | None:
    """Frames (``f(frames, time_base)``) or batches (``f(batches)``) at ``fps``, cut where
    the source is cut; None without ``fps``."""
    if not fps:
        return None
    from vt.media.retime import retime_batches, retime_frames

    video, src = reader.info.video, reader.source
    origin = video.start_time or 0.0
    interval = 1 / (video.fps or fps)  # the last frame's duration: one source frame
    end = origin + src.end if src.end is not None else None
    start = origin + src.start if src.start else None

    def retime(items: Iterable[Any], time_base: Fraction | None = None) -> Iterator[Any]:
        if time_base is not None:
            return retime_frames(items, fps, time_base, interval, end, start)
        return retime_batches(items, fps, interval, end, start)

    return retime


def _decoded(items: Iterable[T], options: PipelineOptions, name: str) -> Generator[T]:
    """Decoded frames from a thread running ahead, or in this thread for a single-thread job."""
    if options.single_thread:
        return (item for item in items)  # closable like prefetch's, closes ``items`` with it
    return prefetch(items, options.queue_size, name)


def _encode(
    items: Iterator[Any],
    writer: Any,
    seen: _Tally,
    time_base: Fraction,
    progress: ProgressCallback | None,
    total: int | None,
    queue_size: int,
) -> None:
    """Hand ``items`` (FrameBatches or decoded frames) to an encoder thread as they come:
    process | encode in two threads, so a cheap processor never serialises I/O. Tensor
    batches become host arrays there, once, at the end of the chain. ``queue_size`` 0
    encodes in this thread instead (single-thread jobs)."""
    if queue_size == 0:
        for item in items:
            _write(item, writer, seen, time_base, progress, total)
        return
    encode_stop = threading.Event()
    q: queue.Queue[Any] = queue.Queue(maxsize=max(queue_size, 1))
    encoder = threading.Thread(
        target=_consume,
        args=(q, writer, seen, time_base, progress, total, encode_stop),
        name="vt-encode",
        daemon=True,
    )
    encoder.start()
    try:
        for item in items:
            _put(q, item, encoder)
        _put(q, _END, encoder)
        encoder.join()
    except BaseException:
        encode_stop.set()
        encoder.join(timeout=5)
        raise
    failure = getattr(encoder, "failure", None)
    if failure is not None:
        raise failure


def _check_counts(seen_in: _Tally, seen_out: _Tally) -> None:
    if (seen_out.count, seen_out.fingerprint) != (seen_in.count, seen_in.fingerprint):
        raise VtError(
            f"processors returned {seen_out.count} frames for {seen_in.count} input "
            "frames (or changed their timestamps): output discarded"
        )


def _put(q: queue.Queue[Any], item: Any, consumer: threading.Thread) -> None:
    while True:
        if not consumer.is_alive():
            failure = getattr(consumer, "failure", None)
            if failure is not None:
                raise failure
            raise VtError("encoder stopped unexpectedly")
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _consume(
    q: queue.Queue[Any],
    writer: Any,
    seen: _Tally,
    time_base: Fraction,
    progress: ProgressCallback | None,
    total: int | None,
    stop: threading.Event,
) -> None:
    """The encode thread: writes FrameBatches (RGB) or decoded frames (native paths)."""
    thread = threading.current_thread()
    try:
        while not stop.is_set():
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            _write(item, writer, seen, time_base, progress, total)
    except BaseException as exc:
        thread.failure = exc  # type: ignore[attr-defined]


def _write(
    item: Any,
    writer: Any,
    seen: _Tally,
    time_base: Fraction,
    progress: ProgressCallback | None,
    total: int | None,
) -> None:
    """Encode one FrameBatch (RGB) or decoded frame (native paths)."""
    if isinstance(item, FrameBatch):
        seen.add(item.pts, item.time_base)
        writer.write_batch(item)
    else:
        seen.add([item.pts], time_base)  # before the writer shifts a cut's PTS
        writer.write_frame(item)
    if progress:
        progress(seen.count, total)
