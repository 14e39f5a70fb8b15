"""`vt compare`: one pass over two videos with the core's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vt.cli import create_app
from vt.compare import compare_videos
from vt.media.encode import EncoderConfig
from vt.media.pipeline import process_video

runner = CliRunner()


def test_compare_a_processed_clip_with_its_source(bigbuckbunny: Path, tmp_path: Path) -> None:
    out = tmp_path / "bbb.mp4"
    process_video(bigbuckbunny, out, config=EncoderConfig(preset="ultrafast", crf=30))
    result = compare_videos(bigbuckbunny, out, max_frames=12)
    assert result["frames"] == {"a": 12, "b": 12, "equal": True}
    assert result["max_pts_difference"] == 0.0
    assert 25 < result["quality"]["psnr_mean"] < 45
    assert 0.8 < result["quality"]["ssim_mean"] < 1.0
    assert 1.0 < result["warping_error"]["ratio"] < 5.0  # crf 30 adds some flicker
    assert abs(result["audio_offset"]) < 0.001


def test_compare_identical_files_reports_identity(carphone: Path) -> None:
    result = compare_videos(carphone, carphone, max_frames=5, per_frame=True)
    assert result["quality"]["identical"] is True and result["quality"]["psnr_mean"] is None
    assert result["quality"]["ssim_per_frame"] == pytest.approx([1.0] * 5)
    assert result["warping_error"]["ratio"] == 1.0
    assert result["audio_offset"] is None  # carphone has no audio


def test_compare_cli_json_and_text(carphone: Path, carphone_distorted: Path) -> None:
    app = create_app()
    result = runner.invoke(
        app, ["compare", str(carphone), str(carphone_distorted), "--json", "--max-frames", "6"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["frames"]["equal"] and 20 < data["quality"]["psnr_mean"] < 30
    text = runner.invoke(
        app, ["compare", str(carphone), str(carphone_distorted), "--max-frames", "6"]
    )
    assert "PSNR        mean" in text.output and "warping err" in text.output


def test_compare_reports_different_frame_counts(carphone: Path, tmp_path: Path) -> None:
    from vt.media.pipeline import PipelineOptions

    short = tmp_path / "short.mp4"
    process_video(
        carphone, short, config=EncoderConfig(preset="ultrafast"), options=PipelineOptions(end=1.0)
    )
    result = compare_videos(carphone, short, warping=False)
    assert result["frames"]["a"] == 120 and result["frames"]["b"] == 30
    assert result["frames"]["equal"] is False
