"""The media engine end to end: nothing lost between input and output."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import av
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vt.cli import create_app
from vt.cli_media import MediaOptions, media_options
from vt.errors import UsageError, VtError
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import probe
from vt.media.pipeline import PipelineOptions, process_video
from vt.media.processing import FrameProcessor
from vt.metrics import audio_offset, read_audio
from vt.processors.resize import Resize
from vt.testing import make_video

FAST = EncoderConfig(preset="ultrafast")
runner = CliRunner()


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(round(float(f.pts * f.time_base) * 1e6) for f in c.decode(s))


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".vt-tmp-" in p.name]


def test_real_clip_keeps_frames_pts_audio_and_sync(bigbuckbunny: Path, tmp_path: Path) -> None:
    out = tmp_path / "bbb.mp4"
    report = process_video(bigbuckbunny, out, config=FAST)
    assert report.frames_in == report.frames_out == 132
    assert report.audio == "copied"
    assert video_pts(out) == video_pts(bigbuckbunny)
    info = probe(out)
    assert info.video.frame_count == 132 and (info.video.width, info.video.height) == (1280, 720)
    assert info.audio[0].codec == "aac" and info.audio[0].channels == 6
    a, rate = read_audio(bigbuckbunny, 16000)
    b, _ = read_audio(out, 16000)
    assert abs(audio_offset(a, b, rate)) < 0.001
    assert not partials(tmp_path)


def test_vfr_timestamps_survive_exactly(tmp_path: Path) -> None:
    pts = [0, 40, 90, 100, 180, 300, 310, 400, 433, 500]
    src = make_video(tmp_path / "vfr.mkv", frames=len(pts), pts=pts, width=64, height=48)
    assert probe(src).video.vfr is True
    out = tmp_path / "out.mkv"
    process_video(src, out, config=FAST)
    assert video_pts(out) == [p * 1000 for p in pts]
    out_mp4 = tmp_path / "out.mp4"
    process_video(src, out_mp4, [Resize(scale=2)], config=FAST)
    assert video_pts(out_mp4) == [p * 1000 for p in pts]
    assert probe(out_mp4).video.vfr is True


def test_audio_and_subtitles_are_copied_to_mkv(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "in.mkv",
        frames=48,
        audio=True,
        subtitles=[(0.2, 0.8, "hello"), (1.0, 1.5, "world")],
        metadata={"title": "My clip"},
    )
    out = tmp_path / "out.mkv"
    report = process_video(src, out, [Resize(scale=2)], config=FAST)
    assert (report.audio, report.subtitles) == ("copied", "copied")
    info = probe(out)
    assert [s.codec for s in info.subtitles] == ["subrip"] or info.subtitles[0].codec == "srt"
    assert info.metadata.get("title") == "My clip"
    with av.open(str(out)) as c:
        texts = [bytes(p).decode() for p in c.demux(c.streams.subtitles[0]) if p.size]
    assert texts == ["hello", "world"]
    a, rate = read_audio(src, 16000)
    b, _ = read_audio(out, 16000)
    assert abs(audio_offset(a, b, rate)) < 0.001


def test_text_subtitles_are_converted_for_mp4_and_webm(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "in.mkv",
        frames=48,
        audio=True,
        subtitles=[(0.2, 0.8, "hello"), (1.0, 1.5, "world")],
    )
    for ext, codec in (("mp4", "mov_text"), ("webm", "webvtt")):
        out = tmp_path / f"out.{ext}"
        config = FAST if ext == "mp4" else EncoderConfig(codec="libvpx-vp9", preset="ultrafast")
        report = process_video(src, out, config=config)
        assert report.subtitles == "converted" and report.audio in ("copied", "re-encoded")
        assert any(f"converted to {codec}" in w for w in report.warnings)
        with av.open(str(out)) as c:
            stream = c.streams.subtitles[0]
            assert stream.codec_context.name == codec
            cues = []
            for packet in c.demux(stream):
                for sub in stream.decode(packet):
                    text = getattr(sub, "dialogue", b"").decode()
                    if text:
                        cues.append((round(float(packet.pts * packet.time_base), 3), text))
        assert cues == [(0.2, "hello"), (1.0, "world")]


def test_audio_reencoded_when_container_cannot_hold_it(bigbuckbunny: Path, tmp_path: Path) -> None:
    out = tmp_path / "bbb.webm"
    report = process_video(
        bigbuckbunny,
        out,
        [Resize(size=(160, 90))],
        config=EncoderConfig(codec="libvpx-vp9", preset="ultrafast", crf=40),
    )
    assert report.audio == "re-encoded"
    assert any("re-encoded" in w for w in report.warnings)
    info = probe(out)
    assert info.audio and info.audio[0].codec == "opus"
    assert info.video.frame_count == 132


def test_no_audio_drops_audio_on_request(bigbuckbunny: Path, tmp_path: Path) -> None:
    out = tmp_path / "silent.mp4"
    report = process_video(
        bigbuckbunny,
        out,
        [Resize(size=(128, 72))],
        config=FAST,
        options=PipelineOptions(audio=False),
    )
    assert report.audio == "dropped" and probe(out).audio == []


def test_rotation_sar_and_colour_metadata_are_carried(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "rot.mp4",
        frames=12,
        rotation=90,
        colors=(1, 1, 1, 1),
        sample_aspect_ratio=Fraction(4, 3),
    )
    out = tmp_path / "out.mp4"
    process_video(src, out, [Resize(scale=2)], config=FAST)
    v = probe(out).video
    assert v.rotation == 90
    assert v.sample_aspect_ratio == Fraction(4, 3)
    assert (v.color_range, v.color_primaries, v.color_trc, v.color_space) == (
        "tv",
        "bt709",
        "bt709",
        "bt709",
    )
    assert (v.width, v.height) == (128, 96)


def test_odd_dimensions_are_kept(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "odd.mkv", frames=6, width=853, height=481, codec="ffv1", pixel_format="yuv420p"
    )
    out = tmp_path / "odd.mp4"
    report = process_video(src, out, config=FAST)
    v = probe(out).video
    assert (v.width, v.height) == (853, 481) and report.frames_out == 6
    assert v.pixel_format == "yuv444p"


def test_ten_bit_input_stays_ten_bit(tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "10bit.mkv",
        frames=6,
        codec="libx265",
        pixel_format="yuv420p10le",
        bit_depth=10,
        options={"x265-params": "log-level=error"},
    )
    out = tmp_path / "out.mkv"
    report = process_video(src, out, [Resize(scale=2)], config=FAST)
    assert report.pixel_format == "yuv420p10le"
    assert probe(out).video.bit_depth == 10
    # the processors saw 16-bit frames, so no precision was lost on the way
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb48le")
    assert frame.dtype == np.uint16 and len(np.unique(frame[..., 0] & 0xFF)) > 4


@pytest.mark.parametrize(
    "codec,ext",
    [
        ("libx265", "mp4"),
        ("libvpx-vp9", "webm"),
        ("libsvtav1", "mkv"),
        ("ffv1", "mkv"),
        ("prores_ks", "mov"),
    ],
)
def test_encoders(codec: str, ext: str, tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=6, width=64, height=64)
    out = tmp_path / f"out.{ext}"
    report = process_video(src, out, config=EncoderConfig(codec=codec, preset="ultrafast"))
    assert report.frames_out == 6 and probe(out).video.frame_count == 6


def test_encoder_options_pass_through(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=30)
    out = tmp_path / "gop.mp4"
    plain = tmp_path / "plain.mp4"
    process_video(src, out, config=EncoderConfig(preset="ultrafast", options={"g": "5"}))
    process_video(src, plain, config=EncoderConfig(preset="ultrafast"))

    def keyframes(path: Path) -> int:
        with av.open(str(path)) as c:
            return sum(p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size)

    assert keyframes(out) >= 6 > keyframes(plain)


class Failing(FrameProcessor):
    name = "failing"

    def __init__(self, bad: set[int], exc: type[BaseException] = RuntimeError) -> None:
        self.bad, self.exc = bad, exc

    def process(self, batch: FrameBatch) -> FrameBatch:
        if set(batch.indices) & self.bad:
            raise self.exc("model exploded")
        return batch.with_images(255 - batch.images)


def test_frame_error_abort_writes_nothing(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=24)
    out = tmp_path / "out.mp4"
    with pytest.raises(VtError, match="failing failed on frame 10: RuntimeError: model exploded"):
        process_video(src, out, [Failing({10})], config=FAST)
    assert not out.exists() and not partials(tmp_path)


def test_frame_error_pass_keeps_every_frame(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=24)
    out = tmp_path / "out.mp4"
    report = process_video(
        src, out, [Failing({3, 7})], config=FAST, options=PipelineOptions(error_policy="pass")
    )
    assert report.frames_out == 24 and report.frame_errors == 2
    assert video_pts(out) == video_pts(src)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    with av.open(str(src)) as c:
        source = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    # failed frames are the source frame; others are inverted
    assert np.abs(frames[3] - source[3]).mean() < 6
    assert np.abs(frames[4] - (255 - source[4])).mean() < 6


def test_interrupt_leaves_no_partial_file(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=24)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        process_video(src, out, [Failing({12}, KeyboardInterrupt)], config=FAST)
    assert not out.exists() and not partials(tmp_path)


class DropsFrames(FrameProcessor):
    name = "dropper"

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        return None if batch.indices[0] == 5 else batch


def test_processor_that_drops_frames_is_an_error(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=12)
    with pytest.raises(VtError, match="11 frames for 12 input frames"):
        process_video(src, tmp_path / "out.mp4", [DropsFrames()], config=FAST)
    assert not (tmp_path / "out.mp4").exists()


class HoldsBack(FrameProcessor):
    """A temporal processor: emits each frame one call late, the last on flush."""

    name = "delay"

    def __init__(self) -> None:
        self.held: FrameBatch | None = None

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        out, self.held = self.held, batch
        return out

    def flush(self) -> list[FrameBatch]:
        return [self.held] if self.held is not None else []


def test_temporal_processor_flush_keeps_every_frame(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", frames=10, pts=[0, 5, 30, 31, 60, 90, 91, 92, 150, 200])
    out = tmp_path / "out.mkv"
    report = process_video(src, out, [HoldsBack()], config=FAST)
    assert report.frames_out == 10 and video_pts(out) == video_pts(src)


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(UsageError, match="--overwrite"):
        process_video(src, out, config=FAST)
    assert out.read_bytes() == b"precious"
    process_video(src, out, config=FAST, options=PipelineOptions(overwrite=True))
    assert probe(out).video.frame_count == 4


def test_output_equal_to_input_is_refused(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=4)
    before = src.read_bytes()
    with pytest.raises(UsageError, match="output is the input"):
        process_video(src, src, config=FAST, options=PipelineOptions(overwrite=True))
    assert src.read_bytes() == before


def test_image_sequence_in_and_out(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=5, width=32, height=24)
    frames_dir = tmp_path / "frames"
    report = process_video(src, f"{frames_dir}/%04d.png", config=FAST)
    assert report.frames_out == 5
    assert sorted(p.name for p in frames_dir.glob("*.png")) == [f"{i:04d}.png" for i in range(1, 6)]
    assert (frames_dir / ".vt-frames").is_file()  # marks the folder as vt's to replace
    back = tmp_path / "back.mp4"
    process_video(frames_dir, back, config=FAST)
    assert probe(back).video.frame_count == 5


def test_bytes_source(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=8, audio=True)
    report = process_video(src.read_bytes(), tmp_path / "out.mp4", config=FAST)
    assert report.frames_out == 8 and report.audio == "copied"


def test_cli_transcode_json_summary(carphone: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.mkv"
    result = runner.invoke(
        create_app(),
        ["transcode", str(carphone), str(out), "--preset", "ultrafast", "--json", "-e", "g=10"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames_in"] == report["frames_out"] == 120
    assert report["duration_in"] == pytest.approx(120 * 1001 / 30000, abs=1e-3)
    assert report["fps"] > 0 and report["wall_time"] > 0


def test_cli_bad_encoder_option_is_usage_error(carphone: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        create_app(), ["transcode", str(carphone), str(tmp_path / "x.mp4"), "-e", "novalue"]
    )
    assert result.exit_code == 2 and "key=value" in result.output


def test_frame_format_contract() -> None:
    batch = FrameBatch(np.zeros((2, 4, 6, 3), np.uint8), [0, 1], Fraction(1, 25), [0, 1])
    assert batch.format == FrameFormat(6, 4) and batch.times == [0.0, 0.04]
    with pytest.raises(ValueError):
        FrameBatch(np.zeros((2, 4, 6, 3), np.uint8), [0], Fraction(1, 25), [0, 1])


def test_progress_callback_counts_every_frame(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=20)
    seen: list[tuple[int, int | None]] = []
    process_video(
        src,
        tmp_path / "out.mp4",
        [Resize(scale=0.5)],
        config=FAST,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (20, 20) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_attachments_are_copied_to_mkv_and_reported_otherwise(tmp_path: Path) -> None:
    plain = make_video(tmp_path / "plain.mkv", frames=6)
    src = tmp_path / "with_font.mkv"
    with av.open(str(plain)) as inp, av.open(str(src), "w") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        out.add_attachment("font.ttf", "font/ttf", b"not really a font")
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = v
                out.mux(packet)
    assert len(probe(src).attachments) == 1
    out_mkv = tmp_path / "out.mkv"
    process_video(src, out_mkv, config=FAST)
    with av.open(str(out_mkv)) as c:
        attachments = list(c.streams.attachments)
        assert [a.data for a in attachments] == [b"not really a font"]
    report = process_video(src, tmp_path / "out.mp4", config=FAST)
    assert any("attachment" in w for w in report.warnings)


class Slow(FrameProcessor):
    """Slower than decoding, so an unbounded decode queue would fill with frames."""

    name = "slow"

    def process(self, batch: FrameBatch) -> FrameBatch:
        import time

        time.sleep(0.003)
        return batch


def test_memory_is_bounded_by_a_few_frames(tmp_path: Path) -> None:
    """Peak numpy/Python allocations stay at a few frames however long the video is."""
    import tracemalloc

    width, height, frames = 320, 240, 240
    src = make_video(tmp_path / "long.mp4", frames=frames, width=width, height=height)
    process_video(src, tmp_path / "warm.mp4", [Slow()], config=FAST)  # imports are not frames
    frame_bytes = width * height * 3
    tracemalloc.start()
    try:
        process_video(src, tmp_path / "out.mp4", [Slow()], config=FAST)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # queues of 4 batches each side: ~11 frames measured; unbounded queues reach ~100
    assert peak < 16 * frame_bytes, f"peak {peak / frame_bytes:.1f} frames"


def test_time_range_cuts_every_stream_and_starts_at_zero(
    bigbuckbunny: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cut.mp4"
    report = process_video(
        bigbuckbunny, out, config=FAST, options=PipelineOptions(start=1.0, end=3.0)
    )
    assert report.frames_out == 50  # 25 fps: frames 25..74
    pts = video_pts(out)
    assert len(pts) == 50 and pts[0] == 0 and pts[-1] == 1_960_000
    # the audio is the same stretch of sound: compare with the source from 1 s on
    a, rate = read_audio(bigbuckbunny, 16000)
    b, _ = read_audio(out, 16000)
    assert abs(len(b) / rate - 2.0) < 0.05
    assert abs(audio_offset(a[rate : 3 * rate], b[: 2 * rate], rate)) < 0.025
    # processed path too
    out2 = tmp_path / "cut2.mp4"
    report2 = process_video(
        bigbuckbunny,
        out2,
        [Resize(size=(160, 90))],
        config=FAST,
        options=PipelineOptions(start=1.0, end=3.0),
    )
    assert report2.frames_out == 50 and video_pts(out2) == pts


def test_resize_only_jobs_scale_decoded_frames_without_rgb(tmp_path: Path, monkeypatch) -> None:
    """A chain of native processors never converts frames to RGB arrays."""
    from vt.media.decoders import pyav_reader

    def no_rgb(*args, **kwargs):
        raise AssertionError("RGB conversion in a native job")

    monkeypatch.setattr(pyav_reader, "frame_to_array", no_rgb)
    src = make_video(
        tmp_path / "in.mkv", frames=10, pts=[0, 3, 9, 12, 40, 41, 42, 80, 81, 99], audio=True
    )
    out = tmp_path / "out.mkv"
    report = process_video(src, out, [Resize(scale=2, method="bicubic")], config=FAST)
    assert report.frames_out == 10 and report.audio == "copied"
    assert video_pts(out) == video_pts(src)
    assert (probe(out).video.width, probe(out).video.height) == (128, 96)


def test_resize_images_fast_path_matches_packed_rgb() -> None:
    from vt.processors.resize import METHODS, resize_images

    rng = np.random.default_rng(0)
    for dtype, packed in ((np.uint8, "rgb24"), (np.uint16, "rgb48le")):
        image = rng.integers(0, np.iinfo(dtype).max, (27, 35, 3), dtype=dtype)
        fast = resize_images(image, (61, 50), "lanczos")
        frame = av.VideoFrame.from_ndarray(image, format=packed)
        slow = frame.reformat(width=61, height=50, interpolation=METHODS["lanczos"]).to_ndarray(
            format=packed
        )
        assert fast.dtype == dtype and np.array_equal(fast, slow)


def test_media_options_refuses_a_clashing_parameter() -> None:
    from vt.cli_media import media_options

    def command(input: str, start: float = 0.0, *, media: MediaOptions) -> None:
        pass

    with pytest.raises(TypeError, match="start are already provided by @media_options"):
        media_options(command)


_seen_media: list[tuple[str | None, MediaOptions]] = []


def _command_with_c(
    input: str,
    control: Annotated[str | None, typer.Option("--control", "-c")] = None,
    *,
    media: MediaOptions,
) -> None:
    _seen_media.append((control, media))


def test_media_options_take_per_command_defaults_and_yield_short_flags() -> None:
    """``@media_options(codec=…, crf=…)`` changes one command's defaults; a short flag the
    command declares itself (``-c``) wins over the shared option's alias."""
    seen = _seen_media
    command = media_options(codec="libx265", crf=26)(_command_with_c)
    app = typer.Typer()
    app.command()(command)
    result = runner.invoke(app, ["in.mp4", "-c", "canny"])
    assert result.exit_code == 0, result.output
    control, media = seen[-1]
    assert control == "canny"
    assert (media.encoder.codec, media.encoder.crf) == ("libx265", 26)
    result = runner.invoke(app, ["in.mp4", "--codec", "ffv1", "--crf", "3"])
    assert result.exit_code == 0, result.output
    assert (seen[-1][1].encoder.codec, seen[-1][1].encoder.crf) == ("ffv1", 3)
    with pytest.raises(TypeError, match="no shared option"):
        media_options(codecs="x")(command)


