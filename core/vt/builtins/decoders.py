"""Built-in decoders and the core's default decoder choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vt.hookspecs import hookimpl
from vt.media.decoders.images import open_images
from vt.media.decoders.optional_readers import (
    decord_available,
    open_decord,
    open_torchcodec,
    torchcodec_available,
)
from vt.media.decoders.pyav_reader import open_pyav
from vt.media.source import Source
from vt.registry import DecoderInfo


@hookimpl
def register_decoders(register: Callable[[DecoderInfo], None]) -> None:
    register(
        DecoderInfo(
            name="pyav",
            open=open_pyav,
            priority=10,
            sources=("file", "bytes"),
            layouts=("rgb24", "rgb48"),
            description="FFmpeg through PyAV: every container, threaded, exact timestamps",
        )
    )
    register(
        DecoderInfo(
            name="torchcodec",
            open=open_torchcodec,
            priority=20,
            sources=("file", "bytes"),
            available=torchcodec_available,
            description="torchcodec (needs system FFmpeg libraries); fast indexed access",
        )
    )
    register(
        DecoderInfo(
            name="decord",
            open=open_decord,
            priority=30,
            sources=("file",),
            available=decord_available,
            description="decord; fast batched random access (unmaintained)",
        )
    )
    register(
        DecoderInfo(
            name="images",
            open=open_images,
            priority=10,
            sources=("frames",),
            layouts=("rgb24", "rgb48"),
            description="image sequences: a folder, a glob or a %06d pattern",
        )
    )


@hookimpl(trylast=True)
def choose_decoder(source: Source, candidates: Sequence[DecoderInfo]) -> DecoderInfo | None:
    """The first available candidate in priority order."""
    for info in candidates:
        if info.available() is None:
            return info
    return None
