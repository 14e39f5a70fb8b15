"""``vt kizuna`` end to end: a real clip with audio, 10-bit input, --end, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from vt.cli import create_app
from vt.compare import compare_videos
from vt.metrics import audio_offset, read_audio
from vt.testing import make_video

runner = CliRunner()
FAST = ["--preset", "ultrafast", "--crf", "23"]


def _invoke(host, *args: str):
    return runner.invoke(create_app(host), ["kizuna", *args], catch_exceptions=False)


def _probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        frames = list(c.decode(video=0))
        return {
            "size": (video.codec_context.width, video.codec_context.height),
            "pix_fmt": video.codec_context.pix_fmt,
            "frames": len(frames),
            "times": [round(float(f.pts * f.time_base), 4) for f in frames],
            "audio": [s.codec_context.name for s in c.streams.audio],
        }


def _one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vt: error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.slow  # 720p -> 1440p: about a second a frame on a busy 2-core machine
def test_real_clip_with_audio_end_to_end(host, bigbuckbunny: Path, tmp_path: Path) -> None:
    out = tmp_path / "bbb.mp4"
    result = _invoke(
        host, str(bigbuckbunny), "-o", str(out), "--start", "1", "--end", "1.2", "--json", *FAST
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames_in"] == report["frames_out"] == 5
    assert report["size_out"] == [2560, 1440] and report["audio"] == "copied"
    assert set(report["stage_share"]) == {
        "kizuna-normalize",
        "kizuna-reconstruct",
        "kizuna-upscale",
        "kizuna-enhance",
    }
    probe = _probe(out)
    assert probe["frames"] == 5 and probe["size"] == (2560, 1440) and probe["audio"] == ["aac"]
    assert probe["times"][0] == 0.0  # a cut starts at zero, like every vt command
    # the output's audio is the source's from 1.0 s on, in sync to within 1 ms
    rate = 16000
    source, _ = read_audio(bigbuckbunny, rate)
    written, _ = read_audio(out, rate)
    span = min(len(written), int(0.2 * rate))
    assert span > 0.15 * rate
    offset = audio_offset(source[rate : rate + span], written[:span], rate, max_lag=0.05)
    assert abs(offset) < 0.001


def test_frame_count_and_audio_sync_hold_with_temporal(host, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=30, width=64, height=48, fps=25, audio=True)
    out = tmp_path / "steady.mp4"
    result = _invoke(host, str(clip), "-o", str(out), "--temporal", *FAST)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "temporal" in result.output
    check = compare_videos(clip, out, warping=False)
    assert check["frames"]["equal"] and check["frames"]["b"] == 30
    assert check["max_pts_difference"] < 1e-3
    assert abs(check["audio_offset"]) < 0.001  # A/V offset under 1 ms


def test_temporal_flushes_held_frames_at_end(host, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=25, width=48, height=32, fps=25)
    out = tmp_path / "cut.mkv"
    result = _invoke(
        host,
        str(clip),
        "-o",
        str(out),
        "--temporal-strength",
        "0.8",
        "--end",
        "0.5",
        "--json",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames_in"] == report["frames_out"] == 13  # 0.00 .. 0.48 s
    assert "kizuna-temporal" in report["stages"]
    assert _probe(out)["times"] == [round(i / 25, 4) for i in range(13)]


def test_ten_bit_input_stays_deep(host, tmp_path: Path) -> None:
    clip = make_video(
        tmp_path / "deep.mkv",
        frames=4,
        width=48,
        height=32,
        fps=25,
        pixel_format="yuv420p10le",
        bit_depth=10,
    )
    out = tmp_path / "deep_out.mkv"
    result = _invoke(host, str(clip), "-o", str(out), "--scale", "4", "--json", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pipeline"]["pixel_format"] == "yuv420p10le"
    assert _probe(out)["size"] == (192, 128)


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--scale", "3"], 2, "2 or 4"),
        (["--temporal-strength", "1.5"], 2, "between 0 and 1"),
        (["--temporal", "--temporal-strength", "-0.1"], 2, "between 0 and 1"),
        (["--tile", "64"], 2, "--tile is an AI option"),
        (["--on-frame-error", "skip"], 2, "abort"),
    ],
)
def test_bad_options_one_line_nothing_written(
    host, tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=3, width=32, height=24)
    out = tmp_path / "never.mp4"
    result = _invoke(host, str(clip), "-o", str(out), *args)
    assert result.exit_code == code, result.output
    assert words in _one_error_line(result)
    assert not out.exists() and not list(tmp_path.glob(".*vt-tmp*"))


def test_ai_without_vt_upscale_names_the_package(host, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=3, width=32, height=24)
    out = tmp_path / "never.mp4"
    result = _invoke(host, str(clip), "-o", str(out), "--ai")
    assert result.exit_code == 1
    assert "pip install vt-upscale" in _one_error_line(result)
    assert not out.exists()


def test_missing_input_is_one_line(host, tmp_path: Path) -> None:
    result = _invoke(host, str(tmp_path / "nope.mp4"))
    assert result.exit_code == 1
    assert "not found" in _one_error_line(result)


def test_same_input_and_options_give_identical_frames(host, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=6, width=64, height=48)
    outs = []
    for name in ("a.mkv", "b.mkv"):
        out = tmp_path / name
        assert _invoke(host, str(clip), "-o", str(out), "--codec", "ffv1", "-q").exit_code == 0
        with av.open(str(out)) as c:
            outs.append(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))
    assert np.array_equal(outs[0], outs[1])
