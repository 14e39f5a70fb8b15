"""Where a video is cut: the frame timeline (a demux-only scan) and segments that start on the
source's keyframes, small GOPs grouped to a target duration."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from vt.media.decode import to_time_base
from vt.media.info import main_video_stream, open_container, scan_packets
from vt.media.source import Source

#: segment length when nothing else is said: resume loses at most this much work, and the
#: per-segment costs (seek, encoder start and flush) stay a few percent
DEFAULT_SEGMENT_SECONDS = 5.0


class NotSegmentable(Exception):
    """Why this source cannot be cut (the run goes on in one pass and says so)."""


@dataclass(frozen=True)
class Timeline:
    """Every frame's PTS (presentation order) and the keyframes' PTS, in the stream's ticks."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    time_base: Fraction
    origin: int  # the stream's start time, in ticks
    fps: Fraction | None

    def seconds(self, pts: int) -> Fraction:
        """``pts`` as a time from the stream's start (what ``Source`` ranges use)."""
        return (pts - self.origin) * self.time_base

    def first_at_or_after(self, pts: int) -> int:
        return bisect.bisect_left(self.pts, pts)


@dataclass(frozen=True)
class Segment:
    """Frames ``first``…``end - 1`` of the timeline (presentation order)."""

    index: int
    first: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.first

    def name(self, extension: str) -> str:
        return f"seg-{self.index:06d}.{extension}"


def scan_timeline(source: Source, fps: Fraction | None) -> Timeline:
    """The frame timeline of ``source``'s main video stream, without decoding."""
    with open_container(source) as container:
        stream = main_video_stream(container)
        if stream is None:
            raise NotSegmentable("no video stream")
        try:
            pts, key_pts = scan_packets(container, stream)
        except av.error.FFmpegError as exc:
            raise NotSegmentable(f"its packets cannot be scanned ({exc})") from None
        time_base = stream.time_base or Fraction(1, 1)
        origin = stream.start_time or 0
    if not pts or any(p is None for p in pts):
        raise NotSegmentable("some video packets have no timestamp")
    ordered = sorted(p for p in pts if p is not None)
    if len(set(ordered)) != len(ordered):
        raise NotSegmentable("some video packets share a timestamp")
    return Timeline(tuple(ordered), tuple(sorted(set(key_pts))), time_base, origin, fps)


def selected_range(timeline: Timeline, start: float | None, end: float | None) -> tuple[int, int]:
    """The timeline positions ``[first, end)`` a ``--start/--end`` selection decodes (the
    pipeline's rule: ``start <= pts < end``)."""
    first, stop = 0, len(timeline.pts)
    if start:
        first = timeline.first_at_or_after(
            timeline.origin + to_time_base(start, timeline.time_base)
        )
    if end is not None:
        stop = timeline.first_at_or_after(timeline.origin + to_time_base(end, timeline.time_base))
    return first, max(first, stop)


def plan_segments(timeline: Timeline, first: int, stop: int, seconds: float) -> list[Segment]:
    """Cut frames ``[first, stop)`` at keyframes into segments of about ``seconds`` each: a
    segment ends at the first keyframe at least ``seconds`` after its start (a long GOP
    makes a long segment; the last one takes what is left)."""
    if stop <= first:
        return []
    pts = timeline.pts
    wanted = to_time_base(seconds, timeline.time_base)
    cuts = [first]
    for key in timeline.keyframes:
        position = bisect.bisect_left(pts, key)
        if position <= cuts[-1] or position >= stop:
            continue
        if key - pts[cuts[-1]] >= wanted:
            cuts.append(position)
    # a last segment shorter than a third of the target joins the one before it
    if len(cuts) > 1 and pts[stop - 1] - pts[cuts[-1]] < wanted / 3:
        cuts.pop()
    bounds = [*cuts, stop]
    return [Segment(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]


def decode_window(
    segment: Segment, first: int, stop: int, before: int, after: int, batch: int = 1
) -> tuple[int, int]:
    """The timeline positions ``[a, b)`` a segment decodes and processes: its own frames,
    ``before``/``after`` frames of context (never outside the selection ``[first, stop)``,
    which one pass does not see either), widened so that batches of ``batch`` frames fall
    where they fall in one pass."""
    a = max(first, segment.first - before)
    b = min(stop, segment.end + after)
    if batch > 1:
        a = first + (a - first) // batch * batch
        b = min(stop, first + -(-(b - first) // batch) * batch)
    return a, b


def describe_plan(segments: Sequence[Segment], timeline: Timeline) -> list[list[int]]:
    """The plan as it is stored in the job file: ``[first, end, first_pts]`` per segment."""
    return [[s.first, s.end, timeline.pts[s.first]] for s in segments]
