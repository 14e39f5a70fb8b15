"""Issue 8 regressions for ``vt upscale``: usage errors first, alone, and nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vt.testing import make_video

VT = shutil.which("vt", path=str(Path(sys.executable).parent))


def upscale(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VT_LOAD_PLUGINS="upscale")  # other installed plugins must not matter
    return subprocess.run(
        [VT, "upscale", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", frames=6, width=48, height=32, fps=25)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--scale", "nan"], "--scale must be a positive number"),
        (["--scale", "inf"], "--scale must be a positive number"),
        (["--scale", "1000"], "at most 16384 pixels per side"),
        (["--size", "99999x99999"], "at most 16384 pixels per side"),
        (["--size", "16385x-1"], "at most 16384 pixels per side"),
        (["--start", "100"], "no frames selected"),
        (["--model", "no/such/model.pth"], "model file not found"),
        (["--model", "typo-model-name"], "unknown model"),
    ],
)
def test_bad_values_are_one_line_usage_errors_before_any_output(
    clip: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    result = upscale(str(clip), "-o", str(tmp_path / "out.mp4"), *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # the error comes first and alone: no "upscaling with ..." line, no fallback warning
    assert len(lines) == 1 and lines[0].startswith("vt: error:"), result.stderr
    assert words in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_missing_input_is_reported_before_the_model_line(tmp_path: Path) -> None:
    result = upscale(str(tmp_path / "missing.mp4"), "--scale", "2")
    assert result.returncode == 1
    assert "upscaling with" not in result.stderr
    assert "input not found" in result.stderr


def test_a_good_run_still_says_which_method_ran(clip: Path, tmp_path: Path) -> None:
    result = upscale(str(clip), "-o", str(tmp_path / "out.mp4"), "--preset", "ultrafast")
    assert result.returncode == 0, result.stderr
    assert "upscaling with lanczos x2" in result.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0
