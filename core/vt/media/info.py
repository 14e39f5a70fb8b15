"""Probing: everything vt knows about a source before decoding it (``vt info``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import av

from vt.errors import InputError, UnreadableInputError
from vt.media.source import Source

# FFmpeg enum values (libavutil/pixfmt.h) -> names, for reports.
COLOR_RANGES = {0: None, 1: "tv", 2: "pc"}
COLOR_PRIMARIES = {
    1: "bt709",
    2: None,
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
COLOR_TRCS = {
    1: "bt709",
    2: None,
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}
COLOR_SPACES = {
    0: "gbr",
    1: "bt709",
    2: None,
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}

MAX_DIMENSION = 16384


@dataclass
class VideoStreamInfo:
    index: int
    codec: str
    profile: str | None
    width: int
    height: int
    pixel_format: str | None
    bit_depth: int
    has_alpha: bool
    sample_aspect_ratio: Fraction | None
    rotation: int
    color_range: str | None
    color_primaries: str | None
    color_trc: str | None
    color_space: str | None
    color_codes: tuple[int, int, int, int]  # range, primaries, trc, space (raw FFmpeg values)
    fps: Fraction | None  # average frame rate
    real_fps: Fraction | None  # r_frame_rate: the lowest rate that represents every timestamp
    time_base: Fraction
    start_time: float | None
    duration: float | None
    frame_count: int | None
    frame_count_exact: bool  # True when counted by demuxing, False when from the header
    vfr: bool | None  # None when not checked
    bit_rate: int | None
    language: str | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown (rotation and SAR applied)."""
        w, h = self.width, self.height
        if self.sample_aspect_ratio and self.sample_aspect_ratio not in (0, 1):
            w = round(w * self.sample_aspect_ratio)
        return (h, w) if self.rotation % 180 else (w, h)


@dataclass
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str | None
    bit_rate: int | None
    duration: float | None
    start_time: float | None
    language: str | None


@dataclass
class OtherStreamInfo:
    index: int
    type: str  # subtitle | attachment | data
    codec: str | None
    language: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class MediaInfo:
    source: str
    container: str | None
    duration: float | None
    bit_rate: int | None
    size_bytes: int | None
    metadata: dict[str, str]
    video: VideoStreamInfo
    audio: list[AudioStreamInfo] = field(default_factory=list)
    subtitles: list[OtherStreamInfo] = field(default_factory=list)
    attachments: list[OtherStreamInfo] = field(default_factory=list)
    data: list[OtherStreamInfo] = field(default_factory=list)
    extra_video: list[OtherStreamInfo] = field(default_factory=list)  # cover art, alt angles

    def to_dict(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, Fraction):
                return {"num": value.numerator, "den": value.denominator, "value": float(value)}
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [convert(v) for v in value]
            return value

        result: dict[str, Any] = convert(asdict(self))
        return result


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _bit_depth(stream: av.video.stream.VideoStream) -> tuple[int, bool]:
    fmt = stream.codec_context.format
    if fmt is None:
        return 8, False
    depth = max((c.bits for c in fmt.components), default=8)
    has_alpha = any(getattr(c, "is_alpha", False) for c in fmt.components)
    return depth, has_alpha


def _rotation_from_side_data(stream: Any) -> int | None:
    """Rotation in degrees from the stream's display matrix, counter-clockwise like ffprobe."""
    value = (stream.metadata or {}).get("rotate")
    if value is not None:
        try:
            return (-int(float(value))) % 360
        except ValueError:
            return None
    return None


def main_video_stream(container: av.container.InputContainer) -> Any | None:
    """The video stream to process: the first that is not a cover picture."""
    streams = list(container.streams.video)
    for stream in streams:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return streams[0] if streams else None


