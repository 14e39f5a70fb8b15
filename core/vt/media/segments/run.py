"""One segment: decode its frames (and the context frames around them), run the processors,
encode the segment's own frames into a file of their own, and check that file later.

A segment file holds video only, at the PTS one pass would give those frames (a ``--start``
cut shifted the same way), and starts with a keyframe: an encoder's first frame is always
one (an IDR for H.264/HEVC), and nothing in a segment refers to another, so every join is a
clean decoder restart.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vt.errors import InputError, VtError
from vt.media.decoders.pyav_reader import PyAVReader, frame_to_array
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import MediaInfo
from vt.media.processing import ProcessorChain
from vt.media.source import Source
from vt.registry import OutputTarget

log = logging.getLogger("vt")


@dataclass(frozen=True)
class SegmentSpec:
    """Everything a worker needs to know about one segment, in plain values (it crosses
    process boundaries and goes into the job file)."""

    index: int
    source: str  # the input file (absolute path)
    start: float | None  # the user's --start/--end: the output's time origin and cut
    end: float | None
    window: tuple[int, int | None]  # PTS decoded and processed: [first, after) (None: to the end)
    keep: tuple[int, int | None]  # PTS written: [first, after)
    window_first: int  # timeline position of the window's first frame
    frames: int  # frames the plan expects in ``keep``
    time_base: tuple[int, int]
    origin: int  # the stream's start time, in ticks

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)


@dataclass
class SegmentResult:
    """What a finished segment file holds (read back from it) and what its run reported."""

    index: int
    frames: int
    pts_sum: int  # packet PTS, in the file's time base
    first_pts: int
    last_pts: int
    time_base: tuple[int, int]
    bytes: int
    sha256: str = ""  # of the file as written
    pixel_format: str = ""
    size_out: tuple[int, int] = (0, 0)
    decode_errors: int = 0
    frame_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    worker: str = ""  # who wrote it: "main" (the run's own process) or the worker's name
    decode_order: list[int] = field(default_factory=list)  # packet PTS as stored (the join's)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentResult:
        data = dict(data)
        data["time_base"] = tuple(data["time_base"])
        data["size_out"] = tuple(data.get("size_out", (0, 0)))
        return cls(**data)


def _window_source(spec: SegmentSpec) -> Source:
    """The input, ranged to the decode window (seconds from the stream's start; the reader
    rounds them back to the very same PTS)."""
    src = Source.parse(spec.source)
    first, after = spec.window
    tb = spec.tb
    start = float((first - spec.origin) * tb)
    end = float((after - spec.origin) * tb) if after is not None else None
    return replace(src, start=start if start > 0 else None, end=end)


def run_segment(
    spec: SegmentSpec,
    chain: ProcessorChain,
    config: EncoderConfig,
    options: Any,
    path: Path,
    progress: Any = None,
) -> SegmentResult:
    """Process ``spec`` through ``chain`` into ``path`` (a temporary name the caller
    commits). ``options`` are the run's ``PipelineOptions``."""
    return encode_segment(spec, chain, config, options, path, progress).finish()


@dataclass(frozen=True)
class EncodedSegment:
    """A segment whose frames are all with its encoder. ``finish`` flushes the encoder, closes
    the file and reads it back; it may run in another thread beside the next segment's
    decoding, since the flush of a frame-threaded encoder keeps few cores busy. ``abort``
    drops it instead."""

    finish: Callable[[], SegmentResult]
    abort: Callable[[], None]


def encode_segment(
    spec: SegmentSpec,
    chain: ProcessorChain,
    config: EncoderConfig,
    options: Any,
    path: Path,
    progress: Any = None,
    known: MediaInfo | None = None,
) -> EncodedSegment:
    """``run_segment`` up to the encoder's flush: every frame is decoded, processed and handed
    to the encoder, and ``chain`` is free for the next segment. ``known``: the run's probe of
    the input, so opening it again decodes nothing before the segment's frames."""
    from vt.media.pipeline import _check_counts, _decoded, _encode, _Tally, choose_encoder

    user = Source.parse(spec.source).with_range(spec.start, spec.end)
    target = OutputTarget(path, "container")
    encoder = choose_encoder(target)
    keep_first, keep_after = spec.keep
    seen_in, seen_out = _Tally(), _Tally()
    reader = PyAVReader(
        _window_source(spec),
        threads=options.threads,
        error_policy=options.error_policy,
        known=known,
    )
    with reader:
        info = reader.info
        video = info.video
        layout = options.layout or chain.layout_for(video.bit_depth)
        fmt_out = chain.configure(FrameFormat(video.width, video.height, layout))
        # video only: side streams are muxed once, at the join
        bare = replace(info, audio=[], subtitles=[], attachments=[], data=[], extra_video=[])
        writer = encoder.open(
            target, config, fmt_out, user, bare, audio=False, subtitles=False, colors=reader.colors
        )
        tb = spec.tb

        def kept(pts: int) -> bool:
            return pts >= keep_first and (keep_after is None or pts < keep_after)

        def numbered() -> Iterator[tuple[int, Any]]:
            """(one-pass frame index, frame): timeline positions, or for a --start cut the
            index the one-pass reader gives (the time at the nominal rate)."""
            for n, (index, frame) in enumerate(reader.av_frames()):
                yield (index if spec.start else spec.window_first + n), frame

        try:
            if chain.native:
                # a generator (closed below): decoding stops with the segment
                frames: Any = _decoded((f for _, f in numbered()), options, "vt-decode")

                def processed() -> Iterator[Any]:
                    for frame in frames:
                        if kept(frame.pts):
                            seen_in.add([frame.pts], tb)
                            yield from chain.process_frame(frame)
            else:
                frames = _decoded(
                    _batches(
                        numbered(),
                        layout,
                        reader.sws_colorspace,
                        tb,
                        options.batch_size or chain.batch_size,
                    ),
                    options,
                    "vt-decode",
                )

                def processed() -> Iterator[Any]:
                    try:
                        for batch in frames:
                            seen_in.add([p for p in batch.pts if kept(p)], tb)
                            for out in chain.feed(batch):
                                yield from _only(out, kept)
                        for out in chain.flush():
                            yield from _only(out, kept)
                    except BaseException:
                        chain.reset()
                        raise

            try:
                _encode(
                    processed(),
                    writer,
                    seen_out,
                    tb,
                    progress,
                    spec.frames,
                    0 if options.single_thread else options.queue_size,
                )
            finally:
                frames.close()
            _check_counts(seen_in, seen_out)
            if seen_in.count != spec.frames and reader.decode_errors == 0:
                raise VtError(
                    f"segment {spec.index} decoded {seen_in.count} frames where the "
                    f"packet scan found {spec.frames}: output discarded"
                )
            if seen_out.count == 0:
                raise VtError(f"segment {spec.index} has no frames")
        except BaseException:
            writer.abort()
            raise
        decode_errors = reader.decode_errors

    def finish() -> SegmentResult:
        try:
            writer.close()
        except BaseException:
            writer.abort()
            raise
        result = read_back(spec.index, path)
        result.pixel_format = writer.pixel_format
        result.size_out = fmt_out.size
        result.decode_errors = decode_errors
        result.warnings = list(writer.warnings)
        return result

    return EncodedSegment(finish, writer.abort)


