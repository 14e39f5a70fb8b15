"""The container writer: encoded video (every frame at its own PTS, in the input stream's
time base, so VFR stays VFR), with rotation, SAR, colour tags and container metadata carried,
and the source's side streams (``side_streams``) muxed beside it."""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

import av

from vt.errors import OutputError, UsageError
from vt.lazy import lazy_module
from vt.media.color import ColorTags, resolve_colors
from vt.media.encode.config import EncoderConfig, choose_pixel_format, parse_bitrate
from vt.media.encode.side_streams import SideStreams
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import MediaInfo
from vt.media.source import Source
from vt.media.swscale import reformat
from vt.registry import OutputTarget

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("vt")

CONTAINER_EXTENSIONS = (
    "mp4",
    "m4v",
    "mov",
    "mkv",
    "webm",
    "avi",
    "ts",
    "m2ts",
    "mts",
    "flv",
    "nut",
    "mxf",
    "ogv",
    "3gp",
)
# Container keys the muxer writes itself; copying them would misreport the new file.
_TECHNICAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}


def _format_name(target: OutputTarget, config: EncoderConfig) -> str | None:
    if config.format:
        return config.format
    ext = target.extension
    return {
        "mkv": "matroska",
        "webm": "webm",
        "m4v": "mp4",
        "ts": "mpegts",
        "m2ts": "mpegts",
        "mts": "mpegts",
        "3gp": "3gp",
    }.get(ext)


#: a decode timestamp further than this many seconds before its presentation time is noise
_MAX_REORDER_SECONDS = 60


def fix_garbage_dts(packets: list[Any]) -> None:
    """Give packets with an impossible decode timestamp (after the presentation time, or a
    minute before it) their PTS as DTS. libx265 reports uninitialised DTS for streams shorter
    than its B-frame delay (one or two frames), where no frame is reordered and DTS = PTS is
    right; the muxer would otherwise reject the packets."""
    for packet in packets:
        pts, dts = packet.pts, packet.dts
        if pts is None or dts is None or packet.time_base is None:
            continue
        if dts > pts or (pts - dts) * packet.time_base > _MAX_REORDER_SECONDS:
            packet.dts = pts


#: narrower libx265 frames crash PyAV 18.1's x265 when they are at most 64 px high
X265_MIN_WIDTH = 56