@pytest.mark.parametrize(
    "container,codec",
    [
        ("avi", "mpeg4"),
        ("mov", "libx264"),
        ("webm", "libvpx-vp9"),
        ("ts", "libx264"),
        ("mkv", "ffv1"),
    ],
)
def test_input_containers(container: str, codec: str, tmp_path: Path) -> None:
    src = make_video(
        tmp_path / f"in.{container}",
        frames=12,
        codec=codec,
        pixel_format="yuv420p",
        audio=container != "avi",
        audio_codec="libopus" if container == "webm" else "aac",
    )
    out = tmp_path / "out.mkv"
    report = process_video(src, out, config=FAST)
    assert report.frames_in == report.frames_out == 12
    assert probe(out).video.frame_count == 12


def test_write_video_from_generated_frames(tmp_path: Path) -> None:
    """Generated frames (no source video) are encoded atomically at the given fps."""
    from vt.media.pipeline import write_video

    def frames():
        for start in range(0, 10, 4):
            n = min(4, 10 - start)
            images = np.stack([np.full((48, 64, 3), 20 * (start + i), np.uint8) for i in range(n)])
            yield FrameBatch(images, [None] * n, Fraction(1, 8), list(range(start, start + n)))

    out = tmp_path / "gen.mp4"
    report = write_video(frames(), out, fps=8, config=FAST, metadata={"title": "generated"})
    assert report.frames_out == 10 and report.duration_out == pytest.approx(1.25)
    info = probe(out)
    assert info.video.frame_count == 10 and float(info.video.fps) == pytest.approx(8)
    assert info.metadata.get("title") == "generated"
    assert video_pts(out) == [i * 125_000 for i in range(10)]

    def bad():
        yield FrameBatch(np.zeros((1, 48, 64, 3), np.uint8), [None], Fraction(1, 8), [0])
        yield FrameBatch(np.zeros((1, 40, 64, 3), np.uint8), [None], Fraction(1, 8), [1])

    with pytest.raises(UsageError, match="frame size changed"):
        write_video(bad(), tmp_path / "bad.mp4", fps=8, config=FAST)
    assert not (tmp_path / "bad.mp4").exists() and not partials(tmp_path)


