"""``vt cogvideo generate`` and ``check`` from the command line: options, configs, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cogvideo_helpers import read_frames
from typer.testing import CliRunner

from vt.cli import create_app
from vt.plugins import PluginHost
from vt_cogvideo.tiny import TINY_FRAMES

runner = CliRunner()


def invoke(host: PluginHost, *args: str) -> object:
    return runner.invoke(create_app(host), ["cogvideo", *args])


def test_generate_json_reports_timings_memory_and_score(
    host: PluginHost, tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clip.mp4"
    result = invoke(
        host,
        "generate",
        "-i",
        str(cond_image),
        "-p",
        "press briefing",
        "--model",
        str(tiny_cogvideo),
        "--steps",
        "2",
        "--seed",
        "4",
        "--fps",
        "12",
        "--device",
        "cpu",
        "-o",
        str(out),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["frames"] == TINY_FRAMES and data["fps"] == 12 and data["seed"] == 4
    assert data["metadata"]["prompt"] == "press briefing"
    assert data["timings"]["generate_s"] > 0 and data["peak_memory_bytes"] > 0
    assert json.loads(out.with_suffix(".json").read_text())["seed"] == 4
    assert read_frames(out).shape[0] == TINY_FRAMES


def test_optimized_mode_on_cpu_says_what_is_off(
    host: PluginHost, tiny_cogvideo: Path, cond_image: Path, tmp_path: Path
) -> None:
    result = invoke(
        host,
        "generate",
        "-i",
        str(cond_image),
        "-p",
        "x",
        "--model",
        str(tiny_cogvideo),
        "--steps",
        "2",
        "--mode",
        "optimized",
        "--device",
        "cpu",
        "-o",
        str(tmp_path / "o.mp4"),
    )
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.stderr.splitlines() if ln.startswith("vt: note:")]
    assert len(notes) == 1 and "need CUDA" in notes[0]
    side = json.loads((tmp_path / "o.json").read_text())["metadata"]
    assert (side["scheduler"], side["offload"], side["vae_tiling"]) == ("dpm", "none", False)


def test_inference_config_gives_the_defaults(
    host: PluginHost,
    tiny_cogvideo: Path,
    cond_image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "model.yaml").write_text(f"model: {tiny_cogvideo}\ndevice: cpu\n")
    (configs / "inference.yaml").write_text("fps: 5\nnum_inference_steps: 2\nfit: pad\n")
    monkeypatch.setenv("VT_COGVIDEO_CONFIGS", str(configs))
    result = invoke(
        host,
        "generate",
        "-i",
        str(cond_image),
        "-p",
        "x",
        "--seed",
        "1",
        "-o",
        str(tmp_path / "c.mp4"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)["metadata"]
    assert (meta["fps"], meta["steps"], meta["fit"]) == (5, 2, "pad")
    override = invoke(
        host,
        "generate",
        "-i",
        str(cond_image),
        "-p",
        "x",
        "--fps",
        "9",
        "-o",
        str(tmp_path / "d.mp4"),
        "--json",
    )
    assert json.loads(override.stdout)["fps"] == 9
    (configs / "inference.yaml").write_text("frames_per_second: 5\n")
    bad = invoke(host, "generate", "-i", str(cond_image), "-p", "x", "-o", str(tmp_path / "e.mp4"))
    assert bad.exit_code == 2 and "unknown setting 'frames_per_second'" in bad.stderr


def test_shipped_configs_parse_and_match_the_built_in_defaults() -> None:
    from dataclasses import asdict

    from vt_cogvideo.config import InferenceConfig, ModelConfig, config_dir, load_settings

    assert config_dir() is not None
    settings = load_settings()
    assert asdict(settings.model) == asdict(ModelConfig())
    assert asdict(settings.inference) == asdict(InferenceConfig())
    assert len(settings.sources) == 2


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["-i", "{missing}", "-p", "x"], 1, "image not found"),
        (["-i", "{text}", "-p", "x"], 1, "not a readable image"),
        (["-i", "{image}", "-p", "   "], 2, "prompt is empty"),
        (["-i", "{image}", "-p", "a\x07b"], 2, "control characters"),
        (["-i", "{image}", "-p", "x", "--height", "480"], 2, "size 16x480 not supported"),
        (["-i", "{image}", "-p", "x", "--num-frames", "49"], 2, "num_frames 49 not supported"),
        (["-i", "{image}", "-p", "x", "--mode", "fast"], 2, "mode must be one of"),
        (["-i", "{image}", "-p", "x", "--scheduler", "euler"], 2, "scheduler must be one of"),
        (["-i", "{image}", "-p", "x", "--fit", "stretch"], 2, "fit must be crop or pad"),
        (["-i", "{image}", "-p", "x", "--steps", "0"], 2, "steps must be"),
        (["-i", "{image}", "-p", "x", "--lora", "{missing}"], 2, "--lora: no such file"),
        (["-i", "{image}", "-p", "x", "-o", "{exists}"], 2, "output exists"),
        (["-i", "{image}", "-p", "x", "--model", "{missing}"], 2, "not found"),
        (["-i", "{image}", "-p", "x", "--model", "org/not-cached"], 1, "HF_HUB_OFFLINE=1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    host: PluginHost,
    tiny_cogvideo: Path,
    cond_image: Path,
    tmp_path: Path,
    args: list[str],
    code: int,
    message: str,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.png").write_text("not an image")
    (work / "taken.mp4").write_bytes(b"someone else's file")
    names = {
        "{missing}": str(work / "nothing.png"),
        "{text}": str(work / "notes.png"),
        "{image}": str(cond_image),
        "{exists}": str(work / "taken.mp4"),
    }
    args = [names.get(a, a) for a in args]
    if "-o" not in args:
        args += ["-o", str(work / "out.mp4")]
    if "--model" not in args:
        args += ["--model", str(tiny_cogvideo)]
    if "--steps" not in args:
        args += ["--steps", "2"]
    result = invoke(host, "generate", *args, "--device", "cpu")
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("vt: error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in work.iterdir()) == ["notes.png", "taken.mp4"]
    assert (work / "taken.mp4").read_bytes() == b"someone else's file"


def test_check_passes_on_a_good_model_and_fails_on_broken_ones(
    host: PluginHost, tiny_cogvideo: Path, tmp_path: Path
) -> None:
    good = invoke(host, "check", "--model", str(tiny_cogvideo), "--device", "cpu", "--json")
    assert good.exit_code == 0, good.output
    checks = {c["name"]: c for c in json.loads(good.stdout)["checks"]}
    assert checks["pipeline"]["ok"] and checks["model"]["frames"] == TINY_FRAMES
    assert checks["offload"]["possible"] is False  # no CUDA here
    assert "torch" in checks and checks["torch"]["version"]

    broken = tmp_path / "broken"
    shutil.copytree(tiny_cogvideo, broken)
    weights = broken / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # a truncated download
    result = invoke(host, "check", "--model", str(broken), "--device", "cpu")
    assert result.exit_code == 1
    assert "FAIL pipeline" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("vt: check failed: pipeline")

    other = tmp_path / "other"
    shutil.copytree(tiny_cogvideo, other)
    index = json.loads((other / "model_index.json").read_text())
    index["_class_name"] = "CogVideoXPipeline"
    (other / "model_index.json").write_text(json.dumps(index))
    result = invoke(host, "check", "--model", str(other), "--no-load")
    assert result.exit_code == 1 and "not CogVideoXImageToVideoPipeline" in result.stdout


def test_help_does_not_import_torch_diffusers_or_fastapi() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys\nfrom vt.cli import main\ntry:\n    main(['cogvideo', '--help'])\n"
        "except SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'diffusers', "
        "'fastapi', 'transformers', 'cv2') if m in sys.modules), file=sys.stderr)"
    )
    env = {**os.environ, "VT_LOAD_PLUGINS": "cogvideo"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "generate" in proc.stdout and "benchmark" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"