def check_dimensions(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{what} has zero-size frames ({width}x{height})")
    if width > MAX_DIMENSION or height > MAX_DIMENSION:
        raise InputError(f"{what} has absurd dimensions {width}x{height} (max {MAX_DIMENSION})")


def open_container(source: Source) -> av.container.InputContainer:
    """Open a source with PyAV, turning FFmpeg's errors into one-line ``InputError``s."""
    try:
        return av.open(source.open_binary(), "r")
    except av.error.InvalidDataError as exc:
        raise UnreadableInputError(
            f"not a video file we can read: {source.describe()} ({exc.strerror})"
        ) from exc
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot open {source.describe()}: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise InputError(f"cannot open {source.describe()}: {exc.strerror or exc}") from exc


def probe_container(
    container: av.container.InputContainer,
    source: Source,
    *,
    count_frames: bool = True,
    first_frame: av.VideoFrame | None = None,
    rotation: int | None = None,
) -> MediaInfo:
    """Describe an open container. Counting frames and VFR detection demux the video packets
    (no decoding) when the header lacks a count; the container is rewound afterwards.
    Without rotation side data on the stream, the rotation is ``rotation`` where given, else
    ``first_frame``'s."""
    vs = main_video_stream(container)
    if vs is None:
        raise InputError(f"no video stream in {source.describe()}")
    fmt = container.format.name
    if fmt == "tty":  # FFmpeg shows text files as ANSI art: never what a user means
        raise UnreadableInputError(
            f"not a video file we can read: {source.describe()} (a text file)"
        )
    if (
        source.kind != "frames"
        and (fmt.endswith("_pipe") or fmt in ("image2", "gif"))
        and (fmt != "gif")
    ):
        kind = fmt.removesuffix("_pipe").upper()
        raise InputError(
            f"{source.describe()} is a single {kind} image, not a video "
            "(pass a folder or pattern of images for an image sequence)"
        )
    cc = vs.codec_context
    if cc is None or not cc.name or cc.name == "none":
        raise InputError(f"unsupported video codec in {source.describe()}")
    check_dimensions(cc.width, cc.height, source.describe())
    depth, alpha = _bit_depth(vs)
    tb = vs.time_base or Fraction(1, 1)
    frame_count = vs.frames or None
    exact = False
    vfr: bool | None = None
    if count_frames:
        counted, vfr = count_packets(container, vs)
        if counted:
            frame_count, exact = counted, True
    turn = _rotation_from_side_data(vs)
    if turn is None and rotation is not None:
        turn = rotation
    if turn is None:
        turn = int(first_frame.rotation) % 360 if first_frame is not None else 0
    video = VideoStreamInfo(
        index=vs.index,
        codec=cc.name,
        profile=vs.profile,
        width=cc.width,
        height=cc.height,
        pixel_format=cc.pix_fmt,
        bit_depth=depth,
        has_alpha=alpha,
        sample_aspect_ratio=vs.sample_aspect_ratio or cc.sample_aspect_ratio or None,
        rotation=turn,
        color_range=COLOR_RANGES.get(cc.color_range),
        color_primaries=COLOR_PRIMARIES.get(cc.color_primaries),
        color_trc=COLOR_TRCS.get(cc.color_trc),
        color_space=COLOR_SPACES.get(cc.colorspace),
        color_codes=(cc.color_range, cc.color_primaries, cc.color_trc, cc.colorspace),
        fps=vs.average_rate or vs.guessed_rate,
        real_fps=vs.base_rate,
        time_base=tb,
        start_time=_seconds(vs.start_time, tb),
        duration=_seconds(vs.duration, tb),
        frame_count=frame_count,
        frame_count_exact=exact,
        vfr=vfr,
        bit_rate=vs.bit_rate or None,
        language=vs.language,
    )
    if video.duration is None and container.duration is not None:
        video.duration = container.duration / av.time_base

    def other(s: Any, kind: str) -> OtherStreamInfo:
        codec = s.codec_context.name if s.codec_context is not None else None
        return OtherStreamInfo(s.index, kind, codec, s.language, dict(s.metadata or {}))

    audio = [
        AudioStreamInfo(
            index=a.index,
            codec=a.codec_context.name,
            sample_rate=a.codec_context.sample_rate,
            channels=a.codec_context.channels,
            layout=a.codec_context.layout.name if a.codec_context.layout else None,
            bit_rate=a.bit_rate or None,
            duration=_seconds(a.duration, a.time_base),
            start_time=_seconds(a.start_time, a.time_base),
            language=a.language,
        )
        for a in container.streams.audio
    ]
    size = source.path.stat().st_size if source.kind == "file" and source.path else None
    if source.kind == "bytes" and source.data is not None:
        size = len(source.data)
    return MediaInfo(
        source=source.describe(),
        container=container.format.name,
        duration=container.duration / av.time_base if container.duration else video.duration,
        bit_rate=container.bit_rate or None,
        size_bytes=size,
        metadata=dict(container.metadata or {}),
        video=video,
        audio=audio,
        subtitles=[other(s, "subtitle") for s in container.streams.subtitles],
        attachments=[other(s, "attachment") for s in container.streams.attachments],
        data=[other(s, "data") for s in container.streams.data],
        extra_video=[other(s, "video") for s in container.streams.video if s.index != vs.index],
    )


def count_packets(
    container: av.container.InputContainer, vs: Any
) -> tuple[int | None, bool | None]:
    """Count video packets and check whether their durations vary (VFR), without decoding."""
    count = 0
    pts_values: list[int] = []
    try:
        for packet in container.demux(vs):
            if packet.size == 0:
                continue
            count += 1
            if packet.pts is not None and len(pts_values) < 100000:
                pts_values.append(packet.pts)
    except av.error.FFmpegError:
        pass  # a damaged tail: report what could be read
    finally:
        rewind(container, vs)
    vfr = None
    if len(pts_values) > 2:
        pts_values.sort()
        deltas = {b - a for a, b in zip(pts_values, pts_values[1:]) if b > a}
        if deltas:
            lo, hi = min(deltas), max(deltas)
            vfr = hi - lo > max(1, lo // 50)  # allow rounding jitter of ~2%
    return (count or None), vfr


def scan_packets(
    container: av.container.InputContainer, vs: Any
) -> tuple[list[int | None], list[int]]:
    """PTS of every video packet (None where a packet has none) and of the keyframe packets,
    in demux order, from the start of the stream, without decoding. FFmpeg errors propagate:
    callers decide whether a partial scan is usable."""
    pts: list[int | None] = []
    key_pts: list[int] = []
    rewind(container, vs)
    for packet in container.demux(vs):
        if packet.size == 0:  # the final empty packet only drains the decoder
            continue
        pts.append(packet.pts)
        if packet.is_keyframe and packet.pts is not None:
            key_pts.append(packet.pts)
    return pts, key_pts


def probe(source: Source | str | bytes, *, count_frames: bool = True) -> MediaInfo:
    """Metadata of a video file or byte stream (image sequences: see ``frames_info``)."""
    src = source if isinstance(source, Source) else Source.parse(source)
    if src.kind == "frames":
        from vt.media.decoders.images import image_sequence_info

        return image_sequence_info(src)
    with open_container(src) as container:
        first = peek_first_frame(container)
        return probe_container(container, src, count_frames=count_frames, first_frame=first)


def peek_first_frame(container: av.container.InputContainer) -> av.VideoFrame | None:
    """The first decodable frame of the main video stream (rotation lives in its side data),
    skipping packets that fail to decode; the container is rewound afterwards."""
    vs = main_video_stream(container)
    if vs is None or vs.codec_context is None:
        return None
    frame = None
    try:
        for packet in container.demux(vs):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                continue
            if decoded:
                frame = decoded[0]
                break
    except av.error.FFmpegError:
        frame = None
    rewind(container, vs)
    return frame


def rewind(container: av.container.InputContainer, stream: Any) -> None:
    """Back to the first packet. Seeking to timestamp 0 (before any data) works for every
    demuxer we tried; seeking to the stream's own start time finds nothing in MPEG-TS."""
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:  # pragma: no cover - streams that cannot seek
        pass
