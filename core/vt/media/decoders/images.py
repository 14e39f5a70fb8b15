"""Image sequences (a folder or a glob of PNG/JPEG/TIFF…) as a video source."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from vt.errors import InputError
from vt.lazy import lazy_module
from vt.media.decode import VideoReader, check_layout, resize_rgb
from vt.media.frames import FrameBatch
from vt.media.info import MediaInfo, VideoStreamInfo, check_dimensions
from vt.media.source import Source

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("vt")
DEFAULT_SEQUENCE_FPS = Fraction(25)


def _read_image(path: Any) -> np.ndarray:
    """RGB array of an image (uint16 for >8-bit formats), decoded by FFmpeg through PyAV.

    PyAV rather than OpenCV: OpenCV's libpng can clash with the zlib that torchcodec's system
    FFmpeg loads into the same process.
    """
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    deep = max((c.bits for c in frame.format.components), default=8) > 8
    return frame.to_ndarray(format="rgb48le" if deep else "rgb24")


def image_sequence_info(source: Source) -> MediaInfo:
    first = _read_image(source.paths[0])
    height, width = first.shape[:2]
    check_dimensions(width, height, source.describe())
    fps = source.fps or DEFAULT_SEQUENCE_FPS
    count = len(source.paths)
    video = VideoStreamInfo(
        index=0,
        codec="image",
        profile=None,
        width=width,
        height=height,
        pixel_format="rgb48le" if first.dtype == np.uint16 else "rgb24",
        bit_depth=16 if first.dtype == np.uint16 else 8,
        has_alpha=False,
        sample_aspect_ratio=None,
        rotation=0,
        color_range=None,
        color_primaries=None,
        color_trc=None,
        color_space=None,
        color_codes=(0, 2, 2, 2),
        fps=fps,
        real_fps=fps,
        time_base=1 / fps,
        start_time=0.0,
        duration=float(count / fps),
        frame_count=count,
        frame_count_exact=True,
        vfr=False,
        bit_rate=None,
    )
    return MediaInfo(
        source=source.describe(),
        container="image2",
        duration=video.duration,
        bit_rate=None,
        size_bytes=None,
        metadata={},
        video=video,
    )


class ImageSequenceReader(VideoReader):
    decoder_name = "images"

    def __init__(self, source: Source, **_: Any) -> None:
        if source.fps is None:
            log.info("image sequence: assuming %s fps (set --fps to change)", DEFAULT_SEQUENCE_FPS)
        self.source = source
        self.info = image_sequence_info(source)

    def reopen_full(self) -> ImageSequenceReader:
        from dataclasses import replace

        return ImageSequenceReader(replace(self.source, start=None, end=None))

    def keyframes(self) -> list[int]:
        """Every image stands alone: each one is a keyframe."""
        return list(range(len(self.source.paths)))

    def frames(
        self,
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        batch_size: int = 1,
        interpolation: str = "bicubic",
    ) -> Iterator[FrameBatch]:
        fps = self.info.video.fps or DEFAULT_SEQUENCE_FPS
        first = math.ceil((self.source.start or 0) * fps)
        last = len(self.source.paths)
        if self.source.end is not None:
            last = min(last, int(np.ceil(self.source.end * fps)))
        return self._read(range(first, last), size, layout, batch_size, interpolation)

    def frames_at(
        self,
        indices: Iterable[int],
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        interpolation: str = "bicubic",
        batch_size: int = 1,
    ) -> Iterator[FrameBatch]:
        wanted = sorted(set(int(i) for i in indices))
        if wanted and not 0 <= wanted[0] <= wanted[-1] < len(self.source.paths):
            raise InputError(
                f"frame index out of range: the sequence has {len(self.source.paths)} images"
            )
        return self._read(wanted, size, layout, batch_size, interpolation)

    def _read(
        self,
        indices: Iterable[int],
        size: tuple[int, int] | None,
        layout: str,
        batch_size: int,
        interpolation: str,
    ) -> Iterator[FrameBatch]:
        check_layout(layout)
        fps = self.info.video.fps or DEFAULT_SEQUENCE_FPS
        expected = (self.info.video.height, self.info.video.width)
        batch: list[np.ndarray] = []
        taken: list[int] = []
        for i in indices:
            image = _read_image(self.source.paths[i])
            if image.shape[:2] != expected:
                raise InputError(
                    f"{self.source.paths[i].name} is {image.shape[1]}x{image.shape[0]}, "
                    f"the sequence is {expected[1]}x{expected[0]}"
                )
            image = _convert_depth(image, layout)
            batch.append(resize_rgb(image, size, interpolation))
            taken.append(i)
            if len(batch) >= batch_size:
                yield FrameBatch(np.stack(batch), list(taken), 1 / fps, taken, layout)
                batch, taken = [], []
        if batch:
            yield FrameBatch(np.stack(batch), list(taken), 1 / fps, taken, layout)


def _convert_depth(image: np.ndarray, layout: str) -> np.ndarray:
    if layout == "rgb24" and image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if layout == "rgb48" and image.dtype == np.uint8:
        return image.astype(np.uint16) * 257
    return image


def open_images(source: Source, **_: Any) -> ImageSequenceReader:
    return ImageSequenceReader(source)
