"""Optional decoder backends: torchcodec and decord, used when installed.

Both read the whole-video index up front and return frames by index; metadata beyond what
they report (rotation, colour, streams) comes from a PyAV probe, which is cheap (no decoding).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from vt.errors import InputError
from vt.lazy import lazy_module
from vt.media.decode import VideoReader, check_layout, resize_rgb, source_path
from vt.media.frames import FrameBatch
from vt.media.info import open_container, probe_container
from vt.media.source import Source

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")


@functools.cache
def torchcodec_available() -> str | None:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg libraries)
    except Exception as exc:  # ImportError or a missing system FFmpeg
        return f"torchcodec not usable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None


@functools.cache
def decord_available() -> str | None:
    try:
        import decord  # noqa: F401
    except Exception as exc:
        return f"decord not installed ({type(exc).__name__})"
    return None


def _probe(source: Source) -> Any:
    with open_container(source) as container:
        return probe_container(container, source, count_frames=True)


class _IndexedReader(VideoReader):
    """Shared logic for decoders that fetch frames by index in batches."""

    # they convert to RGB themselves, with FFmpeg's default for an untagged source
    untagged_matrix = "bt601"

    def __init__(self, source: Source) -> None:
        self.source = source
        self.info = _probe(source)
        self.time_base = self.info.video.time_base

    def _count(self) -> int:
        raise NotImplementedError

    def _get(self, indices: list[int]) -> tuple[np.ndarray, list[float]]:
        """(N, H, W, 3) uint8 frames and their PTS in seconds."""
        raise NotImplementedError

    def reopen_full(self) -> VideoReader:
        from dataclasses import replace

        return type(self)(replace(self.source, start=None, end=None))

    def _range(self) -> range:
        total = self._count()
        fps = float(self.info.video.fps or 25)
        first = int(np.ceil((self.source.start or 0) * fps))
        last = total if self.source.end is None else min(total, int(np.ceil(self.source.end * fps)))
        return range(first, last)

    def _batches(
        self,
        indices: Iterable[int],
        size: tuple[int, int] | None,
        layout: str,
        batch_size: int,
        interpolation: str,
    ) -> Iterator[FrameBatch]:
        check_layout(layout)
        if layout != "rgb24":
            raise InputError(f"{self.decoder_name} decodes 8-bit RGB only")
        wanted = list(indices)
        total = self._count()
        if wanted and wanted[-1] >= total:
            raise InputError(
                f"frame {wanted[-1]} requested but {self.source.describe()} has {total} frames"
            )
        for start in range(0, len(wanted), max(batch_size, 1)):
            chunk = wanted[start : start + max(batch_size, 1)]
            images, seconds = self._get(chunk)
            images = np.stack([resize_rgb(im, size, interpolation) for im in images])
            pts: list[int | None] = [round(s / float(self.time_base)) for s in seconds]
            yield FrameBatch(images, pts, self.time_base, chunk, layout)

    def frames(
        self,
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        batch_size: int = 1,
        interpolation: str = "bicubic",
    ) -> Iterator[FrameBatch]:
        # decode in small groups: sequential access is what these decoders do fastest
        return self._batches(self._range(), size, layout, max(batch_size, 8), interpolation)

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
        return self._batches(wanted, size, layout, batch_size, interpolation)


class TorchcodecReader(_IndexedReader):
    decoder_name = "torchcodec"

    def __init__(self, source: Source, threads: int = 0, seek_mode: str = "exact", **_: Any):
        from torchcodec.decoders import VideoDecoder

        super().__init__(source)
        try:
            self.decoder = VideoDecoder(
                source_path(source),
                num_ffmpeg_threads=threads,
                seek_mode=seek_mode,
                dimension_order="NHWC",
            )
        except Exception as exc:
            raise InputError(f"torchcodec cannot open {source.describe()}: {exc}") from exc

    def _count(self) -> int:
        return int(self.decoder.metadata.num_frames or 0)

    def native_timing(self) -> tuple[int | None, float | None]:
        md = self.decoder.metadata
        return (
            int(md.num_frames) if md.num_frames else None,
            float(md.average_fps) if md.average_fps else None,
        )

    def _get(self, indices: list[int]) -> tuple[np.ndarray, list[float]]:
        batch = self.decoder.get_frames_at(indices=indices)
        return batch.data.numpy(), [float(s) for s in batch.pts_seconds]


class DecordReader(_IndexedReader):
    decoder_name = "decord"

    def __init__(self, source: Source, threads: int = 0, **_: Any):
        import decord

        super().__init__(source)
        if source.kind != "file":
            raise InputError("decord reads files only")
        try:
            self.reader = decord.VideoReader(str(source.path), num_threads=threads)
        except Exception as exc:
            raise InputError(f"decord cannot open {source.describe()}: {exc}") from exc

    def _count(self) -> int:
        return len(self.reader)

    def native_timing(self) -> tuple[int | None, float | None]:
        return len(self.reader), float(self.reader.get_avg_fps())

    def _get(self, indices: list[int]) -> tuple[np.ndarray, list[float]]:
        images = self.reader.get_batch(indices).asnumpy()
        stamps = self.reader.get_frame_timestamp(indices)
        return images, [float(s[0]) for s in stamps]


def open_torchcodec(source: Source, threads: int = 0, **kwargs: Any) -> TorchcodecReader:
    return TorchcodecReader(source, threads=threads, **kwargs)


def open_decord(source: Source, threads: int = 0, **kwargs: Any) -> DecordReader:
    return DecordReader(source, threads=threads, **kwargs)
