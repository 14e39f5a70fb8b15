"""Frame-rate conversion (``PipelineOptions.fps``, ``vt.media.retime``): the frames FFmpeg's
own ``fps`` filter picks, CFR timestamps at the new rate, audio kept in sync."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vt.errors import UsageError
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameBatch
from vt.media.info import probe
from vt.media.pipeline import PipelineOptions, process_video
from vt.media.processing import FrameProcessor
from vt.media.retime import RateConverter, parse_fps
from vt.testing import make_video, sample_clip


def _digest(frame: av.VideoFrame) -> str:
    return hashlib.md5(frame.to_ndarray(format="yuv420p").tobytes()).hexdigest()


def _source_frames(path: Path) -> dict[str, int]:
    with av.open(str(path)) as c:
        return {_digest(f): i for i, f in reversed(list(enumerate(c.decode(video=0))))}


def ffmpeg_fps_filter(path: Path, fps: str) -> list[int]:
    """The source frame numbers libavfilter's ``fps`` filter (FFmpeg's own) outputs."""
    index = _source_frames(path)
    chosen: list[int] = []
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        graph = av.filter.Graph()
        source, step, sink = (
            graph.add_buffer(template=vs),
            graph.add("fps", f"fps={fps}"),
            graph.add("buffersink"),
        )
        source.link_to(step)
        step.link_to(sink)
        graph.configure()

        def drain() -> None:
            while True:
                try:
                    chosen.append(index[_digest(graph.pull())])
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        for frame in c.decode(vs):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return chosen


def converted(src: Path, out: Path, fps: str, **options: object) -> tuple[list[int], list[float]]:
    """vt's output at ``fps`` (lossless, decoded frames passed through): which source frames
    it shows and at what times."""
    report = process_video(
        src, out, [], EncoderConfig(codec="ffv1"), PipelineOptions(fps=parse_fps(fps), **options)
    )
    index = _source_frames(src)
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
    assert report.frames_out == len(frames)
    return [index[_digest(f)] for f in frames], [float(f.time) for f in frames]


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gaps = [40, 40, 15, 70, 33, 33, 120, 10, 10, 50, 41, 41, 80, 25, 25, 60, 44, 37, 90, 20]
    pts = list(np.cumsum([0, *gaps]))
    return make_video(
        tmp_path_factory.mktemp("vfr") / "vfr.mp4",
        frames=len(pts),
        pts=pts,
        time_base=Fraction(1, 1000),
        width=64,
        height=48,
    )


@pytest.mark.parametrize(
    ("clip", "fps"),
    [("carphone_pristine", "8"), ("carphone_pristine", "50"), ("vfr", "12"), ("vfr", "30000/1001")],
)
def test_frames_are_the_ones_ffmpeg_fps_filter_picks(
    clip: str, fps: str, vfr_clip: Path, tmp_path: Path
) -> None:
    src = vfr_clip if clip == "vfr" else sample_clip(clip)
    shown, times = converted(src, tmp_path / "out.mkv", fps)
    assert shown == ffmpeg_fps_filter(src, fps)
    rate = parse_fps(fps)
    assert rate is not None
    assert times == pytest.approx([k / rate for k in range(len(times))], abs=1e-3)
    info = probe(str(tmp_path / "out.mkv"), count_frames=True)
    assert info.video.frame_count == len(shown)


def test_the_single_thread_path_picks_the_same_frames(vfr_clip: Path, tmp_path: Path) -> None:
    a, _ = converted(vfr_clip, tmp_path / "a.mkv", "12")
    b, _ = converted(vfr_clip, tmp_path / "b.mkv", "12", single_thread=True)
    assert a == b


class RgbIdentity(FrameProcessor):
    """Needs RGB (the batch path); records the timestamps it sees."""

    name = "rgb-identity"
    batch_size = 4

    def __init__(self) -> None:
        self.seen: list[float] = []

    def process(self, batch: FrameBatch) -> FrameBatch:
        self.seen += [t for t in batch.times if t is not None]
        return batch


def test_rgb_batches_at_the_new_rate_with_audio_in_sync(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=48, fps=24, width=64, height=48, audio=True)
    proc = RgbIdentity()
    report = process_video(
        src, tmp_path / "out.mp4", [proc], options=PipelineOptions(fps=Fraction(10))
    )
    assert report.frames_in == report.frames_out == 20  # 2 s at 10 fps
    assert proc.seen == pytest.approx([k / 10 for k in range(20)], abs=1e-3)
    assert report.audio == "copied"
    info = probe(str(tmp_path / "out.mp4"), count_frames=True)
    assert info.video.frame_count == 20 and float(info.video.fps) == pytest.approx(10)
    assert info.audio and abs(info.audio[0].duration - 2.0) < 0.05
    assert report.duration_out == pytest.approx(2.0)


def test_a_cut_input_fills_exactly_the_slots_before_the_cut(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=48, fps=24, width=64, height=48, audio=True)
    report = process_video(
        src, tmp_path / "out.mp4", [], options=PipelineOptions(fps=Fraction(8), end=7 / 8)
    )
    assert report.frames_out == 7
    info = probe(str(tmp_path / "out.mp4"), count_frames=True)
    assert info.video.frame_count == 7
    assert info.audio and info.audio[0].duration == pytest.approx(7 / 8, abs=0.03)


def test_converter_drops_and_repeats_by_nearest_slot() -> None:
    conv: RateConverter[str] = RateConverter(Fraction(10), Fraction(1, 25))
    out = [x for t, f in [(0, "a"), (0.04, "b"), (0.08, "c"), (0.26, "d")] for x in conv.push(t, f)]
    out += list(conv.finish())
    # a -> slot 0, b -> 0 (replaces a), c -> 1, d -> 3 (c repeated in 2); end 0.30 -> slot 3
    assert out == [(0, "b"), (1, "c"), (2, "c")]


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1/0"])
def test_bad_rates_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_fps(text)


def test_rates_parse_as_fractions() -> None:
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
    assert parse_fps("29.97") == Fraction(2997, 100)
    assert parse_fps(None) is None
