"""Encoding: ``EncoderConfig`` and the writers that turn frames into files.

The container writer keeps every frame's PTS (encoder time base = input stream time base, so
VFR stays VFR), carries rotation, SAR, colour tags and container metadata, and copies audio,
subtitle and attachment streams from the input (re-encoding audio only when the target
container cannot hold its codec). Side-stream packets are read from a second demuxer and
muxed as the video reaches their time, so interleaving is good and memory stays bounded.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vt.errors import OutputError, UsageError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import MediaInfo
from vt.media.source import Source
from vt.media.swscale import reformat
from vt.registry import OutputTarget

log = logging.getLogger("vt")

CONTAINER_EXTENSIONS = ("mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "m2ts", "mts", "flv",
                        "nut", "mxf", "ogv", "3gp")
# Container keys the muxer writes itself; copying them would misreport the new file.
_TECHNICAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}
_SVT_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
                "medium": 6, "slow": 4, "slower": 3, "veryslow": 2, "placebo": 1}
_VPX_SPEED = {"ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4,
              "medium": 2, "slow": 1, "slower": 0, "veryslow": 0, "placebo": 0}


@dataclass
class EncoderConfig:
    """Video and audio encoder settings (the KizunaSR ``EncoderConfig`` plus free options)."""

    codec: str = "libx264"
    pixel_format: str | None = None  # None: chosen from the encoder and the input
    crf: int | None = 18
    preset: str | None = "medium"
    bitrate: str | None = None  # e.g. "5M"; overrides crf
    audio_codec: str = "aac"
    audio_bitrate: str = "192k"
    format: str | None = None  # container; None: from the output extension
    options: dict[str, str] = field(default_factory=dict)  # any encoder option (-e key=value)

    def validate(self) -> None:
        try:
            codec = av.Codec(self.codec, "w")
        except Exception:
            raise UsageError(f"unknown video encoder {self.codec!r}") from None
        if codec.type != "video":
            raise UsageError(f"{self.codec!r} is not a video encoder")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise UsageError(f"crf must be between 0 and 63, got {self.crf}")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        parse_bitrate(self.audio_bitrate)
        if self.options:
            _check_encoder_options(codec, self.options)

    def video_options(self) -> dict[str, str]:
        """Options for the video encoder, translated per codec family."""
        opts: dict[str, str] = {}
        c = self.codec
        if c in ("libx264", "libx265", "libx264rgb"):
            if self.preset:
                opts["preset"] = self.preset
            if self.crf is not None and self.bitrate is None:
                opts["crf"] = str(self.crf)
            if c == "libx265":
                opts["x265-params"] = "log-level=error"
        elif c == "libsvtav1":
            if self.preset:
                opts["preset"] = str(_SVT_PRESETS.get(self.preset, self.preset))
            if self.crf is not None and self.bitrate is None:
                opts["crf"] = str(self.crf)
        elif c == "libvpx-vp9":
            if self.crf is not None and self.bitrate is None:
                opts.update(crf=str(self.crf), b="0")
            if self.preset:
                opts["cpu-used"] = str(_VPX_SPEED.get(self.preset, self.preset))
            opts.setdefault("row-mt", "1")
        elif c.endswith("_nvenc"):
            if self.crf is not None and self.bitrate is None:
                opts.update(rc="vbr", cq=str(self.crf))
        opts.update(self.options)
        return opts


def _check_encoder_options(codec: av.Codec, options: dict[str, str]) -> None:
    """Open the encoder on a tiny frame with the user's ``-e`` options: FFmpeg hands back
    the options it did not use (misspelt or meant for another encoder); those are errors."""

    def opened(opts: dict[str, str]) -> av.CodecContext:
        cc = av.CodecContext.create(codec, "w")
        cc.width = cc.height = 64
        formats = [f.name for f in codec.video_formats or []]
        cc.pix_fmt = "yuv420p" if "yuv420p" in formats or not formats else formats[0]
        cc.time_base = Fraction(1, 25)
        cc.framerate = Fraction(25)
        cc.options = dict(opts)
        cc.open()
        return cc

    try:
        unused = dict(opened(options).options)
    except (av.error.FFmpegError, ValueError) as exc:
        try:
            opened({})
        except (av.error.FFmpegError, ValueError):
            return  # the encoder cannot open here at all (e.g. no GPU): it fails later
        raise UsageError(f"encoder option(s) {_pairs(options)} rejected by {codec.name}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if unused:
        raise UsageError(f"unknown option(s) for encoder {codec.name}: {_pairs(unused)} "
                         f"(see: ffmpeg -h encoder={codec.name})")


def _pairs(options: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def parse_bitrate(text: str) -> int:
    """'192k' -> 192000, '10M' -> 10000000."""
    units = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(float(value))
    except ValueError:
        raise UsageError(f"bad bitrate {text!r} (examples: 192k, 10M)") from None


_PREFERRED_10BIT = ("yuv420p10le", "yuv422p10le", "yuv444p10le", "p010le", "gbrp10le")
_PREFERRED_ALPHA = ("yuva420p", "yuva444p10le", "yuva444p", "rgba", "bgra")
_PREFERRED_8BIT = ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "rgb24", "bgr0")


def choose_pixel_format(codec_name: str, info: MediaInfo, requested: str | None,
                        size: tuple[int, int] | None = None) -> str:
    """The encoder's format closest to the input's (bit depth, chroma, alpha); 4:4:4 when the
    frames have an odd size that 4:2:0 cannot hold."""
    chosen = _closest_pixel_format(codec_name, info, requested)
    if requested or size is None or not (size[0] % 2 or size[1] % 2):
        return chosen
    if chosen.startswith(("yuv420", "yuvj420", "nv12", "p010", "yuva420")):
        supported = [f.name for f in (av.Codec(codec_name, "w").video_formats or [])]
        for name in (chosen.replace("420", "444"), "yuv444p10le" if "10" in chosen
                     else "yuv444p", "yuv444p", "gbrp", "rgb24"):
            if name in supported:
                log.warning("%dx%d frames cannot be stored as %s: using %s", size[0], size[1],
                            chosen, name)
                return name
    return chosen


def _closest_pixel_format(codec_name: str, info: MediaInfo, requested: str | None) -> str:
    codec = av.Codec(codec_name, "w")
    supported = [f.name for f in (codec.video_formats or [])]
    if requested:
        if supported and requested not in supported:
            raise UsageError(
                f"{codec_name} does not support pixel format {requested!r} "
                f"(supported: {', '.join(supported)})"
            )
        return requested
    if not supported:
        return info.video.pixel_format or "yuv420p"
    source_format = info.video.pixel_format
    if source_format in supported and not source_format.startswith(("yuvj", "pal")):
        return source_format
    if info.video.has_alpha:
        for name in _PREFERRED_ALPHA:
            if name in supported:
                return name
    if info.video.bit_depth > 8:
        for name in _PREFERRED_10BIT:
            if name in supported:
                return name
    for name in _PREFERRED_8BIT:
        if name in supported:
            return name
    return supported[0]


def _format_name(target: OutputTarget, config: EncoderConfig) -> str | None:
    if config.format:
        return config.format
    ext = target.extension
    return {"mkv": "matroska", "webm": "webm", "m4v": "mp4", "ts": "mpegts", "m2ts": "mpegts",
            "mts": "mpegts", "3gp": "3gp"}.get(ext)


def _can_mux(format_name: str, template: Any) -> bool:
    """Whether ``format_name`` accepts a copy of ``template`` (tried on an in-memory muxer)."""
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=format_name) as probe:
            if template.type == "attachment":
                return False
            probe.add_stream_from_template(template)
            probe.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError, NotImplementedError):
        return False


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


class ContainerWriter:
    """Writes encoded video plus copied side streams into one container file."""

    def __init__(
        self,
        target: OutputTarget,
        config: EncoderConfig,
        fmt: FrameFormat,
        source: Source,
        info: MediaInfo,
        *,
        audio: bool = True,
        subtitles: bool = True,
        time_base: Fraction | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.info = info
        self.fmt = fmt
        self.warnings: list[str] = []
        self.audio_mode = "none"
        self.subtitle_mode = "none"
        self.frames_written = 0
        self._last_pts: int | None = None
        format_name = _format_name(target, config)
        try:
            self.out = av.open(str(target.path), "w", format=format_name)
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot write {target.path.name}: {exc}") from exc
        self._side_input: av.container.InputContainer | None = None
        self._side_packets: Iterator[Any] | None = None
        self._pending: Any = None
        # a time range cuts every stream at the same times and starts the output at zero
        self._cut_start = (info.video.start_time or 0.0) + source.start if source.start else None
        self._cut_end = ((info.video.start_time or 0.0) + source.end
                         if source.end is not None else None)
        self._shift = self._cut_start or 0.0
        self._copies: dict[int, Any] = {}  # input stream index -> output stream (copied)
        self._subtitles: dict[int, Any] = {}  # index -> output stream (text re-encoded)
        self._encoders: dict[int, tuple[Any, Any]] = {}  # index -> (encoder, resampler)
        try:
            self._setup_video(fmt, time_base or info.video.time_base)
            self._setup_side_streams(source, audio, subtitles)
            self._copy_metadata()
        except BaseException:
            self.abort()
            raise

    # -- setup -------------------------------------------------------------------------------
    def _setup_video(self, fmt: FrameFormat, time_base: Fraction) -> None:
        cfg, video = self.config, self.info.video
        self.pixel_format = choose_pixel_format(cfg.codec, self.info, cfg.pixel_format,
                                                fmt.size)
        rate = video.fps or video.real_fps or Fraction(25)
        codec_opts = cfg.video_options()
        try:
            vs = self.out.add_stream(cfg.codec, rate=rate, options=codec_opts)
        except (av.error.FFmpegError, ValueError) as exc:
            raise UsageError(f"cannot use encoder {cfg.codec}: {exc}") from exc
        if cfg.codec in ("libx264", "libx265") and (fmt.width % 2 or fmt.height % 2) and (
            self.pixel_format.startswith(("yuv420", "yuvj420", "nv12", "p010"))
        ):
            raise UsageError(
                f"{cfg.codec} with {self.pixel_format} needs even dimensions, frames are "
                f"{fmt.width}x{fmt.height} (use --pix-fmt yuv444p or another codec)"
            )
        vs.width, vs.height = fmt.width, fmt.height
        vs.pix_fmt = self.pixel_format
        cc = vs.codec_context
        cc.time_base = time_base
        if cfg.bitrate:
            cc.bit_rate = parse_bitrate(cfg.bitrate)
        rng, primaries, trc, space = video.color_codes
        if self.pixel_format.startswith(("yuv", "nv", "p01")):
            cc.color_range = rng
            cc.colorspace = space
        cc.color_primaries, cc.color_trc = primaries, trc
        if video.sample_aspect_ratio:
            cc.sample_aspect_ratio = video.sample_aspect_ratio
        if video.rotation:
            vs.set_display_rotation(video.rotation)
        if video.language:
            vs.metadata["language"] = video.language
        self.stream = vs
        self.time_base = time_base
        # colour matrix for RGB -> YUV: the source's, else BT.601 like the decoder's default
        self._colorspace = space if space not in (0, 2) else None
        self._color_range = rng if rng else None

    def _setup_side_streams(self, source: Source, audio: bool, subtitles: bool) -> None:
        if source.kind == "frames":
            return
        wanted_audio = self.info.audio if audio else []
        if self.info.audio and not audio:
            self.audio_mode = "dropped"
        wanted_subs = self.info.subtitles if subtitles else []
        if self.info.subtitles and not subtitles:
            self.subtitle_mode = "dropped"
        if not (wanted_audio or wanted_subs or self.info.attachments or self.info.data
                or self.info.extra_video):
            return
        self._side_input = av.open(source.open_binary(), "r")
        fmt_name = self.out.format.name.split(",")[0]
        streams = {s.index: s for s in self._side_input.streams}
        for a in wanted_audio:
            template = streams[a.index]
            if _can_mux(fmt_name, template):
                self._copies[a.index] = self.out.add_stream_from_template(template)
                self.audio_mode = "copied"
            else:
                codec = self._audio_codec_for(fmt_name)
                enc = self.out.add_stream(codec, rate=a.sample_rate,
                                          layout=a.layout or "stereo")
                enc.bit_rate = parse_bitrate(self.config.audio_bitrate)
                self._encoders[a.index] = (enc, None)
                self.audio_mode = "re-encoded"
                self._warn(f"audio stream {a.index} ({a.codec}) cannot go into "
                           f"{self.out.format.name}: re-encoded to {codec} "
                           f"{self.config.audio_bitrate}")
        for s in wanted_subs:
            template = streams[s.index]
            if _can_mux(fmt_name, template):
                self._copies[s.index] = self.out.add_stream_from_template(template)
                self.subtitle_mode = "copied"
            elif (converted := self._text_subtitle_stream(template)) is not None:
                self._subtitles[s.index] = converted
                if self.subtitle_mode != "copied":
                    self.subtitle_mode = "converted"
                self._warn(f"subtitle stream {s.index} ({s.codec}) cannot go into "
                           f"{self.out.format.name} as it is: converted to "
                           f"{converted.codec_context.name}")
            else:
                if self.subtitle_mode == "none":
                    self.subtitle_mode = "dropped"
                self._warn(f"subtitle stream {s.index} ({s.codec}) cannot go into "
                           f"{self.out.format.name}: not copied (use .mkv to keep it)")
        for att in self.info.attachments:
            template = streams[att.index]
            if fmt_name == "matroska":
                name = att.metadata.get("filename", f"attachment{att.index}")
                mimetype = att.metadata.get("mimetype", "application/octet-stream")
                self.out.add_attachment(name, mimetype, template.data)
            else:
                self._warn(f"attachment {att.index} cannot go into {self.out.format.name}: "
                           "not copied (use .mkv to keep it)")
        for data in self.info.data:
            self._warn(f"data stream {data.index} ({data.codec}) not copied")
        for extra in self.info.extra_video:
            self._warn(f"extra video stream {extra.index} ({extra.codec}) not copied: vt "
                       "processes the main video stream")
        side = [streams[i] for i in (*self._copies, *self._subtitles, *self._encoders)]
        if side and self._cut_start:
            self._side_input.seek(int(self._cut_start * av.time_base), backward=True)
        self._side_packets = self._side_input.demux(*side) if side else None
        if not side:
            self._side_input.close()
            self._side_input = None

    def _text_subtitle_stream(self, template: Any) -> Any | None:
        """An output stream in the container's own text subtitle codec (mov_text for MP4,
        webvtt for WebM) for a text subtitle input, or None (bitmap subtitles, no codec)."""
        codec = template.codec_context.name if template.codec_context else None
        supported = self.out.supported_codecs
        preferred = (self.out.default_subtitle_codec, "mov_text", "webvtt", "ass", "subrip")
        target = next((c for c in preferred if c and c != "none" and c in supported), None)
        if not codec or target is None:
            return None
        try:
            if not av.Codec(codec, "r").text_sub:
                return None
            template.codec_context.open()  # the decoder builds the ASS header the encoder needs
            stream = self.out.add_stream(target)
        except (av.error.FFmpegError, ValueError):
            return None
        stream.codec_context.subtitle_header = template.codec_context.subtitle_header
        stream.codec_context.time_base = Fraction(1, 1000)
        return stream

    def _audio_codec_for(self, fmt_name: str) -> str:
        """The configured audio codec, or the container's default when it can't hold it."""
        wanted = self.config.audio_codec
        supported = self.out.supported_codecs
        if wanted in supported or not supported:
            return wanted
        fallback = self.out.default_audio_codec
        if fallback and fallback != "none":
            self._warn(f"{fmt_name} cannot hold {wanted} audio: using {fallback}")
            return fallback
        raise UsageError(f"{fmt_name} cannot hold {wanted} audio (use --no-audio)")

    def _copy_metadata(self) -> None:
        for key, value in self.info.metadata.items():
            if key.lower() not in _TECHNICAL_TAGS:
                self.out.metadata[key] = value

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    # -- writing -----------------------------------------------------------------------------
    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encode one frame (any pixel format) at its own PTS."""
        if frame.format.name != self.pixel_format or (frame.width, frame.height) != (
            self.fmt.width, self.fmt.height
        ):
            kwargs: dict[str, Any] = {}
            if frame.format.name.startswith(("rgb", "bgr", "gbr")):
                if self._colorspace is not None:
                    kwargs["dst_colorspace"] = self._colorspace
                if self._color_range is not None:
                    kwargs["dst_color_range"] = self._color_range
            frame = reformat(frame, width=self.fmt.width, height=self.fmt.height,
                             format=self.pixel_format, **kwargs)
        pts = frame.pts
        if pts is not None and self._shift:
            pts = pts - int(round(self._shift / self.time_base))
            frame.pts = pts
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders reject repeated timestamps
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
            self._pump(float(pts * self.time_base))

    def write_batch(self, batch: FrameBatch) -> None:
        av_format = "rgb48le" if batch.pixel_format == "rgb48" else "rgb24"
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

    def _pump(self, until: float | None) -> None:
        """Copy side-stream packets up to ``until`` seconds (None: all that remain)."""
        if self._side_input is None or self._side_packets is None:
            return
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._side_packets)
                except StopIteration:
                    self._side_packets = None
                    return
                except av.error.FFmpegError as exc:
                    self._warn(f"side streams stopped early: {exc}")
                    self._side_packets = None
                    return
            packet = self._pending
            stamp = packet.pts if packet.pts is not None else packet.dts
            when = None
            if stamp is not None and packet.time_base is not None:
                when = float(stamp * packet.time_base)
                if until is not None and when > until + self._shift + 0.5:
                    return
            self._pending = None
            if when is not None and (
                (self._cut_start is not None and when < self._cut_start)
                or (self._cut_end is not None and when >= self._cut_end)
            ):
                continue  # outside the requested time range
            if self._shift and packet.time_base is not None:
                delta = int(round(self._shift / packet.time_base))
                if packet.pts is not None:
                    packet.pts -= delta
                if packet.dts is not None:
                    packet.dts -= delta
            self._mux_side(packet)

    def _mux_side(self, packet: Any) -> None:
        index = packet.stream.index
        if index in self._copies:
            if packet.size == 0:  # flush packets are not data
                return
            packet.stream = self._copies[index]
            self.out.mux(packet)
            return
        if index in self._subtitles:
            self._mux_subtitle(packet, self._subtitles[index])
            return
        enc, resampler = self._encoders[index]
        try:
            frames = packet.decode() if packet.size else packet.stream.decode(None)
        except av.error.FFmpegError as exc:
            self._warn(f"audio packet at {packet.pts} could not be decoded: {exc}")
            return
        for frame in frames:
            if resampler is None:
                fmt = enc.codec_context.codec.audio_formats[0].name
                resampler = av.AudioResampler(format=fmt, layout=enc.layout.name,
                                              rate=enc.sample_rate)
                self._encoders[index] = (enc, resampler)
            for out_frame in resampler.resample(frame):
                self.out.mux(enc.encode(out_frame))

    def _mux_subtitle(self, packet: Any, stream: Any) -> None:
        if packet.size == 0 or packet.pts is None or packet.time_base is None:
            return
        try:
            subtitle = packet.stream.codec_context.decode2(packet)
            if subtitle is None:
                return
            out = stream.codec_context.encode_subtitle(subtitle)
        except av.error.FFmpegError as exc:
            self._warn(f"subtitle at {float(packet.pts * packet.time_base):.3f} s could not be "
                       f"converted: {exc}")
            return
        ms = Fraction(1, 1000)
        out.stream, out.time_base = stream, ms
        out.pts = out.dts = int(round(packet.pts * packet.time_base / ms))
        if packet.duration:
            out.duration = int(round(packet.duration * packet.time_base / ms))
        self.out.mux(out)

    def close(self) -> None:
        """Flush the encoders, copy remaining side packets and finish the file."""
        self._mux_video(self.stream.encode(None))
        self._pump(None)
        for enc, resampler in self._encoders.values():
            if resampler is not None:
                for out_frame in resampler.resample(None):
                    self.out.mux(enc.encode(out_frame))
            self.out.mux(enc.encode(None))
        if self._side_input is not None:
            self._side_input.close()
        self.out.close()

    def abort(self) -> None:
        for container in (self._side_input, getattr(self, "out", None)):
            if container is not None:
                try:
                    container.close()
                except Exception:  # closing a broken muxer must not hide the real error
                    pass


