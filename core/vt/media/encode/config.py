"""Encoder configuration: ``EncoderConfig`` (codec, quality, presets, free ``-e`` options,
checked against the encoder) and the pixel-format policy (the encoder's format closest to
the frames')."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import cast

import av

from vt.errors import UsageError
from vt.media.info import MediaInfo

log = logging.getLogger("vt")

_SVT_PRESETS = {
    "ultrafast": 12,
    "superfast": 11,
    "veryfast": 10,
    "faster": 9,
    "fast": 8,
    "medium": 6,
    "slow": 4,
    "slower": 3,
    "veryslow": 2,
    "placebo": 1,
}
_VPX_SPEED = {
    "ultrafast": 8,
    "superfast": 7,
    "veryfast": 6,
    "faster": 5,
    "fast": 4,
    "medium": 2,
    "slow": 1,
    "slower": 0,
    "veryslow": 0,
    "placebo": 0,
}


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
    threads: int = 0  # encoder threads; 0: the encoder's own choice

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

    def opened(opts: dict[str, str]) -> av.VideoCodecContext:
        cc = cast(av.VideoCodecContext, av.CodecContext.create(codec, "w"))
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
        raise UsageError(
            f"encoder option(s) {_pairs(options)} rejected by {codec.name}: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    if unused:
        raise UsageError(
            f"unknown option(s) for encoder {codec.name}: {_pairs(unused)} "
            f"(see: ffmpeg -h encoder={codec.name})"
        )


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


def choose_pixel_format(
    codec_name: str,
    info: MediaInfo | None,
    requested: str | None,
    size: tuple[int, int] | None = None,
    bit_depth: int = 8,
) -> str:
    """The encoder's format closest to the input's (bit depth, chroma, alpha); 4:4:4 when the
    frames have an odd size that 4:2:0 cannot hold. Without a source (``info`` None, generated
    frames) the frames' ``bit_depth`` decides."""
    if info is not None:
        traits = (info.video.pixel_format, info.video.bit_depth, info.video.has_alpha)
    else:
        traits = (None, bit_depth, False)
    chosen = _closest_pixel_format(codec_name, *traits, requested)
    if requested or size is None or not (size[0] % 2 or size[1] % 2):
        return chosen
    if chosen.startswith(("yuv420", "yuvj420", "nv12", "p010", "yuva420")):
        supported = [f.name for f in (av.Codec(codec_name, "w").video_formats or [])]
        for name in (
            chosen.replace("420", "444"),
            "yuv444p10le" if "10" in chosen else "yuv444p",
            "yuv444p",
            "gbrp",
            "rgb24",
        ):
            if name in supported:
                log.warning(
                    "%dx%d frames cannot be stored as %s: using %s", size[0], size[1], chosen, name
                )
                return name
    return chosen


def _closest_pixel_format(
    codec_name: str,
    source_format: str | None,
    bit_depth: int,
    has_alpha: bool,
    requested: str | None,
) -> str:
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
        return source_format or "yuv420p"
    if (
        source_format is not None
        and source_format in supported
        and not (source_format.startswith(("yuvj", "pal")))
    ):
        return source_format
    if has_alpha:
        for name in _PREFERRED_ALPHA:
            if name in supported:
                return name
    if bit_depth > 8:
        for name in _PREFERRED_10BIT:
            if name in supported:
                return name
    for name in _PREFERRED_8BIT:
        if name in supported:
            return name
    return supported[0]
