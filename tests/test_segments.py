"""Segmented runs (issue 17): keyframe-aligned segments joined by stream copy, resume after
a kill, parallel workers. Every comparison is against the same command run in one pass (or
run uninterrupted): frame count, every PTS, audio packets, and pixels where the codec is
lossless (ffv1)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vt.errors import UsageError, VtError
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameBatch
from vt.media.info import probe
from vt.media.pipeline import PipelineOptions, process_video
from vt.media.processing import FrameProcessor
from vt.media.segments.plan import Timeline, decode_window, plan_segments
from vt.media.segments.state import resume_folder
from vt.media.source import Source
from vt.processors.resize import Resize
from vt.tempfiles import clean_stale
from vt.testing import make_video

VT = shutil.which("vt", path=str(Path(sys.executable).parent))
FAST = EncoderConfig(preset="ultrafast")
LOSSLESS = EncoderConfig(codec="ffv1", crf=None, preset=None)


def vt(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VT_LOAD_PLUGINS="")
    return subprocess.run(
        [VT, *args], capture_output=True, text=True, timeout=120, env=env, **kwargs
    )


def facts(path: Path) -> dict[str, Any]:
    """What must match between two outputs: video PTS (in seconds, exact), the decoded
    pixels' hash, the audio and subtitle packets, container and stream tags, and whether
    decode timestamps are valid."""
    out: dict[str, Any] = {}
    with av.open(str(path)) as c:
        out["tags"] = [dict(c.metadata), *(dict(s.metadata) for s in c.streams)]
        video = c.streams.video[0]
        packets = [(p.pts, p.dts) for p in c.demux(video) if p.size]
        tb = video.time_base
        out["pts"] = sorted(Fraction(p) * tb for p, _ in packets)
        out["dts_valid"] = all(
            b[1] > a[1] for a, b in zip(packets, packets[1:], strict=False)
        ) and all(d <= p for p, d in packets)
    with av.open(str(path)) as c:
        digest, frames = hashlib.sha256(), 0
        for frame in c.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
            frames += 1
        out["frames"], out["pixels"] = frames, digest.hexdigest()
    with av.open(str(path)) as c:
        side = [s for s in c.streams if s.type in ("audio", "subtitle")]
        out["side"] = (
            [
                (p.stream.type, Fraction(p.pts) * p.time_base, bytes(p))
                for p in c.demux(*side)
                if p.size
            ]
            if side
            else []
        )
    return out


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """4 s, 25 fps, a keyframe every 12 frames, AAC audio."""
    return make_video(
        tmp_path / "clip.mp4",
        frames=100,
        width=64,
        height=48,
        fps=25,
        audio=True,
        options={"g": "12", "bf": "2"},
    )


@pytest.fixture
def vfr_clip(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    pts = np.cumsum(rng.choice([33, 40, 50, 67, 100], size=90)).tolist()
    return make_video(
        tmp_path / "vfr.mkv",
        frames=90,
        width=96,
        height=64,
        pts=[0, *pts[:-1]],
        time_base=Fraction(1, 1000),
        audio=True,
        subtitles=[(0.5, 1.5, "one"), (3.0, 4.0, "two")],
        rotation=90,
        options={"g": "10", "bf": "2"},
    )


# -- plan ---------------------------------------------------------------------------------------
def test_plan_cuts_at_keyframes_and_groups_small_gops() -> None:
    pts = tuple(range(0, 100 * 512, 512))  # 100 frames at 25 fps, time base 1/12800
    keys = tuple(pts[i] for i in (0, 10, 20, 30, 55, 60, 90))
    timeline = Timeline(pts, keys, Fraction(1, 12800), 0, Fraction(25))
    segments = plan_segments(timeline, 0, 100, seconds=1.0)  # 1 s = 25 frames
    assert [(s.first, s.end) for s in segments] == [(0, 30), (30, 55), (55, 90), (90, 100)]
    assert all(pts[s.first] in keys for s in segments)
    # a last segment under a third of the target joins the one before
    late = Timeline(pts, (*keys[:-1], pts[95]), Fraction(1, 12800), 0, Fraction(25))
    assert [(s.first, s.end) for s in plan_segments(late, 0, 100, 1.0)][-1] == (55, 100)
    # a selection starts its first segment where it starts, keyframe or not
    assert plan_segments(timeline, 5, 50, seconds=1.0)[0].first == 5
    # context stays inside the selection; batches fall where one pass puts them
    assert decode_window(segments[1], 0, 100, before=3, after=2) == (27, 57)
    assert decode_window(segments[1], 28, 100, before=3, after=0) == (28, 55)
    assert decode_window(segments[1], 0, 100, before=0, after=0, batch=4) == (28, 56)


# -- one pass vs segments ------------------------------------------------------------------------
def test_segments_equal_one_pass_frames_pts_pixels_audio(clip: Path, tmp_path: Path) -> None:
    one = process_video(clip, tmp_path / "one.mkv", config=LOSSLESS)
    seg = process_video(
        clip, tmp_path / "seg.mkv", config=LOSSLESS, options=PipelineOptions(segment_seconds=0.5)
    )
    assert seg.segments is not None and seg.segments["count"] >= 4
    assert one.segments is None  # a plain run stays one pass
    assert seg.frames_out == one.frames_out == 100
    assert seg.audio == one.audio == "copied"
    a, b = facts(tmp_path / "one.mkv"), facts(tmp_path / "seg.mkv")
    assert a == b
    assert not resume_folder(tmp_path / "seg.mkv").exists()  # removed after the join


def test_join_of_vfr_clip_with_audio_subtitles_and_b_frames(vfr_clip: Path, tmp_path: Path) -> None:
    process_video(vfr_clip, tmp_path / "one.mp4", config=FAST)
    seg = process_video(
        vfr_clip, tmp_path / "seg.mp4", config=FAST, options=PipelineOptions(segment_seconds=0.8)
    )
    assert seg.segments is not None and seg.segments["count"] >= 3
    a, b = facts(tmp_path / "one.mp4"), facts(tmp_path / "seg.mp4")
    assert b["frames"] == a["frames"] == 90
    assert b["pts"] == a["pts"]  # every PTS, VFR
    assert b["side"] == a["side"] and any(kind == "audio" for kind, *_ in b["side"])
    assert any(kind == "subtitle" for kind, *_ in b["side"])
    assert b["dts_valid"]
    rotations = {probe(tmp_path / name).video.rotation for name in ("one.mp4", "seg.mp4")}
    assert rotations == {probe(vfr_clip).video.rotation} and rotations != {0}
    # clean decoding across the joins: a strict decoder reports nothing
    with av.open(str(tmp_path / "seg.mp4")) as c:
        stream = c.streams.video[0]
        stream.codec_context.options = {"err_detect": "explode"}
        assert sum(1 for _ in c.decode(stream)) == 90


def test_start_end_cut_is_the_same_in_segments(clip: Path, tmp_path: Path) -> None:
    cut = dict(start=0.55, end=3.3)
    process_video(clip, tmp_path / "one.mkv", config=LOSSLESS, options=PipelineOptions(**cut))
    process_video(
        clip,
        tmp_path / "seg.mkv",
        config=LOSSLESS,
        options=PipelineOptions(segment_seconds=0.5, **cut),
    )
    a, b = facts(tmp_path / "one.mkv"), facts(tmp_path / "seg.mkv")
    assert a == b and a["frames"] == 69


def test_native_processors_segment_too(clip: Path, tmp_path: Path) -> None:
    process_video(clip, tmp_path / "one.mkv", [Resize(size=(32, 24))], config=LOSSLESS)
    process_video(
        clip,
        tmp_path / "seg.mkv",
        [Resize(size=(32, 24))],
        config=LOSSLESS,
        options=PipelineOptions(segment_seconds=1),
    )
    assert facts(tmp_path / "one.mkv") == facts(tmp_path / "seg.mkv")


# -- processors with temporal context ------------------------------------------------------------
class WindowMean(FrameProcessor):
    """Frame t = mean of frames t-2..t+2 of the stream (fewer at its ends): holds two frames
    back, and each output frame depends on two frames on either side."""

    name = "window-mean"
    temporal = True

    def __init__(self, context: int | tuple[int, int] = (2, 2)) -> None:
        self.temporal_context = context
        self._frames: deque[tuple[int | None, int, np.ndarray]] = deque()
        self._next = 0  # position in the window of the next frame to emit
        self._time_base = Fraction(1, 1)

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        self._time_base = batch.time_base
        for pts, index, image in zip(batch.pts, batch.indices, batch.images, strict=True):
            self._frames.append((pts, index, image.astype(np.float32)))
        return self._emit(final=False)

    def flush(self) -> list[FrameBatch]:
        out = self._emit(final=True)
        self._frames.clear()
        self._next = 0
        return [out] if out is not None else []

    def _emit(self, final: bool) -> FrameBatch | None:
        ready = []
        while self._next < len(self._frames) and (final or len(self._frames) - 1 - self._next >= 2):
            lo, hi = max(0, self._next - 2), min(len(self._frames), self._next + 3)
            window = [self._frames[i][2] for i in range(lo, hi)]
            pts, index, _ = self._frames[self._next]
            ready.append((pts, index, np.mean(window, axis=0).round().astype(np.uint8)))
            self._next += 1
        while self._next > 2:  # keep the two frames the next ones still need
            self._frames.popleft()
            self._next -= 1
        if not ready:
            return None
        return FrameBatch(
            np.stack([r[2] for r in ready]),
            [r[0] for r in ready],
            self._time_base,
            [r[1] for r in ready],
        )


def test_temporal_context_makes_segments_equal_one_pass(clip: Path, tmp_path: Path) -> None:
    process_video(clip, tmp_path / "one.mkv", [WindowMean()], config=LOSSLESS)
    process_video(
        clip,
        tmp_path / "seg.mkv",
        [WindowMean()],
        config=LOSSLESS,
        options=PipelineOptions(segment_seconds=0.5),
    )
    assert facts(tmp_path / "one.mkv") == facts(tmp_path / "seg.mkv")
    # the same processor declaring too little context does differ: the test can tell
    process_video(
        clip,
        tmp_path / "short.mkv",
        [WindowMean(context=(2, 0))],
        config=LOSSLESS,
        options=PipelineOptions(segment_seconds=0.5),
    )
    short = facts(tmp_path / "short.mkv")
    assert short["pts"] == facts(tmp_path / "one.mkv")["pts"]
    assert short["pixels"] != facts(tmp_path / "one.mkv")["pixels"]


class Unsegmentable(FrameProcessor):
    name = "whole-clip"
    segmentable = False

    def process(self, batch: FrameBatch) -> FrameBatch:
        return batch


def test_unsegmentable_and_undeclared_temporal_processors_run_in_one_pass(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="vt")
    report = process_video(
        clip,
        tmp_path / "a.mkv",
        [Unsegmentable()],
        config=LOSSLESS,
        options=PipelineOptions(resume=True),
    )
    assert report.segments is None and report.frames_out == 100
    assert "processor whole-clip cannot be split into segments: running in one pass" in caplog.text
    report = process_video(
        clip,
        tmp_path / "b.mkv",
        [WindowMean(context=0)],
        config=LOSSLESS,
        options=PipelineOptions(workers=2),
    )
    assert report.segments is None
    assert (
        "window-mean carries state from frame to frame and declares no temporal_context"
        in caplog.text
    )
    assert not resume_folder(tmp_path / "a.mkv").exists()


# -- workers -------------------------------------------------------------------------------------
def test_two_workers_write_the_same_file_as_one(clip: Path, tmp_path: Path) -> None:
    one = vt(
        "transcode",
        str(clip),
        str(tmp_path / "one.mp4"),
        "--preset",
        "ultrafast",
        "--segment-seconds",
        "0.5",
        "--json",
    )
    two = vt(
        "transcode",
        str(clip),
        str(tmp_path / "two.mp4"),
        "--preset",
        "ultrafast",
        "--segment-seconds",
        "0.5",
        "--workers",
        "2",
        "--json",
    )
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    segments = json.loads(two.stdout)["segments"]
    assert segments["workers"] == 2
    written_by = segments["written_by"]  # this process and a spawned worker both worked
    assert written_by.get("main") and sum(written_by.values()) == segments["count"] > 2
    assert any(name.startswith(socket.gethostname()) for name in written_by)
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "two.mp4").read_bytes()
    plain = vt("transcode", str(clip), str(tmp_path / "plain.mp4"), "--preset", "ultrafast")
    assert plain.returncode == 0
    a, b = facts(tmp_path / "plain.mp4"), facts(tmp_path / "two.mp4")
    assert (a["frames"], a["pts"], a["side"]) == (b["frames"], b["pts"], b["side"])


def test_workers_from_python_pickle_the_processors(clip: Path, tmp_path: Path) -> None:
    process_video(clip, tmp_path / "one.mkv", [WindowMean()], config=LOSSLESS)
    report = process_video(
        clip,
        tmp_path / "two.mkv",
        [WindowMean()],
        config=LOSSLESS,
        options=PipelineOptions(workers=2, segment_seconds=0.5),
    )
    assert report.segments is not None and report.segments["workers"] == 2
    assert facts(tmp_path / "one.mkv") == facts(tmp_path / "two.mkv")


# -- resume --------------------------------------------------------------------------------------
class FailAt(FrameProcessor):
    """Fails on one frame: an interrupted run, deterministically."""

    name = "fail-at"

    def __init__(self, index: int) -> None:
        self.index = index

    def process(self, batch: FrameBatch) -> FrameBatch:
        if self.index in batch.indices:
            raise KeyboardInterrupt  # like Ctrl-C at that frame
        return batch


def test_resume_reuses_finished_segments_and_refuses_changes(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    options = PipelineOptions(resume=True, segment_seconds=0.5)
    with pytest.raises(KeyboardInterrupt):
        process_video(clip, out, [FailAt(70)], config=LOSSLESS, options=options)
    state = resume_folder(out)
    job = json.loads((state / "job.json").read_text())
    assert not out.exists() and 3 <= len(job["finished"]) < len(job["plan"])
    assert not [p for p in state.iterdir() if ".vt-tmp-" in p.name]  # the partial one went
    clean_stale(tmp_path)  # temp clean-up leaves the state alone
    assert (state / "job.json").exists()
    # other parameters, another input: refused, state kept
    with pytest.raises(UsageError, match="the parameters changed.*crf"):
        process_video(
            clip,
            out,
            [FailAt(-1)],
            config=EncoderConfig(codec="ffv1", crf=3, preset=None),
            options=options,
        )
    with pytest.raises(UsageError, match="another|holds an interrupted run"):
        process_video(
            clip, out, [FailAt(-1)], config=LOSSLESS, options=PipelineOptions(segment_seconds=0.5)
        )  # no --resume
    os.utime(clip, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(UsageError, match="the input changed.*mtime_ns"):
        process_video(clip, out, [FailAt(-1)], config=LOSSLESS, options=options)
    os.utime(clip, ns=(job["input"]["mtime_ns"],) * 2)
    # a finished segment that no longer checks out is made again
    damaged = sorted(state.glob("seg-*.mkv"))[1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit pattern changed, same size, still demuxes
    damaged.write_bytes(bytes(data))
    report = process_video(clip, out, [FailAt(-1)], config=LOSSLESS, options=options)
    assert report.segments is not None
    assert report.segments["reused"] == len(job["finished"]) - 1
    process_video(clip, tmp_path / "one.mkv", [FailAt(-1)], config=LOSSLESS)  # uninterrupted
    assert facts(out) == facts(tmp_path / "one.mkv")
    assert not state.exists()


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [VT, *args],
        env=dict(os.environ, VT_LOAD_PLUGINS=""),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(state: Path) -> int:
    try:
        return len(json.loads((state / "job.json").read_text())["finished"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real audio (bigbuckbunny's AAC), scaled down, a keyframe a second."""
    from vt.testing import sample_clip

    out = tmp_path_factory.mktemp("clips") / "bbb.mp4"
    process_video(
        sample_clip("bigbuckbunny"),
        out,
        [Resize(size=(320, 180))],
        config=EncoderConfig(preset="ultrafast", options={"g": "25"}),
    )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_uninterrupted_output(
    long_clip: Path, tmp_path: Path, sig: int
) -> None:
    args = ["--preset", "medium", "--segment-seconds", "1", "--resume", "-q"]
    out = tmp_path / "out.mp4"
    job = _start(["transcode", str(long_clip), str(out), *args])
    state = resume_folder(out)
    deadline = time.monotonic() + 60
    while _finished(state) < 1 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(sig)
    job.wait(timeout=60)
    assert job.returncode != 0, "the run ended before it could be interrupted"
    done = _finished(state)
    assert 1 <= done < len(json.loads((state / "job.json").read_text())["plan"])
    assert not out.exists()
    if sig == signal.SIGTERM:  # cleaned up its partial segment on the way out
        assert not [p for p in state.iterdir() if ".vt-tmp-" in p.name]
    resumed = vt("transcode", str(long_clip), str(out), *args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["segments"]["reused"] == done
    assert not state.exists()
    whole = vt("transcode", str(long_clip), str(tmp_path / "whole.mp4"), *args)
    assert whole.returncode == 0, whole.stderr
    a, b = facts(tmp_path / "whole.mp4"), facts(out)
    assert a == b and a["frames"] == 132 and a["side"]


def test_a_failed_flush_stops_the_run_and_drops_the_segment_encoded_beside_it(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segment k's flush and commit run beside segment k+1's encoding: when the flush fails,
    the run stops with that error, k+1 is dropped, and what finished before stays for --resume."""
    from vt.errors import InputError
    from vt.media.segments import run as segment_run

    real_read_back = segment_run.read_back

    def failing(index: int, path: Path) -> Any:
        if index == 1:
            raise InputError("segment 1 is unreadable (test)")
        return real_read_back(index, path)

    monkeypatch.setattr(segment_run, "read_back", failing)
    out = tmp_path / "out.mkv"
    options = PipelineOptions(resume=True, segment_seconds=0.5)
    with pytest.raises(InputError, match="segment 1 is unreadable"):
        process_video(clip, out, [FailAt(-1)], config=LOSSLESS, options=options)
    state = resume_folder(out)
    job = json.loads((state / "job.json").read_text())
    assert sorted(int(i) for i in job["finished"]) == [0] and len(job["plan"]) > 3
    assert sorted(p.name for p in state.iterdir()) == [".lock", "job.json", "seg-000000.mkv"]
    assert not out.exists()
    monkeypatch.setattr(segment_run, "read_back", real_read_back)
    report = process_video(clip, out, [FailAt(-1)], config=LOSSLESS, options=options)
    assert report.segments is not None and report.segments["reused"] == 1
    process_video(clip, tmp_path / "one.mkv", [FailAt(-1)], config=LOSSLESS)
    assert facts(out) == facts(tmp_path / "one.mkv")


def test_each_segment_frees_its_encoder_without_a_gc_pass(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment's writer (its encoder: hundreds of MB at 1080p) is freed when the segment
    is done, not at a later garbage collection: a reference cycle here once made a 60 s
    1080p run hold every segment's encoder (1.8 GB, and fresh pages to fault in for each)."""
    import gc
    import weakref

    from vt.media.encode.container import ContainerWriter

    writers: list[weakref.ref[ContainerWriter]] = []
    real_init = ContainerWriter.__init__

    def init(self: ContainerWriter, *args: Any, **kwargs: Any) -> None:
        writers.append(weakref.ref(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ContainerWriter, "__init__", init)
    gc.collect()
    gc.disable()
    try:
        report = process_video(
            clip, tmp_path / "seg.mkv", config=FAST, options=PipelineOptions(segment_seconds=0.5)
        )
        alive = [ref for ref in writers if ref() is not None]
    finally:
        gc.enable()
    assert report.segments is not None and len(writers) == report.segments["count"] >= 4
    assert alive == []


def test_a_reader_given_the_runs_probe_decodes_nothing_to_open(
    vfr_clip: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments open the input with the run's probe: no first frame is decoded again, and
    the reader reports and decodes what a fresh probe gives."""
    from dataclasses import replace

    from vt.media.decoders import pyav_reader

    source = Source.parse(str(vfr_clip))
    with pyav_reader.PyAVReader(source) as plain:
        info = plain.info
        pts = [frame.pts for _, frame in plain.av_frames()]

    def no_peek(container: Any) -> None:
        raise AssertionError("the first frame was decoded again")

    monkeypatch.setattr(pyav_reader, "peek_first_frame", no_peek)
    with pyav_reader.PyAVReader(source, known=info) as reader:
        assert reader.info == info and reader.info.video.rotation == 90
        assert [frame.pts for _, frame in reader.av_frames()] == pts
    # without rotation side data, the rotation is the probe's (found on its first frame)
    untagged = Source.parse(str(clip))
    with pyav_reader.PyAVReader(untagged, known=probe(clip)) as reader:
        assert reader.info.video.rotation == 0
    turned = probe(clip)
    turned.video = replace(turned.video, rotation=270)
    with pyav_reader.PyAVReader(untagged, known=turned) as reader:
        assert reader.info.video.rotation == 270


def test_join_uses_the_decode_order_read_back_and_checks_it(clip: Path, tmp_path: Path) -> None:
    from vt.media.segments.join import _decode_order_pts, join_segments
    from vt.media.segments.run import read_back
    from vt.registry import OutputTarget

    one = tmp_path / "one.mkv"
    config = EncoderConfig(preset="veryfast")  # with B-frames, unlike ultrafast
    process_video(clip, one, config=config)
    found = read_back(0, one)
    assert found.decode_order == _decode_order_pts(one) and len(found.decode_order) == 100
    assert found.decode_order != sorted(found.decode_order)  # B-frames: decode order differs
    info, source = probe(clip), Source.parse(str(clip))

    def join(order: list[int] | None, name: str) -> Path:
        target = OutputTarget(tmp_path / name, "container")
        join_segments(
            [one],
            target,
            source,
            info,
            config,
            audio=True,
            subtitles=True,
            warn=lambda m: None,
            orders=[order],
        )
        return target.path

    def packets(path: Path) -> list[tuple[Any, ...]]:
        with av.open(str(path)) as c:
            return [(p.stream.type, p.pts, p.dts, bytes(p)) for p in c.demux() if p.size]

    given = packets(join(found.decode_order, "given.mkv"))
    assert given == packets(join(None, "read.mkv")) and len(given) > 100  # video and audio
    stale = list(found.decode_order)
    stale[3], stale[4] = stale[4], stale[3]
    with pytest.raises(VtError, match="changed while it was being joined"):
        join(stale, "stale.mkv")


def test_interrupted_run_without_resume_leaves_nothing(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        process_video(
            clip, out, [FailAt(70)], config=LOSSLESS, options=PipelineOptions(segment_seconds=0.5)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# -- options and refusals ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option, message",
    [
        (["--workers", "-1"], "--workers must be 0"),
        (["--segment-seconds", "0"], "--segment-seconds must be a positive number"),
        (["--engine", "cloud"], "--engine must be one of local, ray"),
    ],
)
def test_bad_segment_options_are_usage_errors(
    clip: Path, tmp_path: Path, option: list[str], message: str
) -> None:
    result = vt("transcode", str(clip), str(tmp_path / "o.mp4"), *option)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_image_sequence_output_runs_in_one_pass(clip: Path, tmp_path: Path) -> None:
    result = vt(
        "transcode", str(clip), str(tmp_path / "frames/%04d.png"), "--resume", "--end", "0.5"
    )
    assert result.returncode == 0, result.stderr
    assert "--resume: image sequences are written frame by frame: running in one pass" in " ".join(
        result.stderr.split()
    )
    assert len(list((tmp_path / "frames").glob("*.png"))) == 13


def test_a_folder_that_is_not_vt_state_is_not_used(clip: Path, tmp_path: Path) -> None:
    state = resume_folder(tmp_path / "o.mkv")
    state.mkdir()
    (state / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds files vt did not write"):
        process_video(
            clip, tmp_path / "o.mkv", config=LOSSLESS, options=PipelineOptions(resume=True)
        )
    assert (state / "notes.txt").read_text() == "mine"


def test_resume_folder_never_looks_stale(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    # an output whose own name looks like a dead run's temporary: its state is still kept
    state = tmp_path / f".x.mp4.vt-tmp-{dead.pid}-0123abcd.mp4.vt-resume"
    state.mkdir()
    clean_stale(tmp_path)
    assert state.is_dir()


def test_source_must_be_a_file_for_segments(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="vt")
    report = process_video(
        Source.parse(clip.read_bytes()),
        tmp_path / "o.mkv",
        config=LOSSLESS,
        options=PipelineOptions(workers=2),
    )
    assert report.segments is None and "the input is not a video file" in caplog.text


def test_processor_errors_in_a_worker_fail_the_run(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(VtError, match="failed"):
        process_video(
            clip,
            tmp_path / "o.mkv",
            [Broken()],
            config=LOSSLESS,
            options=PipelineOptions(workers=2, segment_seconds=0.5),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


class Broken(FrameProcessor):
    name = "broken"

    def process(self, batch: FrameBatch) -> FrameBatch:
        raise RuntimeError("no")


@pytest.mark.slow  # an embedded Ray starts in ~10 s on a busy 2-core machine
def test_segments_on_ray_actors_write_the_same_file(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'vt[ray]'")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(VT_LOAD_PLUGINS="", RAY_USAGE_STATS_ENABLED="0")
    common = [VT, "transcode", "clip.mp4", "--preset", "ultrafast", "--segment-seconds", "0.5"]
    ray = subprocess.run(
        [*common, "ray.mp4", "--workers", "3", "--engine", "ray", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ray.returncode == 0, ray.stderr
    written_by = json.loads(ray.stdout)["segments"]["written_by"]
    assert set(written_by) - {"main"}, written_by  # Ray actors wrote some (relative paths)
    local = subprocess.run(
        [*common, "local.mp4"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "ray.mp4").read_bytes() == (tmp_path / "local.mp4").read_bytes()
