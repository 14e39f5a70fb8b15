"""``vt stylize`` end to end on real clips through the core pipeline (tiny random models)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stylize_helpers import fake_hub, frames_of
from typer.testing import CliRunner

from vt.cli import create_app
from vt.media.info import probe
from vt.metrics import read_audio
from vt.testing import make_video, sample_clip

runner = CliRunner()
# 56 lines: carphone becomes 72x56. The libx265 in PyAV 18.1's wheel corrupts the heap on
# frames about 48 pixels wide or less (40x32 and 48x64 abort within a few hundred encodes;
# 56x200, 62x64 and 64x48 do not), so the tests keep libx265's frames wider than that.
FAST = ["--steps", "2", "--max-res", "56", "--preset", "ultrafast"]


def _invoke(host: object, *args: str) -> object:
    return runner.invoke(create_app(host), ["stylize", *args])


def _clip(tmp_path: Path, name: str = "carphone_pristine") -> Path:
    """A copy of a real clip in ``tmp_path`` (the default output lands beside it)."""
    target = tmp_path / f"{name.split('_')[0].replace('bigbuck', '')}.mp4"
    shutil.copy(sample_clip(name), target)
    return target


def _source_pts(path: Path, count: int) -> list[int]:
    return frames_of(path)[1][:count]


def test_default_output_keeps_frames_timing_and_reports_json(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    clip = _clip(tmp_path)
    result = _invoke(
        host,
        str(clip),
        "-p",
        "anime style",
        "-m",
        str(models["sd"]),
        *FAST,
        "--end",
        "0.1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "carphone_stylized.mp4"
    images, pts, facts = frames_of(out)
    assert facts["codec"] == "hevc" and facts["size"] == (72, 56)
    assert len(images) == 3 and pts == _source_pts(clip, 3)
    report = json.loads(result.stdout)
    assert report["frames_in"] == report["frames_out"] == 3
    s = report["stylize"]
    assert s["pipeline"] == "img2img" and s["size"] == [72, 56] and s["noise"] == "shared"
    assert s["model"]["source"] == "path" and s["seed"] == 0
    w = s["warping_error"]
    assert w["pairs"] == 2 and w["ratio"] > 0 and np.isfinite(w["ratio"])


def test_audio_and_length_follow_the_source(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    clip = _clip(tmp_path, "bigbuckbunny")
    out = tmp_path / "bunny.mkv"
    result = _invoke(
        host,
        str(clip),
        "-p",
        "oil painting",
        "-m",
        str(models["sd"]),
        *FAST,
        "--end",
        "0.2",
        "-o",
        str(out),
        "--json",
        "--cross-frame-attention",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["audio"] == "copied" and report["frames_in"] == report["frames_out"]
    assert len(probe(out).audio) == 1
    samples, rate = read_audio(out)
    assert abs(len(samples) / rate - 0.2) < 0.05


def test_vfr_timestamps_and_rotation_are_kept(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    pts = [0, 40, 120, 130, 300]
    clip = make_video(tmp_path / "vfr.mp4", frames=5, width=64, height=48, pts=pts, rotation=90)
    result = _invoke(host, str(clip), "-p", "sketch", "-m", str(models["sd"]), *FAST)
    assert result.exit_code == 0, result.output
    out = tmp_path / "vfr_stylized.mp4"
    src, dst = frames_of(clip), frames_of(out)
    assert [p * src[2]["time_base"] for p in src[1]] == [p * dst[2]["time_base"] for p in dst[1]]
    assert probe(out).video.rotation == probe(clip).video.rotation == 90


def test_same_seed_same_video_and_cpu_only_options_are_notes(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    clip = _clip(tmp_path)
    outs = []
    for name, extra in (("a.mkv", ["--cpu-offload", "--xformers"]), ("b.mkv", [])):
        outs.append(tmp_path / name)
        result = _invoke(
            host,
            str(clip),
            "-p",
            "anime style",
            "-m",
            str(models["sd"]),
            *FAST,
            "--end",
            "0.05",
            "--codec",
            "ffv1",
            "-o",
            str(outs[-1]),
            "--noise",
            "fresh",
            "--seed",
            "11",
            *extra,
        )
        assert result.exit_code == 0, result.output
        if extra:
            assert "vt: note: --cpu-offload needs a CUDA device" in result.stderr
            assert "vt: note: --xformers needs a CUDA device" in result.stderr
    a, b = frames_of(outs[0])[0], frames_of(outs[1])[0]
    assert len(a) == len(b) == 2 and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", ["controlnet", "animatediff", "animatediff-controlnet"])
def test_controlnet_and_animatediff_end_to_end(
    host: object, models: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    clip = _clip(tmp_path)
    extra = []
    if "controlnet" in kind:
        extra += ["-c", str(models["controlnet"])]
    if "animatediff" in kind:
        extra += [
            "--animatediff",
            "--motion-adapter",
            str(models["motion"]),
            "--window",
            "4",
            "--overlap",
            "2",
        ]
    result = _invoke(
        host,
        str(clip),
        "-p",
        "anime style",
        "-m",
        str(models["sd"]),
        *FAST,
        "--end",
        "0.2",
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stylize"]["pipeline"] == kind
    images, pts, facts = frames_of(tmp_path / "carphone_stylized.mp4")
    assert len(images) == 6 and pts == _source_pts(clip, 6) and facts["size"] == (72, 56)


def test_hub_id_resolves_from_the_cache_offline(
    host: object, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = fake_hub(tmp_path / "hub", "tiny-org/tiny-sd", models["sd"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    clip = _clip(tmp_path)
    result = _invoke(
        host,
        str(clip),
        "-p",
        "anime style",
        "-m",
        "tiny-org/tiny-sd",
        *FAST,
        "--end",
        "0.04",
        "--json",
    )
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["stylize"]["model"]
    assert model["source"] == "huggingface-cache" and model["repo_id"] == "tiny-org/tiny-sd"
    result = _invoke(
        host,
        str(clip),
        "-p",
        "anime style",
        "-m",
        "tiny-org/missing",
        *FAST,
        "-o",
        str(tmp_path / "missing.mp4"),
    )
    assert result.exit_code == 1
    assert "tiny-org/missing is not in the Hugging Face cache" in result.stderr
    assert "HF_HUB_OFFLINE=1" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "missing.mp4").exists()


def _upscale_args(models: dict[str, Path], *extra: str) -> list[str]:
    return [
        "-p",
        "anime style",
        "-m",
        str(models["sd"]),
        *FAST,
        "--end",
        "0.05",
        "--upscale",
        "--json",
        *extra,
    ]


def test_upscale_with_packaged_realesrgan(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    clip = _clip(tmp_path)
    result = _invoke(host, str(clip), *_upscale_args(models, "--upscale-height", "0"))
    assert result.exit_code == 0, result.output
    up = json.loads(result.stdout)["stylize"]["upscale"]
    assert up["skipped"] is None and up["size"] == [288, 224]
    assert "RealESRGAN_x4plus" in up["model"] or "realesrgan-x4plus" in up["model"]
    images, _, facts = frames_of(tmp_path / "carphone_stylized.mp4")
    assert facts["size"] == (288, 224) and len(images) == 2


def test_two_passes_keep_audio_and_remove_their_temporary_folder(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    clip = _clip(tmp_path, "bigbuckbunny")
    result = _invoke(
        host, str(clip), *_upscale_args(models, "--upscale-height", "64", "--two-pass")
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stylize"]["two_pass"] is True and report["audio"] == "copied"
    assert report["stylize"]["warping_error"]["pairs"] == 1
    out = tmp_path / "bunny_stylized.mp4"
    images, pts, facts = frames_of(out)
    assert facts["size"] == (110, 64) and facts["audio"] == 1
    assert pts == _source_pts(clip, len(pts)) and len(images) == report["frames_in"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bunny.mp4", "bunny_stylized.mp4"]


def test_out_of_memory_with_both_models_switches_to_two_passes(
    host: object, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from vt_stylize.upscaling import UpscaleStage

    original = UpscaleStage.process
    calls = {"n": 0}

    def first_call_oom(self: UpscaleStage, batch: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            self.inner.process = lambda b: (_ for _ in ()).throw(  # type: ignore[union-attr]
                torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            )
        return original(self, batch)

    monkeypatch.setattr(UpscaleStage, "process", first_call_oom)
    clip = _clip(tmp_path)
    result = _invoke(host, str(clip), *_upscale_args(models, "--upscale-height", "64"))
    assert result.exit_code == 0, result.output
    assert "running in two passes" in result.stderr
    report = json.loads(result.stdout)
    assert report["stylize"]["two_pass"] is True and report["frames_out"] == 2
    assert frames_of(tmp_path / "carphone_stylized.mp4")[2]["size"] == (82, 64)
    assert not [p for p in tmp_path.iterdir() if ".vt-tmp-" in p.name]


@pytest.mark.slow  # a fresh interpreter importing torch and diffusers
def test_upscale_without_vt_upscale_warns_and_keeps_the_stylised_frames(
    models: dict[str, Path], tmp_path: Path
) -> None:
    clip = _clip(tmp_path)
    env = dict(os.environ, VT_LOAD_PLUGINS="stylize", OMP_NUM_THREADS="1")
    vt = [sys.executable, "-m", "vt"]
    proc = subprocess.run(
        [*vt, "stylize", str(clip), *_upscale_args(models)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "vt: warning: upscaling skipped: vt-upscale is not installed" in proc.stderr
    report = json.loads(proc.stdout)
    assert report["size_out"] == [72, 56] and report["stylize"]["upscale"]["model"] is None


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["-p", ""], 2, "the prompt is empty"),
        (["-m", "nowhere/at/all.safetensors"], 2, "--model-id: no such file or folder"),
        (["-m", "sd15"], 2, "expected a diffusers folder, a .safetensors/.ckpt file or a Hugging"),
        (["-m", "{controlnet}"], 2, "not a Stable Diffusion pipeline"),
        (["--strength", "1.5"], 2, "--strength must be between 0 and 1"),
        (["--steps", "1", "--strength", "0.5"], 2, "runs no denoising step"),
        (["--two-pass"], 2, "--two-pass is for --upscale"),
        (["--upscale", "--keep-size"], 2, "choose one"),
        (["--animatediff", "--cross-frame-attention"], 2, "use one or the other"),
        (["--max-res", "huge"], 2, "--max-res must be like 480p"),
        (["--dtype", "fp16"], 2, "fp16 needs a CUDA device"),
        (["--lora", "no-such-lora.safetensors"], 2, "--lora: no such file or folder"),
        (["-c", "{controlnet}", "--control", "lineart"], 1, "pip install 'vt-stylize[lineart]'"),
        (["-c", "{controlnet}", "--control", "depth"], 1, "not in the Hugging Face cache"),
        (["--noise", "pink"], 2, "--noise must be one of"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(
    host: object, models: dict[str, Path], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    clip = _clip(tmp_path)
    args = [a.replace("{controlnet}", str(models["controlnet"])) for a in args]
    base = ["-p", "anime style", "-m", str(models["sd"]), *FAST, "--end", "0.04"]
    out = tmp_path / "out.mp4"
    result = _invoke(host, str(clip), *base, *args, "-o", str(out))
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("vt: error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carphone.mp4"]


def test_missing_input_and_cuda_are_runtime_errors(
    host: object, models: dict[str, Path], tmp_path: Path
) -> None:
    result = _invoke(host, str(tmp_path / "none.mp4"), "-p", "x", "-m", str(models["sd"]))
    assert result.exit_code == 1 and "vt: error:" in result.stderr
    clip = _clip(tmp_path)
    import torch

    if not torch.cuda.is_available():
        result = _invoke(host, str(clip), "-p", "x", "-m", str(models["sd"]), "--device", "cuda")
        assert result.exit_code == 1 and "CUDA is not available" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carphone.mp4"]
