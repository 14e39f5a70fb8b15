"""Frame-rate conversion: frames picked by timestamp, as FFmpeg's ``fps`` filter does.

The output has one frame per slot of ``1/fps`` seconds. Each input frame falls in the slot
nearest its presentation time (``floor(t * fps + 0.5)``, halves rounding up); slot ``k``
shows the latest input frame whose slot is at most ``k``: frames are dropped to go down in
rate and repeated to go up, VFR input comes out CFR. Slots run from the first frame's slot
up to (not including) the slot of the stream's end (the last frame's time plus one source
frame interval, or the cut end when the input is cut), so the output lasts as long as the
input and its audio stays in sync; a clip shorter than one output frame still gives one.
The tests check the chosen frames against FFmpeg's own ``fps`` filter (libavfilter, through
PyAV). Output frames are timed in ``1/fps`` units (:func:`time_base_for`): slot ``k`` has
PTS ``k``.

Only one input frame is held at a time: memory does not grow with the clip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vt.errors import UsageError
from vt.lazy import lazy_module
from vt.media.frames import FrameBatch

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

T = TypeVar("T")


def parse_fps(value: str | float | Fraction | None) -> Fraction | None:
    """``"8"``, ``"29.97"``, ``"30000/1001"``, a number or None -> a positive Fraction."""
    if value is None or value == "":
        return None
    try:
        rate = Fraction(str(value).strip()).limit_denominator(1001000)
    except (ValueError, ZeroDivisionError):
        raise UsageError(
            f"fps must be a positive number or a fraction like 30000/1001, got {value!r}"
        ) from None
    if rate <= 0:
        raise UsageError(f"fps must be positive, got {value}")
    return rate


def slot_of(seconds: float | Fraction, fps: Fraction) -> int:
    """The output slot nearest ``seconds`` (halves round up, FFmpeg's ``round=near``)."""
    return math.floor(Fraction(seconds).limit_denominator(1 << 40) * fps + Fraction(1, 2))


class RateConverter(Generic[T]):
    """Feed ``(seconds, frame)`` in presentation order; get ``(slot, frame)`` back."""

    def __init__(
        self,
        fps: Fraction,
        frame_interval: float | Fraction,
        end: float | Fraction | None = None,
        start: float | Fraction | None = None,
    ) -> None:
        self.fps = Fraction(fps)
        self.frame_interval = Fraction(frame_interval).limit_denominator(1 << 40)
        self.end = None if end is None else Fraction(end).limit_denominator(1 << 40)
        # a cut input: no slot before the cut (its time would come out negative)
        self.first_slot = (
            None
            if start is None
            else math.ceil(Fraction(start).limit_denominator(1 << 40) * self.fps)
        )
        self.next_slot: int | None = None  # the first slot not yet filled
        self.emitted = 0
        self._held: T | None = None
        self._last_time: Fraction | None = None

    def push(self, seconds: float | Fraction, frame: T) -> Iterator[tuple[int, T]]:
        t = Fraction(seconds).limit_denominator(1 << 40)
        if self._last_time is not None and t <= self._last_time:
            return  # out of order or repeated: the frame already shown keeps its slots
        slot = slot_of(t, self.fps)
        if self.first_slot is not None:
            slot = max(slot, self.first_slot)
        if self.next_slot is None:
            self.next_slot = slot
        elif self._held is not None:
            while self.next_slot < slot:  # the held frame fills the slots before this one
                yield self.next_slot, self._held
                self.next_slot += 1
                self.emitted += 1
        self._held, self._last_time = frame, t

    def finish(self) -> Iterator[tuple[int, T]]:
        """The held frame repeated up to the stream's end."""
        if self._held is None or self.next_slot is None or self._last_time is None:
            return
        end = self._last_time + self.frame_interval
        if self.end is not None:
            end = min(end, self.end)
        last = slot_of(end, self.fps)
        if self.emitted == 0:  # a clip shorter than one output frame still shows its frame
            last = max(last, self.next_slot + 1)
        while self.next_slot < last:
            yield self.next_slot, self._held
            self.next_slot += 1
            self.emitted += 1
        self._held = None


def time_base_for(fps: Fraction) -> Fraction:
    """The time base of converted frames: one tick per output frame."""
    return 1 / Fraction(fps)


def retime_frames(
    frames: Iterable[Any],
    fps: Fraction,
    time_base: Fraction,
    frame_interval: float | Fraction,
    end: float | None = None,
    start: float | None = None,
) -> Iterator[Any]:
    """Decoded frames (PyAV ``VideoFrame``s with PTS in ``time_base``) at ``fps``, timed in
    ``time_base_for(fps)``. A frame shown in several slots comes out as copies (consumers
    may hold the first while the next is made, in another thread)."""
    converter: RateConverter[Any] = RateConverter(fps, frame_interval, end, start)
    out_tb = time_base_for(fps)
    shown: list[Any] = [None]

    def emit(pairs: Iterable[tuple[int, Any]]) -> Iterator[Any]:
        for slot, frame in pairs:
            out = duplicate_frame(frame) if frame is shown[0] else frame
            shown[0] = frame
            out.pts, out.time_base = slot, out_tb
            yield out

    for frame in frames:
        yield from emit(converter.push(frame.pts * time_base, frame))
    yield from emit(converter.finish())


def duplicate_frame(frame: Any) -> Any:
    """A new PyAV frame with ``frame``'s pixels and colour tags (its own PTS to set)."""
    import av

    try:
        copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
    except (ValueError, TypeError, av.error.FFmpegError):  # a format numpy cannot hold
        return frame.reformat(format="rgb48le", width=frame.width, height=frame.height)
    for name in ("colorspace", "color_range", "color_primaries", "color_trc"):
        try:
            setattr(copy, name, getattr(frame, name))
        except (AttributeError, ValueError):
            pass
    copy.time_base = frame.time_base
    return copy


def retime_batches(
    batches: Iterable[FrameBatch],
    fps: Fraction,
    frame_interval: float | Fraction,
    end: float | None = None,
    start: float | None = None,
) -> Iterator[FrameBatch]:
    """RGB batches at ``fps`` (timed in ``time_base_for(fps)``), in batches of the input's
    batch size; ``indices`` number the output frames from 0. Frames without PTS are timed
    by their index."""
    converter: RateConverter[np.ndarray] = RateConverter(fps, frame_interval, end, start)
    out_tb = time_base_for(fps)
    images: list[np.ndarray] = []
    pts: list[int | None] = []
    done = 0  # output frames handed out so far
    size, layout = 1, "rgb24"

    def flush() -> FrameBatch:
        nonlocal images, pts, done
        batch = FrameBatch(
            np.stack(images), pts, out_tb, list(range(done, done + len(images))), layout
        )
        done += len(images)
        images, pts = [], []
        return batch

    def take(pairs: Iterable[tuple[int, np.ndarray]]) -> Iterator[FrameBatch]:
        for slot, image in pairs:
            images.append(image)
            pts.append(slot)
            if len(images) >= size:
                yield flush()

    for batch in batches:
        tb, layout = batch.time_base, batch.layout
        size = max(size, len(batch))
        host = batch.images
        for i, (p, index) in enumerate(zip(batch.pts, batch.indices, strict=True)):
            seconds = p * tb if p is not None else index * Fraction(frame_interval)
            yield from take(converter.push(seconds, host[i]))
    yield from take(converter.finish())
    if images:
        yield flush()
