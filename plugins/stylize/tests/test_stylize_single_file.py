"""``vt stylize --model-id X.safetensors|X.ckpt``: an original-format Stable Diffusion
checkpoint (the tiny pipeline written as one file by ``vt.testing.sd_single_file``) stylises a
real clip exactly as the diffusers folder it came from."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from stylize_helpers import fake_hub, frames_of
from typer.testing import CliRunner

from vt.cli import create_app
from vt.testing import sample_clip

runner = CliRunner()
# lossless output, so that equal frames in means equal frames out
FAST = ["--steps", "2", "--max-res", "56", "--codec", "ffv1", "--end", "0.1", "--json"]


@pytest.fixture(scope="session")
def single_files(models: dict[str, Path]) -> dict[str, Path]:
    from vt.testing import sd_single_file

    folder = models["sd"].parent / "single-files"
    folder.mkdir(exist_ok=True)
    return {
        suffix: sd_single_file(models["sd"], folder / f"tiny.{suffix}")
        for suffix in ("safetensors", "ckpt")
    }


def _clip(tmp_path: Path) -> Path:
    clip = tmp_path / "carphone.mp4"
    shutil.copy(sample_clip("carphone_pristine"), clip)
    return clip


def _stylize(host: object, clip: Path, out: Path, *args: str) -> dict[str, object]:
    result = runner.invoke(
        create_app(host),
        ["stylize", str(clip), "-p", "anime style", *FAST, "-o", str(out), *args],
    )
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("control", [False, True], ids=["img2img", "controlnet"])
def test_single_file_checkpoint_gives_the_folders_frames(
    host: object,
    models: dict[str, Path],
    single_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    control: bool,
) -> None:
    """Bit-identical frames: the file holds the folder's very tensors (renamed, and the VAE's
    attention matrices as 1x1 convolutions, a lossless reshape), the configs are the folder's,
    and one CPU thread computes the same operations in the same order."""
    monkeypatch.setenv(
        "HF_HUB_CACHE", str(fake_hub(tmp_path / "hub", "tiny-org/tiny-sd", models["sd"]))
    )
    clip = _clip(tmp_path)
    extra = ["-c", str(models["controlnet"])] if control else []
    runs = {
        "folder": ["-m", str(models["sd"])],
        "safetensors": [
            "-m",
            str(single_files["safetensors"]),
            "--model-config",
            str(models["sd"]),
        ],
        # the configs as a Hugging Face id, read from the cache
        "ckpt": ["-m", str(single_files["ckpt"]), "--model-config", "tiny-org/tiny-sd"],
    }
    frames = {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.mkv"
        report = _stylize(host, clip, out, *args, *extra)
        stylize = report["stylize"]
        assert isinstance(stylize, dict)
        assert stylize["pipeline"] == ("controlnet" if control else "img2img")
        assert Path(stylize["model"]["path"]) == Path(args[1]).resolve()
        frames[name] = frames_of(out)[0]
    assert len(frames["folder"]) == 3
    for name in ("safetensors", "ckpt"):
        assert len(frames[name]) == 3
        assert all(np.array_equal(a, b) for a, b in zip(frames[name], frames["folder"])), name


@pytest.mark.parametrize("suffix", ["safetensors", "ckpt"])
def test_single_file_without_model_config_offline_is_one_line(
    host: object, single_files: dict[str, Path], tmp_path: Path, suffix: str
) -> None:
    clip = _clip(tmp_path)
    out = tmp_path / "out.mkv"
    result = runner.invoke(
        create_app(host),
        ["stylize", str(clip), "-p", "x", "-m", str(single_files[suffix]), *FAST, "-o", str(out)],
    )
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("vt: error: "), result.stderr
    assert f"tiny.{suffix} is a single-file checkpoint" in lines[-1]
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in lines[-1]
    assert "HF_HUB_OFFLINE=1" in lines[-1] and "pass --model-config" in lines[-1]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carphone.mp4"]


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_ckpt_with_code_is_refused_and_never_run(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    from vt.testing import sd_ldm_state_dict

    clip = _clip(tmp_path)
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": sd_ldm_state_dict(models["sd"]), "hook": _RunsCode(marker)}, evil)
    out = tmp_path / "out.mkv"
    args = ["-m", str(evil), "--model-config", str(models["sd"]), "-o", str(out)]
    result = runner.invoke(create_app(host), ["stylize", str(clip), "-p", "x", *FAST, *args])
    assert result.exit_code == 1, result.output
    assert "evil.ckpt: refused: its pickle holds objects other than tensors" in result.stderr
    assert "Traceback" not in result.output
    assert not marker.exists() and not out.exists()
