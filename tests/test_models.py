"""The model contract: descriptor, loader, Hugging Face cache resolver, diffusers adapter.

Every diffusers model here is built tiny with random weights and saved by the test, then
loaded back through the same ``from_pretrained`` path real weights use.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vt.errors import ModelUnavailableError, UsageError
from vt.models import (
    ModelDescriptor,
    SizeRequirements,
    Tiling,
    UnsupportedModelConfig,
    choose_adapter,
    diffusers_adapter,
    load_model,
    resolve_model,
)
from vt.registry import ModelRef

diffusers = pytest.importorskip("diffusers")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class ConvModel(ModelDescriptor):
    task = "restoration"
    backend = "torch"
    devices = ("cpu", "cuda")
    dtypes = ("fp32", "fp16", "bf16")
    supports_bfloat16 = True

    def __init__(self) -> None:
        self.model = torch.nn.Conv2d(3, 3, 3, padding=1)


def test_descriptor_moves_weights_and_refuses_what_it_cannot_run() -> None:
    m = ConvModel()
    assert m.to("cpu", "bf16") is m
    assert m.dtype == "bf16" and m.model.weight.dtype == torch.bfloat16
    with pytest.raises(UnsupportedModelConfig, match="does not support fp16"):
        m.to("cpu", "fp16")
    m.supports_half = True
    with pytest.raises(UnsupportedModelConfig, match="fp16 needs a CUDA device"):
        m.check("cpu", "fp16")
    with pytest.raises(UnsupportedModelConfig, match="runs on cpu/cuda, not mps"):
        m.check("mps", "fp32")
    with pytest.raises(UsageError, match="unknown device"):
        m.to("tpu")
    assert isinstance(UnsupportedModelConfig("x"), UsageError)  # exit code 2
    out = m(torch.rand(1, 3, 8, 8, dtype=torch.bfloat16))
    assert out.shape == (1, 3, 8, 8)


def test_size_requirements_pad_to_what_the_model_accepts() -> None:
    req = SizeRequirements(minimum=16, multiple_of=8)
    assert req.padded(10, 30) == (16, 32)
    assert req.accepts(16, 32) and not req.accepts(17, 32)
    assert SizeRequirements(square=True, multiple_of=4).padded(5, 9) == (12, 12)


# -- diffusers ------------------------------------------------------------------------------
def _tiny_vae() -> object:
    torch.manual_seed(0)
    return diffusers.AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
    )


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-vae"
    _tiny_vae().save_pretrained(folder)
    return folder


@pytest.fixture
def hub(tmp_path: Path, vae_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache folder laid out as the hub lays it out, with one model."""
    cache = tmp_path / "hub"
    repo = cache / "models--tiny-org--tiny-vae"
    shutil.copytree(vae_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_diffusers_adapter_loads_a_saved_autoencoder(vae_dir: Path) -> None:
    m = load_model(vae_dir, device="cpu")
    assert isinstance(m, diffusers_adapter.DiffusersModel)
    assert (m.task, m.backend, m.scale) == ("autoencoder", "diffusers", 0.5)
    assert m.size_requirements.multiple_of == 2 and m.latent_channels == 4
    assert m.tiling is Tiling.INTERNAL
    assert m.provenance is not None and m.provenance.path == vae_dir.resolve()
    assert m.provenance.source == "path"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        latents = m.model.encode(x).latent_dist.mean
        y = m.model.decode(latents).sample
    assert latents.shape == (1, 4, 8, 8) and y.shape == x.shape
    reference = _tiny_vae()
    with torch.no_grad():  # the weights are the saved ones, not fresh random ones
        assert torch.allclose(reference.encode(x).latent_dist.mean, latents, atol=1e-5)


def test_diffusers_switches_dtype_tiling_slicing_and_gated_offload(vae_dir: Path) -> None:
    m = load_model(
        vae_dir, device="cpu", dtype="bf16", vae_tiling=True, vae_slicing=True, offload="model"
    )
    assert next(m.model.parameters()).dtype == torch.bfloat16
    assert m.model.use_tiling and m.model.use_slicing
    assert m.offload == "none"  # no CUDA here: offload is skipped, not an exception
    with pytest.raises(UnsupportedModelConfig, match="fp16 needs a CUDA device"):
        load_model(vae_dir, device="cpu", dtype="fp16")
    with pytest.raises(UsageError, match="offload must be one of"):
        load_model(vae_dir, device="cpu", offload="disk")


def test_autoencoder_tiny_and_single_file_checkpoints(tmp_path: Path, vae_dir: Path) -> None:
    torch.manual_seed(0)
    diffusers.AutoencoderTiny().save_pretrained(tmp_path / "taesd")
    tiny = load_model(tmp_path / "taesd", device="cpu")
    assert tiny.task == "autoencoder" and tiny.scale == 1 / 8
    single = tmp_path / "vae.safetensors"
    shutil.copy(vae_dir / "diffusion_pytorch_model.safetensors", single)
    m = load_model(single, device="cpu", config=str(vae_dir))
    assert m.task == "autoencoder" and type(m.model).__name__ == "AutoencoderKL"


def test_diffusers_folder_is_claimed_by_content_not_by_suffix(
    tmp_path: Path, vae_dir: Path
) -> None:
    plain = tmp_path / "transformers-model"
    plain.mkdir()
    (plain / "config.json").write_text('{"architectures": ["BertModel"]}')
    assert diffusers_adapter.probe(ModelRef(vae_dir))
    assert not diffusers_adapter.probe(ModelRef(plain))
    with pytest.raises(ModelUnavailableError, match="no installed adapter loads dir"):
        choose_adapter(ModelRef(plain))


def test_missing_diffusers_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, vae_dir: Path
) -> None:
    real = diffusers_adapter.importlib.util.find_spec
    monkeypatch.setattr(
        diffusers_adapter.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "diffusers" else real(name, *a),
    )
    assert "pip install 'vt[diffusers]'" in (diffusers_adapter.available() or "")
    with pytest.raises(ModelUnavailableError, match=r"pip install 'vt\[diffusers\]'"):
        load_model(vae_dir, device="cpu")


