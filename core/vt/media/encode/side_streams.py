"""Side streams: the source's audio, subtitles and attachments muxed beside the encoded
video. Packets are read from a second demuxer and muxed as the video reaches their time, so
interleaving is good and memory stays bounded. Audio the container cannot hold is
re-encoded; text subtitles it cannot hold are converted to its own text codec; bitmap ones,
data streams and extra video streams are reported."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, cast

import av

from vt.errors import UsageError
from vt.media.encode.config import EncoderConfig, parse_bitrate
from vt.media.info import MediaInfo, open_container
from vt.media.source import Source


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


class SideStreams:
    """The side streams of ``source`` (described by ``info``) in the output container ``out``.

    Generated video has no source description (``info`` None): then ``source`` is a file
    whose audio, and nothing else, is muxed in. ``cut_start``/``cut_end`` (seconds in the
    source) select the range every stream is cut to; ``shift`` moves what is kept to start at
    zero; ``lookahead`` is how far (seconds) side packets may run ahead of the video. Every
    warning goes to ``warn``. ``audio_mode`` and ``subtitle_mode`` say what was done.
    """

    def __init__(
        self,
        out: Any,
        config: EncoderConfig,
        source: Source | None,
        info: MediaInfo | None,
        *,
        audio: bool,
        subtitles: bool,
        cut_start: float | None,
        cut_end: float | None,
        shift: float,
        lookahead: float,
        warn: Callable[[str], None],
    ) -> None:
        self.out = out
        self.config = config
        self.info = info
        self.warn = warn
        self.audio_mode = "none"
        self.subtitle_mode = "none"
        self.cut_start, self.cut_end = cut_start, cut_end
        self.shift, self.lookahead = shift, lookahead
        self._input: av.container.InputContainer | None = None
        self._packets: Iterator[Any] | None = None
        self._pending: Any = None
        self._copies: dict[int, Any] = {}  # input stream index -> output stream (copied)
        self._subtitles: dict[int, Any] = {}  # index -> output stream (text re-encoded)
        self._encoders: dict[int, tuple[Any, Any]] = {}  # index -> (encoder, resampler)
        try:
            self._setup(source, audio, subtitles)
        except BaseException:
            self.close()
            raise

    def _setup(self, source: Source | None, audio: bool, subtitles: bool) -> None:
        if source is None or source.kind == "frames":
            return
        if self.info is None:  # generated video: the audio of ``source``, nothing else
            self._input = open_container(source)
            wanted_audio = [s.index for s in self._input.streams.audio] if audio else []
            if not wanted_audio:
                self._input.close()
                self._input = None
                raise UsageError(f"{source.describe()} has no audio stream to add")
            wanted_subs: list[int] = []
        else:
            wanted_audio = [a.index for a in self.info.audio] if audio else []
            if self.info.audio and not audio:
                self.audio_mode = "dropped"
            wanted_subs = [s.index for s in self.info.subtitles] if subtitles else []
            if self.info.subtitles and not subtitles:
                self.subtitle_mode = "dropped"
            if not (
                wanted_audio
                or wanted_subs
                or self.info.attachments
                or self.info.data
                or self.info.extra_video
            ):
                return
            self._input = open_container(source)
        fmt_name = self.out.format.name.split(",")[0]
        streams = {s.index: s for s in self._input.streams}
        for index in wanted_audio:
            template = streams[index]
            if _can_mux(fmt_name, template):
                self._copies[index] = self.out.add_stream_from_template(template)
                self.audio_mode = "copied"
            else:
                ctx = cast(av.AudioCodecContext, template.codec_context)
                codec = self._audio_codec_for(fmt_name)
                enc = self.out.add_stream(
                    codec, rate=ctx.sample_rate, layout=ctx.layout.name if ctx.layout else "stereo"
                )
                enc.bit_rate = parse_bitrate(self.config.audio_bitrate)
                self._encoders[index] = (enc, None)
                self.audio_mode = "re-encoded"
                self.warn(
                    f"audio stream {index} ({ctx.name}) cannot go into "
                    f"{self.out.format.name}: re-encoded to {codec} "
                    f"{self.config.audio_bitrate}"
                )
        for index in wanted_subs:
            template = streams[index]
            codec_name = template.codec_context.name if template.codec_context else None
            if _can_mux(fmt_name, template):
                self._copies[index] = self.out.add_stream_from_template(template)
                self.subtitle_mode = "copied"
            elif (converted := self._text_subtitle_stream(template)) is not None:
                self._subtitles[index] = converted
                if self.subtitle_mode != "copied":
                    self.subtitle_mode = "converted"
                self.warn(
                    f"subtitle stream {index} ({codec_name}) cannot go into "
                    f"{self.out.format.name} as it is: converted to "
                    f"{converted.codec_context.name}"
                )
            else:
                if self.subtitle_mode == "none":
                    self.subtitle_mode = "dropped"
                self.warn(
                    f"subtitle stream {index} ({codec_name}) cannot go into "
                    f"{self.out.format.name}: not copied (use .mkv to keep it)"
                )
        if self.info is not None:
            self._report_unmuxed(streams, fmt_name)
        side = [streams[i] for i in (*self._copies, *self._subtitles, *self._encoders)]
        if side and self.cut_start:
            self._input.seek(int(self.cut_start * av.time_base), backward=True)
        self._packets = self._input.demux(*side) if side else None
        if not side:
            self._input.close()
            self._input = None

    def _report_unmuxed(self, streams: dict[int, Any], fmt_name: str) -> None:
        """Attachments go into Matroska; every other stream vt does not carry is reported."""
        assert self.info is not None
        for att in self.info.attachments:
            template = streams[att.index]
            if fmt_name == "matroska":
                name = att.metadata.get("filename", f"attachment{att.index}")
                mimetype = att.metadata.get("mimetype", "application/octet-stream")
                self.out.add_attachment(name, mimetype, template.data)
            else:
                self.warn(
                    f"attachment {att.index} cannot go into {self.out.format.name}: "
                    "not copied (use .mkv to keep it)"
                )
        for data in self.info.data:
            self.warn(f"data stream {data.index} ({data.codec}) not copied")
        for extra in self.info.extra_video:
            self.warn(
                f"extra video stream {extra.index} ({extra.codec}) not copied: vt "
                "processes the main video stream"
            )

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
        fallback: str | None = self.out.default_audio_codec
        if fallback and fallback != "none":
            self.warn(f"{fmt_name} cannot hold {wanted} audio: using {fallback}")
            return fallback
        raise UsageError(f"{fmt_name} cannot hold {wanted} audio (use --no-audio)")

    def pump(self, until: float | None) -> None:
        """Copy side-stream packets up to ``until`` seconds (None: all that remain)."""
        if self._input is None or self._packets is None:
            return
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._packets)
                except StopIteration:
                    self._packets = None
                    return
                except av.error.FFmpegError as exc:
                    self.warn(f"side streams stopped early: {exc}")
                    self._packets = None
                    return
            packet = self._pending
            stamp = packet.pts if packet.pts is not None else packet.dts
            when = None
            if stamp is not None and packet.time_base is not None:
                when = float(stamp * packet.time_base)
                if until is not None and when > until + self.shift + self.lookahead:
                    return
            self._pending = None
            if when is not None and (
                (self.cut_start is not None and when < self.cut_start)
                or (self.cut_end is not None and when >= self.cut_end)
            ):
                continue  # outside the requested time range
            if self.shift and packet.time_base is not None:
                delta = int(round(self.shift / packet.time_base))
                if packet.pts is not None:
                    packet.pts -= delta
                if packet.dts is not None:
                    packet.dts -= delta
            self._mux(packet)

    def _mux(self, packet: Any) -> None:
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
            self.warn(f"audio packet at {packet.pts} could not be decoded: {exc}")
            return
        for frame in frames:
            if resampler is None:
                fmt = enc.codec_context.codec.audio_formats[0].name
                resampler = av.AudioResampler(
                    format=fmt, layout=enc.layout.name, rate=enc.sample_rate
                )
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
            self.warn(
                f"subtitle at {float(packet.pts * packet.time_base):.3f} s could not be "
                f"converted: {exc}"
            )
            return
        ms = Fraction(1, 1000)
        out.stream, out.time_base = stream, ms
        out.pts = out.dts = int(round(packet.pts * packet.time_base / ms))
        if packet.duration:
            out.duration = int(round(packet.duration * packet.time_base / ms))
        self.out.mux(out)

    def finish(self) -> None:
        """Mux every remaining packet (up to ``cut_end``), flush the audio encoders and close
        the second demuxer."""
        self.pump(None)
        for enc, resampler in self._encoders.values():
            if resampler is not None:
                for out_frame in resampler.resample(None):
                    self.out.mux(enc.encode(out_frame))
            self.out.mux(enc.encode(None))
        self.close()

    def close(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None
