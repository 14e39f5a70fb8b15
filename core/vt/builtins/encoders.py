"""Built-in encoders: video containers through PyAV, and image sequences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vt.hookspecs import hookimpl
from vt.media.encode import CONTAINER_EXTENSIONS, open_container_writer, open_image_writer
from vt.registry import EncoderInfo, OutputTarget


@hookimpl
def register_encoders(register: Callable[[EncoderInfo], None]) -> None:
    register(
        EncoderInfo(
            name="pyav",
            open=open_container_writer,
            targets=("container",),
            extensions=CONTAINER_EXTENSIONS,
            codecs=("libx264", "libx265", "libvpx-vp9", "libsvtav1", "ffv1", "prores_ks", "…"),
            description="FFmpeg encoders and muxers through PyAV; copies audio/subtitles",
        )
    )
    register(
        EncoderInfo(
            name="images",
            open=open_image_writer,
            targets=("images",),
            codecs=("png", "jpg", "tiff", "bmp", "webp"),
            description="image sequences: OUT/%06d.png or a folder",
        )
    )


@hookimpl(trylast=True)
def choose_encoder(target: OutputTarget, candidates: Sequence[EncoderInfo]) -> EncoderInfo | None:
    for info in candidates:
        if info.accepts(target) and info.available() is None:
            return info
    return None