_IMAGE_CODECS = {"png": ("png", None), "tif": ("tiff", None), "tiff": ("tiff", None),
                 "jpg": ("mjpeg", "yuvj444p"), "jpeg": ("mjpeg", "yuvj444p"),
                 "bmp": ("bmp", "bgr24"), "webp": ("libwebp", "yuv420p")}


class ImageSequenceWriter:
    """Writes each frame as an image file: ``%06d`` numbered from 1 (PNG keeps 16-bit)."""

    def __init__(self, target: OutputTarget, config: EncoderConfig, fmt: FrameFormat,
                 source: Source, info: MediaInfo, **_: Any) -> None:
        self.pattern = target.path
        self.fmt = fmt
        self.warnings: list[str] = []
        self.frames_written = 0
        self.audio_mode = "dropped" if info.audio else "none"
        self.subtitle_mode = "dropped" if info.subtitles else "none"
        self.pixel_format = fmt.pixel_format
        if info.audio:
            self.warnings.append("image sequences carry no audio: audio not written")
            log.warning(self.warnings[-1])

    def write_frame(self, frame: av.VideoFrame) -> None:
        fmt = "rgb48" if frame.format.name.endswith(("10le", "12le", "16le", "48le")) else "rgb24"
        av_fmt = "rgb48le" if fmt == "rgb48" else "rgb24"
        image = frame.to_ndarray(format=av_fmt)
        self._save(image)

    def write_batch(self, batch: FrameBatch) -> None:
        for image in batch.images:
            self._save(image)

    def _save(self, image: np.ndarray) -> None:
        self.frames_written += 1
        path = Path(str(self.pattern) % self.frames_written)
        ext = path.suffix.lower().lstrip(".")
        codec_name, pix_fmt = _IMAGE_CODECS.get(ext, ("png", None))
        deep = image.dtype == np.uint16
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image),
                                           format="rgb48le" if deep else "rgb24")
        if pix_fmt is None:
            pix_fmt = "rgb48be" if deep else "rgb24"
        codec = av.CodecContext.create(codec_name, "w")
        codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, pix_fmt
        codec.time_base = Fraction(1, 25)
        frame = reformat(frame, format=pix_fmt)
        try:
            data = b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])
            path.write_bytes(data)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write image {path}: {exc}") from exc

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def open_container_writer(target: OutputTarget, config: EncoderConfig, fmt: FrameFormat,
                          source: Source, info: MediaInfo, **kwargs: Any) -> ContainerWriter:
    return ContainerWriter(target, config, fmt, source, info, **kwargs)


def open_image_writer(target: OutputTarget, config: EncoderConfig, fmt: FrameFormat,
                      source: Source, info: MediaInfo, **kwargs: Any) -> ImageSequenceWriter:
    return ImageSequenceWriter(target, config, fmt, source, info, **kwargs)