def test_run_video_job_extra_report_fields_and_silent_first_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vt.cli_media import run_video_job

    src = make_video(tmp_path / "in.mp4", frames=4)
    media = MediaOptions(json=True)
    run_video_job(src, tmp_path / "a.mp4", [], media, summary=False)
    assert capsys.readouterr().out == ""
    report = run_video_job(
        src, tmp_path / "b.mp4", [], media, extra=lambda r: {"mine": {"frames": r.frames_out}}
    )
    data = json.loads(capsys.readouterr().out)
    assert data["mine"] == {"frames": 4} and data["frames_out"] == report.frames_out == 4


def test_garbage_decode_timestamps_are_replaced_by_pts() -> None:
    """libx265 gives one- and two-frame streams uninitialised DTS (0x7f7f… seen here); valid
    reordered DTS (B-frames: DTS before PTS) are kept."""
    from vt.media.encode import fix_garbage_dts

    def packet(pts: int, dts: int) -> av.Packet:
        p = av.Packet(b"x")
        p.pts, p.dts, p.time_base = pts, dts, Fraction(1, 30000)
        return p

    garbage = [
        packet(0, 9187201950435737472),
        packet(1001, 9187201950435738473),
        packet(2002, -9187201950435737472),
    ]
    fix_garbage_dts(garbage)
    assert [p.dts for p in garbage] == [0, 1001, 2002]
    reordered = [packet(0, -2002), packet(3003, -1001), packet(1001, 0)]
    fix_garbage_dts(reordered)
    assert [p.dts for p in reordered] == [-2002, -1001, 0]
