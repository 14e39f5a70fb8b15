"""Single-file (original LDM format) Stable Diffusion checkpoints through the diffusers adapter.

The tiny pipeline is written as ``.safetensors`` and ``.ckpt`` by ``vt.testing.sd_single_file``
(the inverse of diffusers' own conversion) and loaded back with ``from_single_file``, as a
downloaded checkpoint is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from vt.errors import MissingModelConfigError, ModelUnavailableError
from vt.models import diffusers_adapter, load_model
from vt.registry import ModelRef

pytest.importorskip("diffusers")

IMG2IMG = "StableDiffusionImg2ImgPipeline"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OPTIONS: dict[str, Any] = {
    "adapter": "diffusers",
    "device": "cpu",
    "cache": False,
    "pipeline_class": IMG2IMG,
}


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vt.testing import tiny_sd_pipeline

    return tiny_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="module")
def single_files(sd_dir: Path) -> dict[str, Path]:
    from vt.testing import sd_single_file

    return {
        suffix: sd_single_file(sd_dir, sd_dir.parent / f"tiny.{suffix}")
        for suffix in ("safetensors", "ckpt")
    }


@pytest.fixture
def empty_offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


def test_sd_single_file_has_the_original_layout(single_files: dict[str, Path]) -> None:
    from safetensors import safe_open

    with safe_open(str(single_files["safetensors"]), "pt") as f:
        keys = set(f.keys())
        attention = f.get_tensor("first_stage_model.encoder.mid.attn_1.q.weight")
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.input_blocks.3.0.op.weight" in keys  # the first downsampler
    assert "model.diffusion_model.output_blocks.2.2.conv.weight" in keys  # after an attention
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in keys
    assert attention.ndim == 4 and attention.shape[2:] == (1, 1)  # LDM's 1x1 convolutions
    checkpoint = torch.load(single_files["ckpt"], weights_only=True)
    assert set(checkpoint) == {"state_dict"} and set(checkpoint["state_dict"]) == keys
    for ref in (ModelRef(p) for p in single_files.values()):
        assert diffusers_adapter.probe(ref)


@pytest.mark.parametrize("suffix", ["safetensors", "ckpt"])
def test_single_file_loads_every_weight_of_the_folder(
    sd_dir: Path, single_files: dict[str, Path], suffix: str, empty_offline_hub: Path
) -> None:
    folder = load_model(sd_dir, **OPTIONS).model
    single = load_model(single_files[suffix], config=str(sd_dir), **OPTIONS).model
    assert type(single).__name__ == IMG2IMG
    for name in ("unet", "vae", "text_encoder"):
        _same_weights(getattr(single, name), getattr(folder, name))
    assert dict(single.scheduler.config) == dict(folder.scheduler.config)
    assert single.tokenizer("a cat").input_ids == folder.tokenizer("a cat").input_ids


def test_single_file_configs_come_from_the_cache_offline(
    sd_dir: Path, single_files: dict[str, Path], empty_offline_hub: Path
) -> None:
    """No ``config``: diffusers' own choice for an SD 1.x file (SD 1.5's repository) is read
    from the Hugging Face cache, offline."""
    repo = empty_offline_hub / f"models--{SD15.replace('/', '--')}"
    shutil.copytree(sd_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    m = load_model(single_files["safetensors"], **OPTIONS)
    _same_weights(m.model.unet, load_model(sd_dir, **OPTIONS).model.unet)


@pytest.mark.parametrize("suffix", ["safetensors", "ckpt"])
def test_single_file_without_configs_offline_is_one_clear_line(
    single_files: dict[str, Path], suffix: str, empty_offline_hub: Path
) -> None:
    with pytest.raises(MissingModelConfigError) as info:
        load_model(single_files[suffix], **OPTIONS)
    message = str(info.value)
    assert f"tiny.{suffix} is a single-file checkpoint" in message
    assert f"from {SD15}, which is not in the Hugging Face cache and HF_HUB_OFFLINE=1" in message
    assert "pass config=" in message and "\n" not in message


class _RunsCode:
    """Unpickling this makes a folder: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_ckpt_with_code_is_refused_and_the_code_never_runs(
    sd_dir: Path, tmp_path: Path, empty_offline_hub: Path
) -> None:
    from vt.testing import sd_ldm_state_dict

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": sd_ldm_state_dict(sd_dir), "hook": _RunsCode(marker)}, evil)
    assert diffusers_adapter.probe(ModelRef(evil))  # its names are read without unpickling
    for config in ({"config": str(sd_dir)}, {}):
        with pytest.raises(ModelUnavailableError, match="evil.ckpt: refused: its pickle holds"):
            load_model(evil, **OPTIONS, **config)
        assert not marker.exists()
    torch.load(evil, weights_only=False)  # the file is live: a plain unpickling runs it
    assert marker.is_dir()
