"""The default decoder: PyAV (FFmpeg) with threaded decoding and accurate seeking."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np

from vt.errors import InputError
from vt.media.decode import VideoReader, check_pixel_format, to_time_base
from vt.media.frames import FrameBatch
from vt.media.info import (
    main_video_stream,
    open_container,
    peek_first_frame,
    probe_container,
)
from vt.media.source import Source

log = logging.getLogger("vt")

_AV_FORMATS = {"rgb24": "rgb24", "rgb48": "rgb48le"}
_SWS = {"area": "AREA", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS",
        "nearest": "POINT"}


class PyAVReader(VideoReader):
    decoder_name = "pyav"

    def __init__(self, source: Source, threads: int = 0, count_frames: bool = True,
                 error_policy: str = "abort") -> None:
        self.source = source
        self.threads = threads
        self.error_policy = error_policy
        self.container = open_container(source)
        vs = main_video_stream(self.container)
        if vs is not None and vs.codec_context is not None:
            vs.thread_type = "AUTO"  # frame + slice threads; must be set before decoding
            vs.thread_count = threads
        try:
            first = peek_first_frame(self.container)
            self.info = probe_container(
                self.container, source, count_frames=count_frames, first_frame=first
            )
        except BaseException:
            self.container.close()
            raise
        if first is None:
            self.container.close()
            raise InputError(f"no decodable video frames in {source.describe()}")
        self.stream = self.container.streams[self.info.video.index]
        #: packets the decoder rejected (corrupt data); the pipeline reports them
        self.decode_errors = 0

    def reopen_full(self) -> PyAVReader:
        from dataclasses import replace

        return PyAVReader(replace(self.source, start=None, end=None), self.threads,
                          error_policy=self.error_policy)

    # -- frames ------------------------------------------------------------------------------
    def av_frames(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """(source index, frame) for every frame in the source's time range, in PTS order."""
        vs = self.stream
        tb = vs.time_base or Fraction(1, 1)
        video = self.info.video
        start_pts = end_pts = None
        origin = vs.start_time or 0
        if self.source.start:
            start_pts = origin + to_time_base(self.source.start, tb)
        self._seek(start_pts if start_pts is not None else origin)
        if self.source.end is not None:
            end_pts = origin + to_time_base(self.source.end, tb)
        fps = video.fps or Fraction(25)
        counter = 0
        step = max(int(round(1 / (fps * tb))), 1) if tb else 1
        for frame in self._decode():
            pts = frame.pts
            if pts is None:  # raw streams without timestamps: synthesise CFR ones
                pts = origin + counter * step
                frame.pts = pts
            if start_pts is not None and pts < start_pts:
                continue
            if end_pts is not None and pts >= end_pts:
                break
            if start_pts is None:
                index = counter
            else:
                index = int(round(float((pts - origin) * tb * fps)))
            counter += 1
            yield index, frame

    def _seek(self, pts: int) -> None:
        try:
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            if pts:  # rewinding a stream that cannot seek is harmless at its start
                raise InputError(f"cannot seek in {self.source.describe()}: {exc}") from exc

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decode packet by packet so one corrupt packet need not end the stream."""
        vs = self.stream
        packets = self.container.demux(vs)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:  # damaged container structure
                self._corrupt(None, exc)
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self._corrupt(packet, exc)
                continue
            yield from frames

    def _corrupt(self, packet: av.Packet | None, exc: av.error.FFmpegError) -> None:
        self.decode_errors += 1
        where = "at the end"
        if packet is not None and packet.pts is not None and packet.time_base is not None:
            where = f"at {float(packet.pts * packet.time_base):.3f} s"
        message = f"corrupt video data {where} in {self.source.describe()}: " \
                  f"{getattr(exc, 'strerror', None) or exc}"
        if self.error_policy == "abort":
            raise InputError(message + " (--on-frame-error pass decodes what it can)")
        log.warning("%s: skipped", message)

    def frames(
        self,
        *,
        size: tuple[int, int] | None = None,
        pixel_format: str = "rgb24",
        batch_size: int = 1,
        interpolation: str = "bicubic",
    ) -> Iterator[FrameBatch]:
        check_pixel_format(pixel_format)
        tb = self.stream.time_base or Fraction(1, 1)
        images: list[np.ndarray] = []
        pts: list[int | None] = []
        indices: list[int] = []
        for index, frame in self.av_frames():
            images.append(frame_to_array(frame, pixel_format, size, interpolation))
            pts.append(frame.pts)
            indices.append(index)
            if len(images) >= batch_size:
                yield FrameBatch(np.stack(images), pts, tb, indices, pixel_format)
                images, pts, indices = [], [], []
        if images:
            yield FrameBatch(np.stack(images), pts, tb, indices, pixel_format)

    def close(self) -> None:
        self.container.close()


def frame_to_array(
    frame: av.VideoFrame,
    pixel_format: str = "rgb24",
    size: tuple[int, int] | None = None,
    interpolation: str = "bicubic",
) -> np.ndarray:
    """RGB array of a decoded frame, scaled in libswscale when ``size`` is given."""
    kwargs: dict[str, Any] = {"format": _AV_FORMATS[pixel_format]}
    if size is not None and (frame.width, frame.height) != tuple(size):
        kwargs.update(width=int(size[0]), height=int(size[1]),
                      interpolation=_SWS.get(interpolation, "BICUBIC"))
    return frame.to_ndarray(**kwargs)


def open_pyav(source: Source, threads: int = 0, error_policy: str = "abort",
              **_: Any) -> PyAVReader:
    return PyAVReader(source, threads=threads, error_policy=error_policy)
