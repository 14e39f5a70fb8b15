"""``vt upscale`` end to end through the core pipeline, and the Python API."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vt.cli import create_app
from vt.testing import make_video

runner = CliRunner()
FAST = ["--preset", "ultrafast", "--crf", "23"]


def _streams(path: Path) -> dict:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        frames = list(c.decode(video=0))
        return {
            "size": (video.codec_context.width, video.codec_context.height),
            "times": [round(float(f.pts * f.time_base), 4) for f in frames],
            "audio": len(c.streams.audio),
        }


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _invoke(host, *args: str):
    return runner.invoke(create_app(host), ["upscale", *args], catch_exceptions=False)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", frames=10, width=48, height=32, fps=25, audio=True)


def test_classical_upscale_keeps_frames_timestamps_and_audio(host, clip: Path) -> None:
    result = _invoke(host, str(clip), *FAST)
    assert result.exit_code == 0, result.output
    out = clip.with_name("clip_upscaled.mp4")
    assert out.is_file()
    src, dst = _streams(clip), _streams(out)
    assert dst["size"] == (96, 64)
    assert dst["times"] == src["times"] and len(dst["times"]) == 10
    assert dst["audio"] == 1
    assert "lanczos x2" in result.output


def test_existing_output_is_not_overwritten_without_overwrite(host, clip: Path) -> None:
    out = clip.with_name("clip_upscaled.mp4")
    out.write_bytes(b"precious")
    result = _invoke(host, str(clip), *FAST)
    assert result.exit_code != 0
    assert out.read_bytes() == b"precious"
    assert _invoke(host, str(clip), "--overwrite", *FAST).exit_code == 0
    assert _streams(out)["size"] == (96, 64)


def test_vfr_timestamps_survive(host, tmp_path: Path) -> None:
    pts = [0, 40, 120, 130, 300, 310]
    clip = make_video(
        tmp_path / "vfr.mkv", frames=6, width=32, height=24, pts=pts, time_base=Fraction(1, 1000)
    )
    result = _invoke(host, str(clip), "--method", "bicubic", "--scale", "1.5", *FAST)
    assert result.exit_code == 0, result.output
    dst = _streams(tmp_path / "vfr_upscaled.mkv")
    assert dst["times"] == [p / 1000 for p in pts]
    assert dst["size"] == (48, 36)


def test_ai_without_model_runs_packaged_weights_offline(host, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "tiny.mp4", frames=3, width=32, height=24)
    out = tmp_path / "ai.mp4"
    result = _invoke(host, str(clip), "--ai", "-o", str(out), "--device", "cpu", *FAST)
    assert result.exit_code == 0, result.output
    assert "realesr-animevideov3-x2" in result.output
    assert "warning" not in result.output
    assert _streams(out)["size"] == (64, 48)
    assert len(_streams(out)["times"]) == 3


@pytest.mark.parametrize(
    ("native", "extra", "dtype"),
    [(True, [], "bf16"), (False, [], "fp32"), (True, ["--dtype", "fp32"], "fp32")],
)
def test_ai_dtype_defaults_to_bf16_on_cpus_that_compute_it(
    host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool, extra, dtype: str
) -> None:
    from vt.models import devices

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    clip = make_video(tmp_path / "tiny.mp4", frames=2, width=32, height=24)
    out = tmp_path / "ai.mp4"
    result = _invoke(host, str(clip), "--ai", "-o", str(out), "--device", "cpu", *extra, *FAST)
    assert result.exit_code == 0, result.output
    assert f"[ncnn, cpu, {dtype}, x2]" in result.output
    assert _streams(out)["size"] == (64, 48)


def test_any_model_file_and_a_non_native_scale(host, tmp_path: Path, tiny_pth: Path) -> None:
    clip = make_video(tmp_path / "tiny.mp4", frames=3, width=32, height=24)
    out = tmp_path / "x3.mp4"
    result = _invoke(
        host,
        str(clip),
        "--model",
        str(tiny_pth),
        "--scale",
        "3",
        "--tile",
        "16",
        "-o",
        str(out),
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert "+ lanczos to x3" in result.output
    assert _streams(out)["size"] == (96, 72)


def test_missing_model_file_is_a_usage_error_with_or_without_strict(host, tmp_path: Path) -> None:
    # a typo is not a model that cannot run: no silent fallback to Lanczos
    clip = make_video(tmp_path / "tiny.mp4", frames=3, width=32, height=24)
    missing = tmp_path / "nope.pth"
    for extra in ([], ["--strict"]):
        result = _invoke(
            host, str(clip), "--model", str(missing), *extra, "-o", str(tmp_path / "a.mp4"), *FAST
        )
        assert result.exit_code == 2, result.output
        assert "model file not found" in result.output
        assert "falling back" not in result.output
        assert not (tmp_path / "a.mp4").exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_needs_trust_model(host, tmp_path: Path, torchscript_pt: Path) -> None:
    clip = make_video(tmp_path / "ts.mp4", frames=3, width=32, height=24)
    out = tmp_path / "ts_out.mp4"
    result = _invoke(host, str(clip), "--model", str(torchscript_pt), "-o", str(out), *FAST)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "vt: error: tiny_script.pt is a TorchScript file: loading it runs code from the file. "
        "Pass --trust-model (trust_model=True in Python) only if you trust its source"
    ]
    assert not out.exists()
    result = _invoke(
        host, str(clip), "--model", str(torchscript_pt), "--trust-model", "-o", str(out), *FAST
    )
    assert result.exit_code == 0, result.output
    assert "tiny_script [torch" in result.output
    assert _streams(out)["size"] == (64, 48)


def test_bad_options_are_usage_errors(host, clip: Path) -> None:
    assert _invoke(host, str(clip), "--method", "magic").exit_code == 2
    assert _invoke(host, str(clip), "--scale", "2", "--size", "64x64").exit_code == 2
    assert _invoke(host, str(clip), "--ai", "--dtype", "fp8").exit_code == 2


def test_python_api(host, tmp_path: Path, tiny_pth: Path) -> None:
    from vt_upscale import Upscaler, upscale_video

    clip = make_video(tmp_path / "api.mp4", frames=4, width=32, height=24, audio=True)
    report = upscale_video(clip, model=tiny_pth, preset="ultrafast")
    out = tmp_path / "api_upscaled.mp4"
    assert Path(report.output) == out and report.frames_out == 4
    assert _streams(out)["size"] == (64, 48) and _streams(out)["audio"] == 1
    with Upscaler(tiny_pth) as upscaler:  # load once, use for many files
        upscaler.upscale_video(clip, tmp_path / "again.mkv", preset="ultrafast")
        upscaler.upscale_video(clip, tmp_path / "again.mp4", preset="ultrafast")
        assert upscaler.model is not None  # still loaded after both files
    assert upscaler.model is None  # released by the context manager
    assert _streams(tmp_path / "again.mkv")["size"] == (64, 48)
    first, second = (_frames(tmp_path / n)[0] for n in ("again.mkv", "again.mp4"))
    lanczos = _frames(clip)[0].repeat(2, axis=0).repeat(2, axis=1)  # not the fallback
    assert np.abs(first.astype(int) - second.astype(int)).mean() < 3
    assert np.abs(first.astype(int) - lanczos.astype(int)).mean() > 3


def test_processors_are_registered_for_other_commands(host, tiny_pth: Path) -> None:
    from vt.media.frames import FrameFormat

    sr = host.processors.get("sr-model").factory(model=str(tiny_pth))
    assert sr.configure(FrameFormat(20, 10)) == FrameFormat(40, 20)
    plain = host.processors.get("upscale").factory(scale=1.5, method="bicubic")
    assert plain.configure(FrameFormat(20, 10)).size == (30, 15)
    assert "upscale" in host.commands
    assert torch.is_grad_enabled()  # no global state leaked from inference_mode


def test_ten_bit_input_runs_at_16_bits_through_the_model(
    host, tmp_path: Path, tiny_pth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt_upscale import Upscaler

    seen: list[tuple[str, str]] = []
    original = Upscaler.upscale_batch

    def spy(self, batch):
        out = original(self, batch)
        seen.append((batch.layout, str(out.images.dtype)))
        return out

    monkeypatch.setattr(Upscaler, "upscale_batch", spy)
    clip = make_video(
        tmp_path / "deep.mkv",
        frames=3,
        width=32,
        height=24,
        bit_depth=10,
        pixel_format="yuv420p10le",
        codec="libx265",
        options={"x265-params": "log-level=error"},
    )
    out = tmp_path / "deep_up.mkv"
    result = _invoke(
        host,
        str(clip),
        "--model",
        str(tiny_pth),
        "-o",
        str(out),
        "--codec",
        "libx265",
        "--json",
        "-e",
        "x265-params=log-level=error",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["size_out"] == [64, 48] and report["frames_out"] == 3
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt.startswith("yuv420p10")
    assert seen and set(seen) == {("rgb48", "uint16")}


def test_classical_processor_can_resize_decoded_yuv_frames(host, clip: Path) -> None:
    from vt.media.frames import FrameFormat

    processor = host.processors.get("upscale").factory(scale=2)
    processor.configure(FrameFormat(48, 32))
    assert processor.accepts_av_frames
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        frame.pts = 1234
        out = processor.process_frame(frame)
    assert (out.width, out.height, out.format.name) == (96, 64, frame.format.name)
    assert out.pts == 1234
    ai = host.processors.get("upscale").factory(ai=True, scale=2)
    assert not ai.accepts_av_frames  # models need RGB
