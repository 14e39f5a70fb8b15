"""The join: segment files into the final output by stream copy, with the source's audio,
subtitles, attachments and metadata muxed once, as the one-pass writer does.

Packets keep their PTS. Decode timestamps are recomputed for the whole stream the way x264
and x265 compute them (the PTS ``delay`` frames earlier in presentation order, where
``delay`` is the deepest reordering any segment uses): each segment's encoder started its
own DTS before its first PTS, which would overlap the previous segment's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vt.errors import OutputError, VtError
from vt.media.encode import EncoderConfig
from vt.media.encode.side_streams import SideStreams
from vt.media.info import MediaInfo
from vt.media.segments.run import PACKETS_ONLY
from vt.media.source import Source
from vt.registry import OutputTarget

log = logging.getLogger("vt")

# container keys the muxer writes itself (as the one-pass writer leaves them out)
_TECHNICAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}


@dataclass
class JoinReport:
    frames: int = 0
    audio: str = "none"
    subtitles: str = "none"
    warnings: list[str] = field(default_factory=list)


def _decode_order_pts(path: Path) -> list[int]:
    with av.open(str(path), options=PACKETS_ONLY) as container:
        stream = container.streams.video[0]
        return [p.pts for p in container.demux(stream) if p.size and p.pts is not None]


def reorder_delay(pts: Sequence[int]) -> int:
    """How many frames a stream's decode order runs ahead of its presentation order at most:
    with this delay, ``dts[i] = sorted(pts)[i - delay]`` never passes a PTS."""
    rank = {p: i for i, p in enumerate(sorted(pts))}
    return max([0, *(i - rank[p] for i, p in enumerate(pts))])


def join_segments(
    paths: Sequence[Path],
    target: OutputTarget,
    source: Source,
    info: MediaInfo,
    config: EncoderConfig,
    *,
    audio: bool,
    subtitles: bool,
    warn: Callable[[str], None],
    orders: Sequence[list[int] | None] | None = None,
) -> JoinReport:
    """Write ``paths`` (in order) into ``target`` (a temporary name the caller commits),
    with ``source``'s side streams cut to its ``start``/``end`` like the one-pass writer.
    ``orders``: each segment's packet PTS in decode order where already known (read back
    when it was written); the copy checks them packet by packet."""
    from vt.media.encode.container import _format_name

    report = JoinReport()
    # pass 1 (demux only, where not known): each segment's PTS in decode order and the
    # deepest reordering, so decode timestamps can be rebuilt before any packet is muxed
    known = list(orders) if orders is not None else [None] * len(paths)
    decode_orders = [o or _decode_order_pts(p) for p, o in zip(paths, known, strict=True)]
    delay = max(reorder_delay(order) for order in decode_orders)
    origin = info.video.start_time or 0.0
    cut_start = origin + source.start if source.start else None
    cut_end = origin + source.end if source.end is not None else None

    def note(message: str) -> None:
        report.warnings.append(message)
        warn(message)

    try:
        out = av.open(str(target.path), "w", format=_format_name(target, config))
    except (av.error.FFmpegError, ValueError) as exc:
        raise OutputError(f"cannot write {target.path.name}: {exc}") from exc
    side: SideStreams | None = None
    try:
        with av.open(str(paths[0])) as first:
            template = first.streams.video[0]
            extradata = bytes(template.codec_context.extradata or b"")
            stream = out.add_stream_from_template(template)
            stream.metadata.update(template.metadata)
            # the frame rate the one-pass writer gives the stream (the muxer's default
            # duration, the header's rate)
            video = info.video
            stream.codec_context.framerate = video.fps or video.real_fps or Fraction(25)
            if info.video.rotation:
                stream.set_display_rotation(info.video.rotation)
        side = SideStreams(
            out,
            config,
            source,
            info,
            audio=audio,
            subtitles=subtitles,
            cut_start=cut_start,
            cut_end=cut_end,
            shift=cut_start or 0.0,
            lookahead=0.5,
            warn=note,
        )
        for key, value in info.metadata.items():
            if key.lower() not in _TECHNICAL_TAGS:
                out.metadata[key] = value
        recent: list[int] = []  # the last ``delay`` PTS of earlier segments, sorted
        for path, order in zip(paths, decode_orders, strict=True):
            _copy(path, order, out, stream, extradata, delay, recent, side, report)
        side.finish()
        report.audio, report.subtitles = side.audio_mode, side.subtitle_mode
        out.close()
    except BaseException:
        if side is not None:
            side.close()
        try:
            out.close()
        except Exception:  # noqa: BLE001 - the real error is on its way
            pass
        raise
    return report


def _copy(
    path: Path,
    order: list[int],
    out: Any,
    stream: Any,
    extradata: bytes,
    delay: int,
    recent: list[int],
    side: SideStreams,
    report: JoinReport,
) -> None:
    """Mux one segment's packets (PTS kept, DTS rebuilt) and the side packets up to them;
    ``order`` is the segment's PTS in decode order (pass 1)."""
    with av.open(str(path), options=PACKETS_ONLY) as segment:
        source = segment.streams.video[0]
        if bytes(source.codec_context.extradata or b"") != extradata:
            raise VtError(
                f"segment {path.name} was encoded with other codec headers than "
                "the first segment: cannot join them by stream copy"
            )
        tb = source.time_base or Fraction(1, 1)
        ordered = recent + sorted(order)
        base = len(recent)
        # the stream's first ``delay`` frames decode before its first PTS: their own PTS
        # moved back by the delay, as x264 and x265 do
        lead = ordered[min(delay, len(ordered) - 1)] - ordered[0]
        i = 0
        for packet in segment.demux(source):
            if not packet.size:
                continue
            if i >= len(order) or packet.pts != order[i]:
                raise VtError(f"segment {path.name} changed while it was being joined")
            j = base + i - delay
            packet.dts = ordered[j] if j >= 0 else ordered[base + i] - lead
            packet.stream = stream
            packet.time_base = tb
            try:
                out.mux(packet)
            except av.error.FFmpegError as exc:
                raise OutputError(f"cannot write {out.name}: {exc}") from exc
            i += 1
            report.frames += 1
            side.pump(float(packet.pts * tb))
        recent[:] = ordered[-delay:] if delay else []