class ContainerWriter:
    """Writes encoded video plus copied side streams into one container file.

    With a source (``source`` and its ``info``) the video stream takes the source's rate,
    SAR, rotation, language and container tags, and the source's audio, subtitles and
    attachments are copied. Generated video has no source description (``info`` None): the
    stream takes ``rate`` and ``metadata``, and ``source``, when given, is a file whose audio
    is muxed in and cut to the video's length. ``colors`` are the tags the RGB frames are
    converted with and the stream carries (default: the source's, missing ones filled by the
    player rule of ``vt.media.color``).
    """

    def __init__(
        self,
        target: OutputTarget,
        config: EncoderConfig,
        fmt: FrameFormat,
        source: Source | None,
        info: MediaInfo | None,
        *,
        audio: bool = True,
        subtitles: bool = True,
        time_base: Fraction | None = None,
        rate: Fraction | None = None,
        colors: ColorTags | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        if info is None and (rate is None or time_base is None):
            raise ValueError("generated video (no source info) needs a rate and a time base")
        config.validate()
        self.config = config
        self.info = info
        self.fmt = fmt
        self.warnings: list[str] = []
        # a plain function, not a bound method: the side streams keep it, and a cycle back to
        # this writer would keep its encoder (hundreds of MB at 1080p) until a gc pass
        self._warn = _warner(self.warnings)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._warned_repeats = False
        format_name = _format_name(target, config)
        try:
            self.out = av.open(str(target.path), "w", format=format_name)
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot write {target.path.name}: {exc}") from exc
        # a time range cuts every stream at the same times and starts the output at zero
        cut_start: float | None = None
        cut_end: float | None = None
        if info is not None and source is not None:
            origin = info.video.start_time or 0.0
            cut_start = origin + source.start if source.start else None
            cut_end = origin + source.end if source.end is not None else None
        self._shift = cut_start or 0.0
        # generated video: audio may not run past the last frame, so none is muxed ahead
        self._trim_to_video = info is None
        try:
            self._setup_video(
                fmt,
                time_base or info.video.time_base,  # type: ignore[union-attr]
                rate,
                colors,
            )
            # after the video: the video stream comes first in the output
            self.side: SideStreams = SideStreams(
                self.out,
                config,
                source,
                info,
                audio=audio,
                subtitles=subtitles,
                cut_start=cut_start,
                cut_end=cut_end,
                shift=self._shift,
                lookahead=0.0 if self._trim_to_video else 0.5,
                warn=self._warn,
            )
            self._copy_metadata(metadata)
        except BaseException:
            self.abort()
            raise

    @property
    def audio_mode(self) -> str:
        """What happened to the source's audio: none, copied, re-encoded or dropped."""
        return self.side.audio_mode

    @property
    def subtitle_mode(self) -> str:
        """What happened to its subtitles: none, copied, converted or dropped."""
        return self.side.subtitle_mode

    # -- setup -------------------------------------------------------------------------------
    def _setup_video(
        self, fmt: FrameFormat, time_base: Fraction, rate: Fraction | None, colors: ColorTags | None
    ) -> None:
        cfg, info = self.config, self.info
        video = info.video if info is not None else None
        self.pixel_format = choose_pixel_format(
            cfg.codec,
            info,
            cfg.pixel_format,
            fmt.size,
            bit_depth=16 if fmt.layout == "rgb48" else 8,
        )
        if rate is None:
            rate = (video.fps or video.real_fps if video is not None else None) or Fraction(25)
        codec_opts = cfg.video_options()
        try:
            # validated as a video encoder by EncoderConfig.validate
            vs = cast(av.VideoStream, self.out.add_stream(cfg.codec, rate=rate, options=codec_opts))
        except (av.error.FFmpegError, ValueError) as exc:
            raise UsageError(f"cannot use encoder {cfg.codec}: {exc}") from exc
        if (
            cfg.codec in ("libx264", "libx265")
            and (fmt.width % 2 or fmt.height % 2)
            and (self.pixel_format.startswith(("yuv420", "yuvj420", "nv12", "p010")))
        ):
            raise UsageError(
                f"{cfg.codec} with {self.pixel_format} needs even dimensions, frames are "
                f"{fmt.width}x{fmt.height} (use --pix-fmt yuv444p or another codec)"
            )
        if cfg.codec == "libx265" and fmt.width < X265_MIN_WIDTH and fmt.height <= 64:
            # seen here: 34-48 px wide frames up to 64 px high abort the process
            # ("free(): invalid next size") inside the x265 of PyAV 18.1's FFmpeg
            raise UsageError(
                f"libx265 crashes on frames this small ({fmt.width}x{fmt.height}) in this "
                f"FFmpeg build: use frames at least {X265_MIN_WIDTH} px wide or 65 px high, or "
                "another --codec (libx264)"
            )
        vs.width, vs.height = fmt.width, fmt.height
        vs.pix_fmt = self.pixel_format
        cc = vs.codec_context
        cc.time_base = time_base
        # the ffmpeg CLI's default: PyAV asks for slice threads only, which makes x264 cut every
        # frame into slices (slower on a few cores, and a different stream from ffmpeg's)
        cc.thread_type = "AUTO"
        if cfg.threads:
            cc.thread_count = cfg.threads
        if cfg.bitrate:
            cc.bit_rate = parse_bitrate(cfg.bitrate)
        if colors is None:
            codes = video.color_codes if video is not None else (0, 2, 2, 2)
            colors = resolve_colors(codes, video.height if video is not None else fmt.height)
        self.colors = colors
        if self.pixel_format.startswith(("yuv", "nv", "p01")):
            cc.color_range = colors.range
            cc.colorspace = colors.space
        elif self.pixel_format.startswith(("rgb", "bgr", "gbr")):
            cc.colorspace = 0  # RGB-coded: no matrix
        cc.color_primaries, cc.color_trc = colors.primaries, colors.trc
        if video is not None and video.sample_aspect_ratio:
            cc.sample_aspect_ratio = video.sample_aspect_ratio
        if video is not None and video.rotation:
            vs.set_display_rotation(video.rotation)
        if video is not None and video.language:
            vs.metadata["language"] = video.language
        self.stream = vs
        self.time_base = time_base
        self.frame_duration = 1 / rate  # seconds: where the last frame ends
        # RGB -> YUV with the matrix the stream is tagged with
        self._colorspace = colors.sws_colorspace
        self._color_range = colors.range

    def _copy_metadata(self, metadata: dict[str, str] | None) -> None:
        if metadata is None:
            metadata = self.info.metadata if self.info is not None else {}
        for key, value in metadata.items():
            if key.lower() not in _TECHNICAL_TAGS:
                self.out.metadata[key] = value

    # -- writing -----------------------------------------------------------------------------
    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encode one frame (any pixel format) at its own PTS."""
        if frame.format.name != self.pixel_format or (frame.width, frame.height) != (
            self.fmt.width,
            self.fmt.height,
        ):
            kwargs: dict[str, Any] = {}
            if frame.format.name.startswith(("rgb", "bgr", "gbr")):
                if self._colorspace is not None:
                    kwargs["dst_colorspace"] = self._colorspace
                if self._color_range is not None:
                    kwargs["dst_color_range"] = self._color_range
            frame = reformat(
                frame,
                width=self.fmt.width,
                height=self.fmt.height,
                format=self.pixel_format,
                **kwargs,
            )
        pts = frame.pts
        if pts is not None and self._shift:
            pts = pts - int(round(self._shift / self.time_base))
            frame.pts = pts
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            # only a source can get here (the processor chain refuses reordered frames): its
            # timestamps repeat, which encoders reject; move the frame one tick on and say so
            if not self._warned_repeats:
                self._warned_repeats = True
                self._warn(
                    f"the input repeats timestamps (pts {pts} after {self._last_pts}): "
                    "such frames are written one tick later"
                )
            pts = self._last_pts + 1
            frame.pts = pts
        self._last_pts = pts
        frame.time_base = self.time_base
        try:
            packets = self.stream.encode(frame)
        except av.error.FFmpegError as exc:
            raise OutputError(f"encoder {self.config.codec} failed: {exc}") from exc
        self._mux_video(packets)
        self.frames_written += 1
        if pts is not None:
            self.side.pump(float(pts * self.time_base))

    def write_batch(self, batch: FrameBatch) -> None:
        av_format = "rgb48le" if batch.layout == "rgb48" else "rgb24"
        for image, pts in zip(batch.images, batch.pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=av_format)
            frame.pts = pts
            self.write_frame(frame)

    def _mux_video(self, packets: list[Any]) -> None:
        fix_garbage_dts(packets)
        try:
            self.out.mux(packets)
        except av.error.FFmpegError as exc:
            raise OutputError(f"cannot write {self.out.name}: {exc}") from exc

    def close(self) -> None:
        """Flush the encoders, copy remaining side packets and finish the file."""
        self._mux_video(self.stream.encode(None))
        if self._trim_to_video and self._last_pts is not None:  # audio ends with the video
            self.side.cut_end = float(self._last_pts * self.time_base) + float(self.frame_duration)
        self.side.finish()
        self.out.close()

    def abort(self) -> None:
        # closing a broken demuxer or muxer must not hide the real error
        for close in (
            getattr(getattr(self, "side", None), "close", None),
            getattr(getattr(self, "out", None), "close", None),
        ):
            if close is not None:
                try:
                    close()
                except Exception:
                    pass


def _warner(warnings: list[str]) -> Callable[[str], None]:
    def warn(message: str) -> None:
        warnings.append(message)
        log.warning(message)

    return warn


def open_container_writer(
    target: OutputTarget,
    config: EncoderConfig,
    fmt: FrameFormat,
    source: Source | None,
    info: MediaInfo | None,
    **kwargs: Any,
) -> ContainerWriter:
    return ContainerWriter(target, config, fmt, source, info, **kwargs)
