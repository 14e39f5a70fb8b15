"""The default decoder: PyAV (FFmpeg) with threaded decoding and accurate seeking."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

import av

from vt.errors import InputError
from vt.lazy import lazy_module
from vt.media.decode import VideoReader, check_layout, keyframe_indices, to_time_base
from vt.media.frames import FrameBatch
from vt.media.info import (
    MediaInfo,
    count_packets,
    main_video_stream,
    open_container,
    peek_first_frame,
    probe_container,
    rewind,
    scan_packets,
)
from vt.media.source import Source
from vt.media.swscale import reformat

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("vt")

_AV_FORMATS = {"rgb24": "rgb24", "rgb48": "rgb48le"}
_SWS = {
    "area": "AREA",
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "nearest": "POINT",
}


class PyAVReader(VideoReader):
    decoder_name = "pyav"

    def __init__(
        self,
        source: Source,
        threads: int = 0,
        count_frames: bool = False,
        error_policy: str = "abort",
        untagged_matrix: str | None = None,
        known: MediaInfo | None = None,
    ) -> None:
        """``known``: what a probe of this very file found (a segment of a run that probed it):
        its first frame is not decoded again for the rotation, nor checked for."""
        self.source = source
        self.threads = threads
        self.error_policy = error_policy
        self.untagged_matrix = untagged_matrix
        self.container = open_container(source)
        vs = main_video_stream(self.container)
        if vs is not None and vs.codec_context is not None:
            vs.thread_type = "AUTO"  # frame + slice threads; must be set before decoding
            vs.thread_count = threads
        try:
            first = peek_first_frame(self.container) if known is None else None
            self.info = probe_container(
                self.container,
                source,
                count_frames=count_frames,
                first_frame=first,
                rotation=known.video.rotation if known is not None else None,
            )
        except BaseException:
            self.container.close()
            raise
        if first is None and known is None:
            self.container.close()
            raise InputError(f"no decodable video frames in {source.describe()}")
        self.stream = cast(av.VideoStream, self.container.streams[self.info.video.index])
        #: packets the decoder rejected (corrupt data); the pipeline reports them
        self.decode_errors = 0
        self._scan: tuple[list[int | None], list[int]] | None = None  # see _packets
        #: the matrix every YUV->RGB conversion uses (the source's, or the player rule's)
        self.sws_colorspace = self.colors.sws_colorspace

    def native_timing(self) -> tuple[int | None, float | None]:
        """Counted on first call (a packet scan, no decoding): opening never scans the file,
        so processing starts at once; the header's count serves progress until then."""
        video = self.info.video
        if not video.frame_count_exact:
            counted, vfr = count_packets(self.container, self.stream)
            if counted:
                video.frame_count, video.frame_count_exact = counted, True
            if vfr is not None:
                video.vfr = vfr
        return super().native_timing()

    def reopen_full(self) -> PyAVReader:
        from dataclasses import replace

        return PyAVReader(
            replace(self.source, start=None, end=None),
            self.threads,
            error_policy=self.error_policy,
            untagged_matrix=self.untagged_matrix,
        )

    # -- frames ------------------------------------------------------------------------------
    def av_frames(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """(source index, frame) for every frame in the source's time range, in PTS order."""
        vs = self.stream
        tb = vs.time_base or Fraction(1, 1)
        video = self.info.video
        start_pts: int | None = None
        end_pts: int | None = None
        origin = vs.start_time or 0
        if self.source.start:
            start_pts = origin + to_time_base(self.source.start, tb)
            self._seek(start_pts)
        else:
            self._rewind()
        if self.source.end is not None:
            end_pts = origin + to_time_base(self.source.end, tb)
        fps = video.fps or Fraction(25)
        counter = 0
        step = max(int(round(1 / (fps * tb))), 1) if tb else 1
        checked = start_pts is None
        for frame in self._decode():
            if not checked and start_pts is not None:
                checked = True
                if frame.pts is not None and frame.pts > start_pts:
                    # the demuxer landed past the start: decode from the beginning instead
                    yield from self._from_start(start_pts, end_pts, origin, tb, fps)
                    return
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

    def _from_start(
        self, start_pts: int, end_pts: int | None, origin: int, tb: Fraction, fps: Fraction
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        self._rewind()
        for frame in self._decode():
            if frame.pts is None or frame.pts < start_pts:
                continue
            if end_pts is not None and frame.pts >= end_pts:
                return
            yield int(round(float((frame.pts - origin) * tb * fps))), frame

    def _rewind(self) -> None:
        rewind(self.container, self.stream)

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

    def _corrupt(self, packet: av.Packet[Any] | None, exc: av.error.FFmpegError) -> None:
        self.decode_errors += 1
        where = "at the end"
        if packet is not None and packet.pts is not None and packet.time_base is not None:
            where = f"at {float(packet.pts * packet.time_base):.3f} s"
        message = (
            f"corrupt video data {where} in {self.source.describe()}: "
            f"{getattr(exc, 'strerror', None) or exc}"
        )
        if self.error_policy == "abort":
            raise InputError(message + " (--on-frame-error pass decodes what it can)")
        log.warning("%s: skipped", message)

    def frames(
        self,
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        batch_size: int = 1,
        interpolation: str = "bicubic",
    ) -> Iterator[FrameBatch]:
        check_layout(layout)
        tb = self.stream.time_base or Fraction(1, 1)
        images: list[np.ndarray] = []
        pts: list[int | None] = []
        indices: list[int] = []
        for index, frame in self.av_frames():
            images.append(frame_to_array(frame, layout, size, interpolation, self.sws_colorspace))
            pts.append(frame.pts)
            indices.append(index)
            if len(images) >= batch_size:
                yield FrameBatch(np.stack(images), pts, tb, indices, layout)
                images, pts, indices = [], [], []
        if images:
            yield FrameBatch(np.stack(images), pts, tb, indices, layout)

    def frames_at(
        self,
        indices: Iterable[int],
        *,
        size: tuple[int, int] | None = None,
        layout: str = "rgb24",
        interpolation: str = "bicubic",
        batch_size: int = 1,
    ) -> Iterator[FrameBatch]:
        """The wanted frames (whole-video indices), decoding as little as is exact.

        A demux pass maps presentation order to PTS and finds keyframes; then the decoder
        seeks over GOPs that hold no wanted frame, never receives H.264 pictures that are not
        wanted and that no other picture references (``nal_ref_idc == 0``), and only the
        wanted frames are converted to RGB. Falls back to decoding everything when the stream
        lacks the timestamps this needs.
        """
        check_layout(layout)
        wanted = sorted(set(int(i) for i in indices))
        if not wanted:
            return
        if wanted[0] < 0:
            raise InputError(f"frame index {wanted[0]} is negative")
        timeline = self._timeline()
        if timeline is None:
            yield from self._frames_at_sequential(wanted, size, layout, interpolation, batch_size)
            return
        all_pts, key_pts = timeline
        if wanted[-1] >= len(all_pts):
            raise InputError(
                f"frame {wanted[-1]} requested but {self.source.describe()} has "
                f"only {len(all_pts)} frames"
            )
        yield from self._sparse(wanted, all_pts, key_pts, size, layout, interpolation, batch_size)

    def _packets(self) -> tuple[list[int | None], list[int]]:
        """The demux-only packet scan, done once per reader: random access and the keyframe
        list both read it (FFmpeg errors propagate and nothing is kept)."""
        if self._scan is None:
            self._scan = scan_packets(self.container, self.stream)
        return self._scan

    def keyframes(self) -> list[int]:
        try:
            pts, key_pts = self._packets()
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read keyframes of {self.source.describe()}: {exc}") from None
        return keyframe_indices(pts, key_pts)

    def _timeline(self) -> tuple[list[int], list[int]] | None:
        """Sorted PTS of every frame and of the keyframes (demux only), or None if unusable."""
        try:
            pts, key_pts = self._packets()
        except av.error.FFmpegError:
            return None
        if any(p is None for p in pts):
            return None
        all_pts = sorted(p for p in pts if p is not None)
        if len(set(all_pts)) != len(all_pts):
            return None
        return all_pts, sorted(key_pts)

    def _sparse(
        self,
        wanted: list[int],
        all_pts: list[int],
        key_pts: list[int],
        size: tuple[int, int] | None,
        layout: str,
        interpolation: str,
        batch_size: int,
    ) -> Iterator[FrameBatch]:
        vs = self.stream
        tb = vs.time_base or Fraction(1, 1)
        wanted_pts = [all_pts[i] for i in wanted]
        index_of = {p: i for i, p in enumerate(all_pts)}
        length_size = _h264_length_size(vs) if vs.codec_context.name == "h264" else None
        images: list[np.ndarray] = []
        got: list[int] = []
        remaining = set(wanted_pts)

        def take(frames: Iterable[av.VideoFrame]) -> Iterator[FrameBatch]:
            nonlocal images, got
            for frame in frames:
                if frame.pts not in remaining:
                    continue
                remaining.discard(frame.pts)
                images.append(
                    frame_to_array(frame, layout, size, interpolation, self.sws_colorspace)
                )
                got.append(index_of[frame.pts])
                if len(images) >= batch_size or not remaining:
                    yield FrameBatch(np.stack(images), [all_pts[i] for i in got], tb, got, layout)
                    images, got = [], []

        def next_wanted() -> int:
            return min(remaining)

        can_seek = True
        landed_at: int | None = None  # where the last seek should have landed
        self._rewind()
        while remaining:
            seek_to = None
            restart = False
            for packet in self.container.demux(vs):
                if not remaining:
                    break
                if landed_at is not None and packet.size and packet.pts is not None:
                    if packet.pts > landed_at:  # the demuxer overshot: seek no more
                        restart = True
                        break
                    landed_at = None
                if can_seek and packet.size and packet.is_keyframe and packet.pts is not None:
                    # jump to the last keyframe at or before the next wanted frame
                    k = bisect.bisect_right(key_pts, next_wanted()) - 1
                    if k >= 0 and key_pts[k] > packet.pts:
                        seek_to = key_pts[k]
                        break
                if (
                    length_size is not None
                    and packet.size
                    and packet.pts not in remaining
                    and _h264_disposable(bytes(packet), length_size)
                ):
                    continue  # nothing references this picture and nobody wants it
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    self._corrupt(packet, exc)
                    continue
                yield from take(frames)
            else:  # end of stream (the final empty packet has drained the decoder)
                restart = landed_at is not None  # a seek that found nothing
                if not restart:
                    break
            if restart:
                can_seek, landed_at = False, None
                self._rewind()
                continue
            if seek_to is None:
                break
            yield from take(vs.codec_context.decode(None))  # frames still in the decoder
            self._seek(seek_to)
            landed_at = seek_to
        if remaining:
            raise InputError(
                f"decoded {len(wanted_pts) - len(remaining)} of {len(wanted_pts)} "
                f"wanted frames from {self.source.describe()}"
            )

    def _frames_at_sequential(
        self,
        wanted: list[int],
        size: tuple[int, int] | None,
        layout: str,
        interpolation: str,
        batch_size: int,
    ) -> Iterator[FrameBatch]:
        """Decode everything; convert only the wanted frames."""
        reader = (
            self if self.source.start is None and self.source.end is None else (self.reopen_full())
        )
        tb = self.stream.time_base or Fraction(1, 1)
        images: list[np.ndarray] = []
        pts: list[int | None] = []
        got: list[int] = []
        position = 0
        for index, frame in reader.av_frames():
            if index != wanted[position]:
                continue
            images.append(frame_to_array(frame, layout, size, interpolation, self.sws_colorspace))
            pts.append(frame.pts)
            got.append(index)
            position += 1
            if len(images) >= batch_size or position == len(wanted):
                yield FrameBatch(np.stack(images), pts, tb, got, layout)
                images, pts, got = [], [], []
            if position == len(wanted):
                return
        raise InputError(
            f"frame {wanted[position]} requested but {self.source.describe()} has only "
            f"{self.native_timing()[0]} frames"
        )

    def close(self) -> None:
        self.container.close()


def _h264_length_size(stream: Any) -> int | None:
    """NAL length-prefix size from avcC extradata; None for Annex B streams."""
    extra = bytes(stream.codec_context.extradata or b"")
    return (extra[4] & 3) + 1 if len(extra) > 4 and extra[0] == 1 else None


def _h264_disposable(data: bytes, length_size: int | None) -> bool:
    """True when every coded slice in the packet has ``nal_ref_idc == 0``: no other picture
    uses it for prediction, so not decoding it changes no other frame."""
    slices = 0
    for nal in _nal_headers(data, length_size):
        kind = nal & 0x1F
        if kind in (1, 5):
            if (nal >> 5) & 3:
                return False
            slices += 1
    return slices > 0


def _nal_headers(data: bytes, length_size: int | None) -> Iterator[int]:
    """First byte of each NAL unit: length-prefixed (avcC) or Annex B start codes."""
    n = len(data)
    if length_size:
        i = 0
        while i + length_size < n:
            size = int.from_bytes(data[i : i + length_size], "big")
            i += length_size
            if size <= 0 or i + size > n:
                return
            yield data[i]
            i += size
        return
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < n - 3:
        yield data[i + 3]
        i = data.find(b"\x00\x00\x01", i + 3)


def frame_to_array(
    frame: av.VideoFrame,
    layout: str = "rgb24",
    size: tuple[int, int] | None = None,
    interpolation: str = "bicubic",
    colorspace: int | None = None,
) -> np.ndarray:
    """RGB array of a decoded frame, scaled in libswscale when ``size`` is given, converted
    with ``colorspace`` (``SWS_CS_*``; None: the frame's own tag, BT.601 when it has none)."""
    kwargs: dict[str, Any] = {"format": _AV_FORMATS[layout]}
    if colorspace is not None:
        kwargs["src_colorspace"] = colorspace
    if size is not None and (frame.width, frame.height) != tuple(size):
        kwargs.update(
            width=int(size[0]),
            height=int(size[1]),
            interpolation=_SWS.get(interpolation, "BICUBIC"),
        )
    return reformat(frame, **kwargs).to_ndarray()


def open_pyav(
    source: Source,
    threads: int = 0,
    error_policy: str = "abort",
    untagged_matrix: str | None = None,
    **_: Any,
) -> PyAVReader:
    return PyAVReader(
        source, threads=threads, error_policy=error_policy, untagged_matrix=untagged_matrix
    )
