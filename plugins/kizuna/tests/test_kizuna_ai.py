"""AI mode: any model the registry loads, run through vt-upscale's sr-model processor."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from kizuna_helpers import run_chain
from typer.testing import CliRunner

from vt.cli import create_app
from vt.errors import ModelUnavailableError, UsageError
from vt.testing import make_video
from vt_kizuna.api import PipelineConfig
from vt_kizuna.upscale import AIUpscale

runner = CliRunner()
FAST = ["--preset", "ultrafast", "--crf", "23"]


class _TinyX2:
    """A tiny x2 network (conv, PReLU, conv, pixel shuffle) with fixed random weights."""

    @staticmethod
    def build():
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.PReLU(8),
            torch.nn.Conv2d(8, 12, 3, padding=1),
            torch.nn.PixelShuffle(2),
        )
        with torch.no_grad():
            net[2].weight.mul_(0.3)
            net[2].bias.fill_(0.5)  # outputs around mid-grey, not clipped away
        return net.eval()


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny network exported to ONNX by this test (dynamic size and batch)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    path = tmp_path_factory.mktemp("onnx") / "tiny_x2.onnx"
    axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h2", 3: "w2"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _TinyX2.build(),
            torch.rand(1, 3, 16, 16),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=axes,
        )
    return path


def _invoke(host, *args: str):
    return runner.invoke(create_app(host), ["kizuna", *args], catch_exceptions=False)


def test_onnx_model_through_the_registry_matches_the_raw_model(
    ai_host, tiny_onnx: Path, carphone_frames: np.ndarray
) -> None:
    import onnxruntime as ort

    stages = PipelineConfig(
        use_ai=True,
        ai_model_path=str(tiny_onnx),
        ai_device="cpu",
        enable_reconstruct=False,
        enable_enhance=False,
    ).build()
    assert [s.name for s in stages] == ["kizuna-normalize", "kizuna-upscale"]
    assert "onnx" in stages[1].describe()
    out = run_chain(stages, carphone_frames[:2]).images
    assert out.shape == (2, 288, 352, 3) and out.dtype == np.uint16  # the 16-bit working space
    # the same frames straight through onnxruntime
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    x = (carphone_frames[:2].astype(np.float32) * 257 / 65535).transpose(0, 3, 1, 2)
    raw = session.run(None, {"input": np.ascontiguousarray(x)})[0]
    expected = np.clip(raw, 0, 1).transpose(0, 2, 3, 1) * 65535
    assert np.abs(out.astype(np.float64) - expected).max() <= 2  # rounding only
    for stage in stages:
        stage.close()


def test_ai_mode_is_deterministic_and_tiles_without_seams(
    ai_host, tiny_onnx: Path, carphone_frames: np.ndarray
) -> None:
    def run(tile: int) -> np.ndarray:
        stage = AIUpscale(str(tiny_onnx), 2, tile=tile, device="cpu")
        try:
            return run_chain([stage], carphone_frames[:2]).images
        finally:
            stage.close()

    whole = run(0)
    assert np.array_equal(whole, run(0))  # same backend, device and batch: same frames
    tiled = run(48)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1  # overlap covers the net


@pytest.mark.slow  # loads the ncnn network: several seconds
def test_cli_with_the_packaged_real_esrgan_weights(ai_host, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=3, width=32, height=24, fps=25, audio=True)
    out = tmp_path / "ai.mp4"
    result = _invoke(ai_host, str(clip), "-o", str(out), "--ai", "--json", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames_out"] == 3 and report["size_out"] == [64, 48]
    assert "realesr-animevideov3-x2" in report["details"]["kizuna-upscale"]
    assert report["audio"] == "copied"


def test_cli_onnx_model_with_tiles(ai_host, tiny_onnx: Path, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=4, width=64, height=48, fps=25)
    out = tmp_path / "onnx.mkv"
    result = _invoke(
        ai_host,
        str(clip),
        "-o",
        str(out),
        "--model",
        str(tiny_onnx),
        "--tile",
        "32",
        "--no-enhance",
        "--json",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames_out"] == 4 and report["size_out"] == [128, 96]


@pytest.mark.parametrize(
    "model, code, words",
    [
        ("nowhere/missing.onnx", 2, "model file not found"),
        ("no-such-model", 2, "unknown model"),
        ("BROKEN", 1, "broken"),
    ],
)
def test_missing_or_broken_models_are_one_line_errors(
    ai_host, tmp_path: Path, model: str, code: int, words: str
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=2, width=32, height=24)
    if model == "BROKEN":
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"this is not an onnx model")
        model = str(broken)
    out = tmp_path / "never.mp4"
    result = _invoke(ai_host, str(clip), "-o", str(out), "--model", model)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vt: error:"), result.output
    assert words in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".*vt-tmp*"))


def test_no_adapter_installed_names_the_package(host) -> None:
    with pytest.raises(ModelUnavailableError, match="pip install vt-upscale"):
        AIUpscale("realesr-animevideov3-x2", 2)
    with pytest.raises(UsageError, match="2 or 4"):
        PipelineConfig(use_ai=True, ai_scale=3).build()
