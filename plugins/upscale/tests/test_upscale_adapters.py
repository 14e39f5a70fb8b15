"""Model adapters: spandrel (.pth/.safetensors), ONNX, ncnn, and how one is chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from upscale_helpers import export_onnx, tiny_compact

from vt.errors import ModelUnavailableError, UsageError, VtError
from vt.registry import ModelRef
from vt_upscale.adapters import load_model


def _reference(x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return tiny_compact()(x).clamp(0, 1)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_spandrel_loads_tiny_models_the_tests_save(host, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tiny{suffix}"
    state = tiny_compact().state_dict()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = load_model(str(path), backend="torch", device="cpu")
    assert model.backend == "torch"
    assert (model.scale, model.input_channels, model.output_channels) == (2, 3, 3)
    assert model.supports_half and model.supports_bfloat16
    x = torch.rand(2, 3, 12, 10)
    assert torch.allclose(model(x), _reference(x), atol=1e-5)


def test_bf16_runs_on_cpu_and_fp16_needs_cuda(host, tiny_pth: Path) -> None:
    model = load_model(str(tiny_pth), device="cpu", dtype="bf16")
    assert model.dtype == "bf16"
    out = model(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 16, 16)
    with pytest.raises(VtError, match="fp16 needs a CUDA device"):
        load_model(str(tiny_pth), device="cpu", dtype="fp16")
    with pytest.raises(UsageError, match="unknown dtype"):
        load_model(str(tiny_pth), device="cpu", dtype="int8")


def test_model_without_half_support_refuses_fp16(host, tiny_pth: Path) -> None:
    model = load_model(str(tiny_pth), backend="torch", device="cpu")
    model.supports_half = False
    with pytest.raises(VtError, match="does not support fp16"):
        model.check("cuda", "fp16")


def test_unknown_architecture_is_a_clear_error(host, tmp_path: Path) -> None:
    path = tmp_path / "weird.pth"
    torch.save({"foo.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelUnavailableError, match="does not recognise"):
        load_model(str(path), device="cpu")


def test_pickled_code_is_never_executed(host, tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": tiny_compact()}, path)  # a whole module needs unpickling code
    with pytest.raises(ModelUnavailableError, match="cannot read torch weights"):
        load_model(str(path), device="cpu")


def test_onnx_model_scale_from_a_probe_run(host, tmp_path: Path) -> None:
    path = tmp_path / "anime_sr_2x.onnx"
    export_onnx(path)
    model = load_model(str(path), backend="onnx", device="cpu")
    assert model.backend == "onnx" and model.scale == 2
    assert model.size_requirements.fixed is None and model.max_batch is None
    x = torch.rand(2, 3, 12, 20)
    assert torch.allclose(model(x), _reference(x), atol=1e-4)


def test_static_onnx_model_is_tiled_to_its_input_size(host, tmp_path: Path) -> None:
    from vt_upscale import Upscaler

    path = tmp_path / "fixed.onnx"
    export_onnx(path, size=24, dynamic=False)
    model = load_model(str(path), backend="onnx", device="cpu")
    assert model.size_requirements.fixed == (24, 24)
    assert model.scale == 2 and model.max_batch == 1
    image = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    upscaler = Upscaler(model, tile_pad=4)
    assert upscaler.tile == 16
    out = upscaler.upscale(image)
    assert out.shape == (80, 104, 3)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    expected = (_reference(x) * 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_ncnn_adapter_runs_packaged_weights(host) -> None:
    model = load_model("realesr-animevideov3-x2", backend="ncnn", threads=2)
    assert model.backend == "ncnn" and model.scale == 2
    out = model(torch.rand(1, 3, 10, 12))
    assert out.shape == (1, 3, 20, 24)
    with pytest.raises(VtError, match="CUDA is not available|runs on the CPU"):
        load_model("realesr-animevideov3-x2", backend="ncnn", device="cuda")
    with pytest.raises(VtError, match="fp32 or bf16, not fp16"):
        load_model("realesr-animevideov3-x2", backend="ncnn", device="cpu", dtype="fp16")


def test_real_esrgan_ncnn_files_pick_ncnn_on_cpu_fp32_or_auto_and_torch_otherwise(
    host, tmp_path: Path
) -> None:
    from dataclasses import replace

    from vt.models import resolve_model as resolve
    from vt_upscale.adapters import choose

    assert load_model("realesr-animevideov3-x2", device="cpu").backend == "ncnn"
    bf16 = load_model("realesr-animevideov3-x2", device="cpu", dtype="bf16")
    assert (bf16.backend, bf16.dtype, bf16.scale) == ("torch", "bf16", 2)
    assert load_model("realesr-animevideov3-x2", device="cpu", dtype="auto").backend == "ncnn"
    candidates = list(host.model_adapters.items())
    ref = resolve("realesr-animevideov3-x4")
    on_gpu = replace(ref, metadata={**ref.metadata, "device": "cuda:0"})
    assert choose(on_gpu, candidates).name == "torch-spandrel"
    # a graph torch cannot rebuild always goes to ncnn
    other = ModelRef(path=tmp_path / "other.param", metadata={"device": "cuda"})
    other.path.write_text("7767517\n2 2\nInput data 0 1 data\nSigmoid s 1 1 data out\n")
    assert choose(other, candidates).name == "ncnn"
    assert (
        host.call_first("choose_model_adapter", model=other, candidates=candidates).name == "ncnn"
    )


def test_ncnn_bf16_runs_the_packaged_weights_close_to_fp32(host, carphone_frame) -> None:
    from vt.models.devices import cpu_has_native_bf16

    fp32 = load_model("realesr-animevideov3-x4", backend="ncnn", device="cpu", threads=1)
    bf16 = load_model(
        "realesr-animevideov3-x4", backend="ncnn", device="cpu", dtype="bf16", threads=1
    )
    assert (fp32.dtype, bf16.dtype) == ("fp32", "bf16") and bf16.supports_bfloat16
    image = carphone_frame[:48, :64]
    a = fp32.upscale_image(image).astype(np.int16)
    b = bf16.upscale_image(image).astype(np.int16)
    diff = np.abs(a - b)
    if cpu_has_native_bf16():  # what auto picks bf16 on: there bf16 storage is really on
        assert diff.any()
    # docs/benchmarks.md: up to 4/255 off fp32, 55-56 dB PSNR on bigbuckbunny frames
    assert int(diff.max()) <= 8
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    assert 10 * np.log10(255**2 / mse) > 45
    # to() makes its nets again in the other storage: the same outputs as a fresh load
    moved = load_model(
        "realesr-animevideov3-x4", backend="ncnn", device="cpu", threads=1, cache=False
    )
    assert moved.to("cpu", "bf16") is moved and moved.dtype == "bf16"
    assert np.array_equal(moved.upscale_image(image), b)
    assert np.array_equal(moved.to(dtype="fp32").upscale_image(image), a)


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_is_resolved_for_the_backend_that_loads(
    host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from vt.models import devices

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    want = "bf16" if native else "fp32"
    for spelling in ("auto", " AUTO "):  # named as the user typed it: the same choice
        ncnn = load_model("realesr-animevideov3-x2", device="cpu", dtype=spelling, cache=False)
        assert (ncnn.backend, ncnn.dtype) == ("ncnn", want)
    upper = load_model("realesr-animevideov3-x2", device="cpu", dtype="FP32", cache=False)
    assert (upper.backend, upper.dtype) == ("ncnn", "fp32")
    torch_kernels = load_model(
        "realesr-animevideov3-x2", backend="torch", device="cpu", dtype="auto", cache=False
    )
    assert (torch_kernels.backend, torch_kernels.dtype) == ("torch", want)
    onnx = load_model(
        str(export_onnx(tmp_path / "tiny.onnx")),
        backend="onnx",
        device="cpu",
        dtype="auto",
        cache=False,
    )
    assert (onnx.backend, onnx.dtype) == ("onnx", "fp32")  # onnxruntime runs no bf16 here


def test_auto_falls_back_to_fp32_for_a_model_that_refuses_bf16(
    host, tiny_pth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt.models import devices
    from vt_upscale.adapters.torch_spandrel import TorchSRModel

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    init = TorchSRModel.__init__

    def no_bf16(self, *args, **kwargs) -> None:  # as spandrel says of AuraSR
        init(self, *args, **{**kwargs, "supports_bfloat16": False})

    monkeypatch.setattr(TorchSRModel, "__init__", no_bf16)
    model = load_model(str(tiny_pth), backend="torch", device="cpu", dtype="auto", cache=False)
    assert (model.backend, model.dtype) == ("torch", "fp32")
    with pytest.raises(VtError, match="does not support bf16"):  # asked for: said so
        load_model(str(tiny_pth), backend="torch", device="cpu", dtype="bf16", cache=False)


def test_explicit_bf16_picks_torch_for_torch_files_and_ncnn_when_named(
    host, tiny_pth: Path
) -> None:
    assert load_model(str(tiny_pth), device="cpu", dtype="bf16", cache=False).backend == "torch"
    named = load_model(str(tiny_pth), backend="ncnn", device="cpu", dtype="bf16", cache=False)
    assert (named.backend, named.dtype) == ("ncnn", "bf16")


def test_backend_that_cannot_load_the_file_is_a_usage_error(host, tiny_pth: Path) -> None:
    with pytest.raises(UsageError, match="cannot load"):
        load_model(str(tiny_pth), backend="onnx")
    with pytest.raises(UsageError, match="unknown backend"):
        load_model(str(tiny_pth), backend="tensorrt")


def test_adapters_are_registered_for_other_plugins(host, tiny_pth: Path) -> None:
    adapters = {a.name: a for a in host.model_adapters.items()}
    assert {"torch-spandrel", "onnx", "ncnn"} <= set(adapters)
    loaded = adapters["torch-spandrel"].load(ModelRef(path=tiny_pth), device="cpu")
    assert loaded.scale == 2


def test_size_requirements_pad_the_input_and_crop_the_output() -> None:
    from vt.models import SizeRequirements
    from vt_upscale.adapters.torch_spandrel import TorchSRModel

    seen: list[tuple[int, int]] = []

    class Nearest(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape[-2:]))
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    model = TorchSRModel(
        Nearest(),
        name="needs-16",
        scale=2,
        supports_half=False,
        size_requirements=SizeRequirements(minimum=16, multiple_of=8),
    )
    x = torch.rand(1, 3, 10, 13)
    y = model(x)
    assert seen == [(16, 16)]
    assert y.shape == (1, 3, 20, 26)
    assert torch.equal(y, torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    with pytest.raises(VtError, match="does not support fp16"):
        model.check("cuda", "fp16")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_loads_only_when_trusted_or_its_sha256_is_registered(
    host, torchscript_pt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from vt.errors import UntrustedModelError
    from vt_upscale import models
    from vt_upscale.adapters.torch_spandrel import load_state_dict

    def no_jit(*args: object, **kwargs: object) -> None:
        raise AssertionError("TorchScript code was loaded")

    with monkeypatch.context() as m:
        m.setattr(torch.jit, "load", no_jit)
        with pytest.raises(UntrustedModelError, match="--trust-model"):
            load_model(torchscript_pt, device="cpu")
        with pytest.raises(UntrustedModelError):  # a known name does not help without its digest
            load_state_dict(torchscript_pt, known_sha256="0" * 64)
    assert load_model(torchscript_pt, device="cpu", trust_model=True).scale == 2
    # a registered model whose published sha256 is this file's: no flag needed
    info = replace(
        models.BY_NAME["realesr-general-x4v3"],
        name="tiny-script",
        sha256=models.sha256_of(torchscript_pt),
    )
    monkeypatch.setitem(models.BY_NAME, "tiny-script", info)
    ref = ModelRef(torchscript_pt, name="tiny-script", source="cache")
    assert load_model(ref, device="cpu").scale == 2


SPANDREL_PROBE = """
import sys
import torch
from upscale_helpers import tiny_compact
from vt_upscale.adapters import torch_spandrel
spandrel = torch_spandrel.import_spandrel()
print("heavy", sorted(m for m in ("torchvision", "torch._dynamo") if m in sys.modules))
torch.save(tiny_compact().state_dict(), sys.argv[1])
from vt.registry import ModelRef
model = torch_spandrel.load(ModelRef(path=__import__("pathlib").Path(sys.argv[1])), device="cpu")
print("loaded", model.scale, sorted(m for m in ("torchvision",) if m in sys.modules))
from spandrel.architectures.LaMa.__arch import LaMa
x = torch.rand(1, 3, 9, 7)
deferred = LaMa.rotate(x, 30.0, LaMa.InterpolationMode.BILINEAR)
import torchvision.transforms.functional as tvf
print("rotate", torch.equal(deferred, tvf.rotate(x, 30.0, tvf.InterpolationMode.BILINEAR)))
"""


def test_spandrel_imports_without_torchvision_until_a_model_needs_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SPANDREL_PROBE, str(tmp_path / "tiny.pth")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=Path(__file__).parent,
    ).stdout.splitlines()
    assert out == ["heavy []", "loaded 2 []", "rotate True"]


def test_spandrel_is_imported_plainly_when_the_deferred_import_fails(monkeypatch) -> None:
    import contextlib
    import sys

    from vt_upscale.adapters import torch_spandrel

    @contextlib.contextmanager
    def failing(*modules: str):
        yield
        raise TypeError("a deferred name used at import time")

    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "spandrel"}
    monkeypatch.setattr(torch_spandrel, "deferred_imports", failing)
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    try:
        spandrel = torch_spandrel.import_spandrel()
        assert spandrel.ModelLoader is not None and sys.modules["spandrel"] is spandrel
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "spandrel"]:
            del sys.modules[name]
        sys.modules.update(saved)