# -- Hugging Face ids -----------------------------------------------------------------------
def test_hub_id_resolves_from_the_cache_offline(hub: Path) -> None:
    ref = resolve_model("tiny-org/tiny-vae")
    assert ref.path == hub / "models--tiny-org--tiny-vae" / "snapshots" / COMMIT
    assert ref.source == "huggingface-cache"
    m = load_model("tiny-org/tiny-vae", device="cpu")
    assert m.provenance.repo_id == "tiny-org/tiny-vae" and m.provenance.revision == "main"
    assert resolve_model(f"tiny-org/tiny-vae@{COMMIT}").path == ref.path


def test_hub_id_missing_offline_is_one_clear_line(hub: Path) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        resolve_model("tiny-org/not-there")
    message = str(info.value)
    assert "not in the Hugging Face cache" in message and "HF_HUB_OFFLINE=1" in message
    assert "\n" not in message


MISS = """
import sys
from vt.errors import VtError
from vt.models import resolve_model
try:
    resolve_model("tiny-org/not-cached")
except VtError as exc:
    print(type(exc).__name__, exc)
"""


def test_hub_id_missing_with_unreachable_hub_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on: refused at once, on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        HF_HUB_CACHE=str(tmp_path / "hub"),
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
        VT_LOAD_PLUGINS="",
    )
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [sys.executable, "-c", MISS], capture_output=True, text=True, timeout=120, env=env
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith("ModelUnavailableError")
    assert "the hub is unreachable" in lines[0]


NO_ADAPTER = """
import sys
from vt.errors import VtError
from vt.models import load_model
try:
    load_model(sys.argv[1])
except VtError as exc:
    print(type(exc).__name__, exc)
"""


def test_no_installed_adapter_names_the_package(tmp_path: Path) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    env = dict(os.environ, VT_LOAD_PLUGINS="")  # the core alone: no super-resolution adapter
    result = subprocess.run(
        [sys.executable, "-c", NO_ADAPTER, str(onnx)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "install vt-upscale and onnxruntime" in result.stdout, result.stdout + result.stderr


def test_missing_file_and_unknown_name_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="model file not found"):
        resolve_model(tmp_path / "nope.safetensors")
    with pytest.raises(UsageError, match="unknown model"):
        resolve_model("no-such-model-name")


def test_diffusers_pipeline_takes_loaded_components(tmp_path: Path) -> None:
    """``components=`` hands loaded models to the pipeline (a ControlNet, a motion adapter,
    or a replacement for one of the folder's own)."""
    from vt.testing import tiny_sd_pipeline

    folder = tiny_sd_pipeline(tmp_path / "sd")
    vae = _tiny_vae()
    m = load_model(
        folder,
        device="cpu",
        pipeline_class="StableDiffusionImg2ImgPipeline",
        components={"vae": vae},
    )
    assert type(m.model).__name__ == "StableDiffusionImg2ImgPipeline"
    assert m.model.vae is vae and m.task == "diffusion-pipeline"
    with pytest.raises(ModelUnavailableError, match="diffusers cannot load"):
        load_model(folder, device="cpu", components={"unet": torch.nn.Linear(1, 1)})


def test_single_file_ckpt_is_probed_without_unpickling(tmp_path: Path, vae_dir: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(vae_dir / "diffusion_pytorch_model.safetensors")
    ckpt = tmp_path / "vae.ckpt"
    torch.save({"state_dict": state}, ckpt)
    assert diffusers_adapter.probe(ModelRef(ckpt))
    other = tmp_path / "esrgan.ckpt"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}}, other)
    assert not diffusers_adapter.probe(ModelRef(other))
    legacy = tmp_path / "legacy.ckpt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert not diffusers_adapter.probe(ModelRef(legacy))  # not readable without unpickling
    m = load_model(ckpt, adapter="diffusers", device="cpu", config=str(vae_dir))
    assert m.task == "autoencoder" and type(m.model).__name__ == "AutoencoderKL"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(
            m.model.encode(x).latent_dist.mean, _tiny_vae().encode(x).latent_dist.mean, atol=1e-5
        )
