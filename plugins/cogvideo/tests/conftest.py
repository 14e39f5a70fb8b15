"""Fixtures for vt-cogvideo's tests: the tiny CogVideoX I2V pipeline saved once per session
(seeded random weights, offline T5 tokenizer), loaded through the same ``from_pretrained``
path as a hub id; offline hub settings; one CPU thread (the machine is shared)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vt.plugins import PluginHost

pytest.importorskip("diffusers")


@pytest.fixture
def host(host: PluginHost) -> PluginHost:
    """vt.testing's host (built-ins only, made current) plus this plugin."""
    import vt_cogvideo.plugin

    host.register(vt_cogvideo.plugin, name="cogvideo")
    return host


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No hub: an empty Hugging Face cache, offline, and an empty vt model cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub")))
    monkeypatch.setenv("VT_MODEL_CACHE", str(tmp_path_factory.mktemp("vt-models")))
    monkeypatch.setenv("VT_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_cogvideo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the tiny CogVideoX I2V pipeline (16x16, 9 frames: see vt_cogvideo.tiny)."""
    from vt_cogvideo.tiny import save_tiny_i2v

    return save_tiny_i2v(tmp_path_factory.mktemp("tiny-cogvideo") / "pipeline")


@pytest.fixture(scope="session")
def tiny_lora(tiny_cogvideo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA folder for the tiny transformer (peft, random non-zero weights) saved the way
    training saves one: ``save_lora_weights`` -> ``pytorch_lora_weights.safetensors``."""
    import diffusers
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = diffusers.CogVideoXTransformer3DModel.from_pretrained(
        tiny_cogvideo / "transformer"
    )
    torch.manual_seed(1)
    transformer.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            init_lora_weights=False,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    folder = tmp_path_factory.mktemp("lora") / "press_lora"
    diffusers.CogVideoXImageToVideoPipeline.save_lora_weights(
        folder,
        transformer_lora_layers=get_peft_model_state_dict(transformer),
        safe_serialization=True,
    )
    return folder


@pytest.fixture(scope="session")
def cond_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real photo-like conditioning image: a frame of the bikes clip (640x272), as PNG."""
    import av
    from PIL import Image

    from vt.testing import sample_clip

    with av.open(str(sample_clip("bikes"))) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    path = tmp_path_factory.mktemp("images") / "bikes.png"
    Image.fromarray(frame).save(path)
    return path
