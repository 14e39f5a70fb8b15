"""Opening a source for reading, with the registered decoders as a fallback chain."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import av

from vt.errors import InputError, UnreadableInputError, UsageError, VtError
from vt.lazy import lazy_module
from vt.media.color import ColorTags, resolve_colors
from vt.media.frames import LAYOUT_DTYPES, FrameBatch
from vt.media.info import MediaInfo
from vt.media.source import Source
from vt.registry import DecoderInfo

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("vt")
T = TypeVar("T")


class VideoReader:
    """An open source. Iterate ``frames()`` for every frame (in the source's time range) or
    ``frames_at(indices)`` for chosen ones; both yield ``FrameBatch``es in decode order and
    never hold more than one batch of converted frames."""

    decoder_name = "?"
    info: MediaInfo
    source: Source
    #: the YUV->RGB matrix assumed for a source without one (None: BT.709 from 720 lines up,
    #: BT.601 below, as players do; see ``vt.media.color``)
    untagged_matrix: str | None = None

    @property
    def colors(self) -> ColorTags:
        """The colour tags this reader's RGB frames were converted with, none left unset:
        the output is encoded back with them and carries them."""
        video = self.info.video
        return resolve_colors(
            video.color_codes,
            video.height,
            untagged=self.untagged_matrix,
            full_range=(video.pixel_format or "").startswith("yuvj"),
        )

    def frames(
        self,
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        batch_size: int = 1,
        interpolation: str = "bicubic",
    ) -> Iterator[FrameBatch]:
        raise NotImplementedError

    def frames_at(
        self,
        indices: Iterable[int],
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        interpolation: str = "bicubic",
        batch_size: int = 1,
    ) -> Iterator[FrameBatch]:
        """Frames at the given source indices (0-based, whole video), in ascending order,
        decoding and converting as little as the backend allows."""
        raise NotImplementedError

    def reopen_full(self) -> VideoReader:
        raise NotImplementedError

    def keyframes(self) -> list[int]:
        """Source indices (presentation order, whole video) of the keyframes, read from
        packet flags without decoding. Every built-in backend reads FFmpeg-readable files, so
        the default scans them with PyAV; a source PyAV cannot demux is an ``InputError``."""
        from vt.media.info import open_container, scan_packets

        if self.source.kind == "frames":
            raise InputError(
                f"the {self.decoder_name} decoder cannot list the keyframes of "
                f"{self.source.describe()}"
            )
        try:
            with open_container(self.source) as container:
                vs = container.streams[self.info.video.index]
                return keyframe_indices(*scan_packets(container, vs))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read keyframes of {self.source.describe()}: {exc}") from None

    def native_timing(self) -> tuple[int | None, float | None]:
        """(frame count, average fps) as this backend reports them. Samplers that must match
        a reference tool use the backend's own numbers, which can differ in the last digits."""
        video = self.info.video
        return video.frame_count, float(video.fps) if video.fps else None

    def close(self) -> None:
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resize_rgb(
    image: np.ndarray, size: tuple[int, int] | None, interpolation: str = "bicubic"
) -> np.ndarray:
    """Resize an (H, W, 3) array to ``size`` = (width, height) with OpenCV."""
    if size is None or (image.shape[1], image.shape[0]) == tuple(size):
        return image
    import cv2

    flags = {
        "area": cv2.INTER_AREA,
        "bilinear": cv2.INTER_LINEAR,
        "bicubic": cv2.INTER_CUBIC,
        "lanczos": cv2.INTER_LANCZOS4,
        "nearest": cv2.INTER_NEAREST,
    }
    if interpolation not in flags:
        raise UsageError(f"unknown interpolation {interpolation!r}")
    return cv2.resize(image, tuple(int(v) for v in size), interpolation=flags[interpolation])


def keyframe_indices(pts: Sequence[int | None], key_pts: Sequence[int]) -> list[int]:
    """Presentation-order indices of ``key_pts`` among the packet timestamps ``pts``
    (packets without a timestamp are left out)."""
    order = {p: i for i, p in enumerate(sorted(p for p in pts if p is not None))}
    return sorted(order[p] for p in key_pts if p in order)


def check_layout(layout: str) -> None:
    if layout not in LAYOUT_DTYPES:
        raise UsageError(f"frame layout {layout!r} not supported (use {', '.join(LAYOUT_DTYPES)})")


def to_time_base(seconds: float, time_base: Fraction) -> int:
    return int(round(Fraction(seconds).limit_denominator(1 << 30) / time_base))


def decoder_priority(priority: Sequence[str] | None = None) -> list[str] | None:
    """The user's decoder order: the argument, else ``VT_DECODER_PRIORITY`` (comma list)."""
    if priority:
        return list(priority)
    env = os.environ.get("VT_DECODER_PRIORITY", "").strip()
    return [p.strip() for p in env.split(",") if p.strip()] or None


def open_video(
    source: Source | str | os.PathLike[str] | bytes,
    *,
    decoder: str | None = None,
    priority: Sequence[str] | None = None,
    threads: int = 0,
    options: dict[str, Any] | None = None,
    try_all: bool | None = None,
) -> VideoReader:
    """Open ``source`` with ``decoder``, or with the first decoder of the chain that can.

    The chain (``decoder_chain``) is the registered decoders ordered by ``priority`` (names;
    default ``VT_DECODER_PRIORITY`` or each decoder's own priority), with the
    ``choose_decoder`` hook's pick first. A decoder that is missing or fails on this source
    passes to the next, except when FFmpeg cannot open the container at all: then the others
    (FFmpeg-based too, and far heavier to start) are tried only with ``try_all`` — by default,
    when the user set ``VT_DECODER_PRIORITY``. ``options`` go to the decoder
    (``error_policy``; ``untagged_matrix`` for the PyAV decoder).
    """
    from vt.plugins import get_host

    src = source if isinstance(source, Source) else Source.parse(source)
    kwargs = {"threads": threads, **(options or {})}
    if decoder:
        info = get_host().decoders.get(decoder)
        if src.kind not in info.sources:
            raise UsageError(f"decoder {info.name!r} cannot read {src.kind} sources")
        reason = info.available()
        if reason:
            raise UsageError(f"decoder {info.name!r} is not available: {reason}")
        reader: VideoReader = info.open(src, **kwargs)
        return reader
    return _open_first(src, decoder_chain(src, priority), kwargs, try_all)[1]


def decoder_chain(source: Source, priority: Sequence[str] | None = None) -> list[DecoderInfo]:
    """The decoders that read ``source``'s kind, in the order ``open_video`` tries them."""
    from vt.plugins import get_host

    host = get_host()
    candidates = [info for info in host.decoders.items() if source.kind in info.sources]
    order = decoder_priority(priority)
    if order:
        rank = {name: i for i, name in enumerate(order)}
        candidates = [c for c in candidates if c.name in rank]
        candidates.sort(key=lambda c: rank[c.name])
    else:
        candidates.sort(key=lambda c: (c.priority, c.name))
    if not candidates:
        raise UsageError(f"no decoder can read {source.kind} sources (priority: {order})")
    first = host.call_first("choose_decoder", source=source, candidates=candidates)
    chain: list[DecoderInfo] = [first] if first else []
    return chain + [c for c in candidates if c is not first]


def _open_first(
    src: Source, chain: Sequence[DecoderInfo], kwargs: dict[str, Any], try_all: bool | None
) -> tuple[DecoderInfo, VideoReader]:
    """The first decoder in ``chain`` that is available and opens ``src``, and its reader."""
    errors: list[str] = []
    first_error: InputError | None = None
    for info in chain:
        reason = info.available()
        if reason:
            log.debug("decoder %s unavailable: %s", info.name, reason)
            continue
        try:
            reader = info.open(src, **kwargs)
        except InputError as exc:
            if isinstance(exc, UnreadableInputError) and not (
                try_all if try_all is not None else "VT_DECODER_PRIORITY" in os.environ
            ):
                raise
            first_error = first_error or exc
            errors.append(info.name)
            log.debug("decoder %s failed on %s: %s", info.name, src.describe(), exc)
            continue
        if errors:
            log.warning(
                "decoded %s with %s after %s failed", src.describe(), info.name, ", ".join(errors)
            )
        return info, reader
    if first_error is None:
        raise InputError(f"no decoder available for {src.describe()}")
    also = f" (also tried: {', '.join(errors[1:])})" if len(errors) > 1 else ""
    raise InputError(f"{first_error}{also}")


def with_fallback(
    source: Source | str | os.PathLike[str] | bytes,
    work: Callable[[VideoReader], T],
    *,
    priority: Sequence[str] | None = None,
    threads: int = 0,
    options: dict[str, Any] | None = None,
    try_all: bool | None = None,
    describe: str | None = None,
) -> T:
    """``work(reader)`` with the first decoder of the chain that opens ``source``; when it
    fails while decoding, again with the next decoder of the chain, and so on.

    Opening falls back as in ``open_video``. A decoding failure is an ``InputError`` or any
    exception that is not vt's own (a backend's crash); other ``VtError``s (usage, output)
    are the caller's and pass through. Each failure is a warning naming the next decoder;
    when none is left, an ``InputError`` with the first failure's reason. ``describe`` names
    the input in those messages (default: the source's own description). Each reader is
    closed when its ``work`` ends.
    """
    src = source if isinstance(source, Source) else Source.parse(source)
    what = describe or src.describe()
    kwargs = {"threads": threads, **(options or {})}
    chain = decoder_chain(src, priority)
    failed: set[str] = set()
    first_error: Exception | None = None
    while True:
        info, reader = _open_first(src, [c for c in chain if c.name not in failed], kwargs, try_all)
        try:
            return work(reader)
        except Exception as exc:  # noqa: BLE001 - a backend's failure: try the next decoder
            if isinstance(exc, VtError) and not isinstance(exc, InputError):
                raise
            first_error = first_error or exc
            failed.add(info.name)
            remaining = [c.name for c in chain if c.name not in failed]
            log.warning(
                "decoder %s failed on %s (%s)%s",
                reader.decoder_name,
                what,
                _first_line(exc),
                f"; trying {remaining[0]}" if remaining else "",
            )
            if not remaining:
                raise InputError(f"cannot decode {what}: {_first_line(first_error)}") from None
        finally:
            reader.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def source_path(source: Source) -> str | Path | bytes:
    """What third-party decoders take: a path string, or the raw bytes."""
    if source.kind == "file":
        return str(source.path)
    if source.kind == "bytes":
        return source.data or b""
    raise InputError("image sequences need the images decoder")
