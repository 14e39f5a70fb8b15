"""``vt qwen-preprocess``: plan, outputs, JSON, and one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vt.cli import create_app

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    return create_app()


def invoke(app, *args):
    return runner.invoke(app, ["qwen-preprocess", *map(str, args)])


def test_plan_prints_frames_size_and_tokens(app, bikes):
    result = invoke(app, bikes, "--plan")
    assert result.exit_code == 0, result.output
    assert "20 frames" in result.output and "644x280" in result.output
    assert "2300 tokens" in result.output


def test_plan_json_for_several_inputs(app, bikes, carphone):
    result = invoke(
        app, bikes, carphone, "--plan", "--json", "--profile", "qwen3-vl", "--nframes", "4"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["videos"]
    assert [v["num_frames"] for v in data] == [4, 4]
    assert data[0]["resolution"] == [256, 640] and data[0]["profile"] == "qwen3-vl"


def test_plan_does_not_decode_pixels(app, bikes, monkeypatch):
    import vt.media.decode as decode

    def boom(*a, **k):
        raise AssertionError("decoded pixels during --plan")

    monkeypatch.setattr(decode.VideoReader, "frames_at", boom)
    result = invoke(app, bikes, "--plan", "--decoders", "pyav")
    assert result.exit_code == 0, result.output


def test_out_pt_and_folder(app, bikes, tmp_path):
    out = tmp_path / "v.pt"
    result = invoke(app, bikes, "--nframes", "4", "--out", out, "--no-cache", "--dtype", "uint8")
    assert result.exit_code == 0, result.output
    data = torch.load(out, weights_only=False)
    assert data["frames"].shape == (4, 3, 280, 644) and data["frames"].dtype == torch.uint8
    assert data["video_metadata"]["frames_indices"] == [0, 83, 166, 249]
    folder = tmp_path / "frames"
    result = invoke(app, bikes, "--nframes", "2", "--out", folder, "--no-cache")
    assert result.exit_code == 0, result.output
    assert len(list(folder.glob("*.png"))) == 2
    result = invoke(app, bikes, "--nframes", "4", "--out", out, "--no-cache")
    assert result.exit_code == 1 and "exists" in result.output


def test_openai_json_to_stdout(app, bikes):
    result = invoke(
        app,
        bikes,
        "--profile",
        "api",
        "--nframes",
        "2",
        "--format",
        "openai",
        "--json",
        "--no-cache",
        "--prompt",
        "hi",
    )
    assert result.exit_code == 0, result.output
    video = json.loads(result.output)["videos"][0]
    assert video["messages"][0]["content"][0]["text"] == "hi"


def test_usage_errors_exit_2_and_input_errors_exit_1(app, bikes, tmp_path):
    result = invoke(app, bikes, "--fps", "2", "--nframes", "4")
    assert result.exit_code == 2 and "not both" in result.output
    result = invoke(app, bikes, "--nframes", "400", "--plan")
    assert result.exit_code == 2 and "only 250" in result.output
    result = invoke(app, tmp_path / "missing.mp4", "--plan")
    assert result.exit_code == 1 and "not found" in result.output
    result = invoke(app, bikes, "--format", "gif")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_console_script_end_to_end(bikes, tmp_path):
    vt = shutil.which("vt", path=str(Path(sys.executable).parent))
    assert vt
    env = {**os.environ, "VT_LOAD_PLUGINS": "qwen-preprocess"}  # other plugins stay out
    proc = subprocess.run(
        [vt, "qwen-preprocess", str(bikes), "--plan", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["videos"][0]["total_tokens"] == 2300
    proc = subprocess.run(
        [vt, "qwen-preprocess", "data:video/mp4;base64,@@", "--plan"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "invalid base64" in proc.stderr


def test_output_and_decoder_spelled_as_in_every_vt_command(app, bikes, tmp_path):
    out = tmp_path / "v.npz"
    result = invoke(
        app, bikes, "--nframes", "2", "-o", out, "--no-cache", "--decoder", "decord", "--json"
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and json.loads(result.stdout)["videos"][0]["decoder"] == "decord"
    both = invoke(app, bikes, "--plan", "--decoder", "pyav", "--decoders", "pyav,decord")
    assert both.exit_code == 2 and "not both" in both.output