def _batches(
    numbered: Iterator[tuple[int, Any]],
    layout: str,
    colorspace: int | None,
    tb: Fraction,
    size: int,
) -> Iterator[FrameBatch]:
    """Decoded frames as RGB ``FrameBatch``es of ``size`` (as ``PyAVReader.frames``)."""
    import numpy as np

    images, pts, indices = [], [], []
    for index, frame in numbered:
        images.append(frame_to_array(frame, layout, None, "bicubic", colorspace))
        pts.append(frame.pts)
        indices.append(index)
        if len(images) >= size:
            yield FrameBatch(np.stack(images), pts, tb, indices, layout)
            images, pts, indices = [], [], []
    if images:
        yield FrameBatch(np.stack(images), pts, tb, indices, layout)


def _only(batch: FrameBatch, kept: Any) -> Iterator[FrameBatch]:
    """The frames of ``batch`` the segment writes (context frames are dropped)."""
    flags = [kept(p) for p in batch.pts]
    if all(flags):
        yield batch
        return
    if not any(flags):
        return
    first = flags.index(True)
    last = len(flags) - flags[::-1].index(True)
    yield batch[first:last]


#: opening a segment file for its packets alone: its header holds the codec's parameters,
#: and probing would decode frames (tens of ms each at 1080p)
PACKETS_ONLY = {"probesize": "32", "analyzeduration": "0"}


def read_back(index: int, path: Path) -> SegmentResult:
    """Demux a segment file: its frame count and PTS (no decoding)."""
    count, total, first, last = 0, 0, None, None
    order: list[int] = []
    try:
        with av.open(str(path), options=PACKETS_ONLY) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            keyframe_first = None
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.pts is None:
                    raise InputError(f"segment {path.name} has a frame without a timestamp")
                if keyframe_first is None:
                    keyframe_first = packet.is_keyframe
                count += 1
                total += packet.pts
                order.append(packet.pts)
                first = packet.pts if first is None else min(first, packet.pts)
                last = packet.pts if last is None else max(last, packet.pts)
    except (av.error.FFmpegError, IndexError, TypeError) as exc:
        raise InputError(f"segment {path.name} is unreadable: {exc}") from None
    if not count or first is None or last is None or tb is None:
        raise InputError(f"segment {path.name} holds no video")
    if not keyframe_first:
        raise InputError(f"segment {path.name} does not start with a keyframe")
    return SegmentResult(
        index,
        count,
        total,
        first,
        last,
        (tb.numerator, tb.denominator),
        path.stat().st_size,
        _sha256(path),
        decode_order=order,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, recorded: SegmentResult) -> str | None:
    """Why a finished segment cannot be reused (None: it can). It must hold the frames and
    PTS recorded when it was written, byte for byte (its SHA-256), and its first frame must
    decode. The hash stands in for decoding it all again: it catches any change since the
    encoder wrote it, for a fraction of the cost (a full decode is ~8 % of a 1080p run)."""
    try:
        found = read_back(recorded.index, path)
    except (InputError, OSError) as exc:
        return str(exc)
    facts = ("frames", "pts_sum", "first_pts", "last_pts", "time_base", "bytes", "sha256")
    for name in facts:
        if getattr(found, name) != getattr(recorded, name):
            return (
                f"{path.name}: {name} {getattr(found, name)} where "
                f"{getattr(recorded, name)} was written"
            )
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.decode():
                    return None
    except av.error.FFmpegError as exc:
        return f"{path.name} does not decode: {exc}"
    return f"{path.name} decodes to no frame"


def worker_options(options: Any, inline: bool) -> Any:
    """The options one worker runs a segment with: with fewer than two cores per worker,
    decoding and the pipeline run inline in one thread (the encoder keeps the threads the
    options give it, so the output does not depend on the number of workers)."""
    if not inline:
        return options
    return replace(options, single_thread=True, threads=1)


def sync(path: Path) -> None:
    """Flush a finished segment to disk before it is renamed into place and recorded."""
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
