"""The image-sequence writer: each frame as one numbered image file (PNG keeps 16-bit)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import av

from vt.errors import OutputError
from vt.lazy import lazy_module
from vt.media.encode.config import EncoderConfig
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import MediaInfo
from vt.media.source import Source
from vt.media.swscale import reformat
from vt.registry import OutputTarget

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("vt")

_IMAGE_CODECS = {
    "png": ("png", None),
    "tif": ("tiff", None),
    "tiff": ("tiff", None),
    "jpg": ("mjpeg", "yuvj444p"),
    "jpeg": ("mjpeg", "yuvj444p"),
    "bmp": ("bmp", "bgr24"),
    "webp": ("libwebp", "yuv420p"),
}


class ImageSequenceWriter:
    """Writes each frame as an image file: ``%06d`` numbered from 1 (PNG keeps 16-bit)."""

    def __init__(
        self,
        target: OutputTarget,
        config: EncoderConfig,
        fmt: FrameFormat,
        source: Source | None,
        info: MediaInfo | None,
        **_: Any,
    ) -> None:
        self.pattern = target.path
        self.fmt = fmt
        self.warnings: list[str] = []
        self.frames_written = 0
        # generated video (no info): ``source`` is the audio the caller wanted muxed in
        has_audio = bool(info.audio) if info is not None else source is not None
        self.audio_mode = "dropped" if has_audio else "none"
        self.subtitle_mode = "dropped" if info is not None and info.subtitles else "none"
        self.pixel_format = fmt.layout
        if has_audio:
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
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image), format="rgb48le" if deep else "rgb24"
        )
        if pix_fmt is None:
            pix_fmt = "rgb48be" if deep else "rgb24"
        codec = cast(av.VideoCodecContext, av.CodecContext.create(codec_name, "w"))
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


def open_image_writer(
    target: OutputTarget,
    config: EncoderConfig,
    fmt: FrameFormat,
    source: Source | None,
    info: MediaInfo | None,
    **kwargs: Any,
) -> ImageSequenceWriter:
    return ImageSequenceWriter(target, config, fmt, source, info, **kwargs)
