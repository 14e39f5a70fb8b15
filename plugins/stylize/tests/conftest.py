"""Fixtures for vt-stylize's tests: tiny SD/ControlNet/AnimateDiff models built once per
session (seeded random weights, offline tokenizer), a plugin host with this plugin and
vt-upscale, and one CPU thread (the tiny models are faster so, and the machine is shared)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vt.plugins import PluginHost, set_host

pytest.importorskip("diffusers")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginHost]:
    """Built-ins plus the installed stylize and upscale plugins (no other plugin)."""
    monkeypatch.setenv("VT_LOAD_PLUGINS", "stylize,upscale")
    h = PluginHost().load()
    previous = set_host(h)
    yield h
    set_host(previous)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No hub: an empty Hugging Face cache, offline, and an empty vt model cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub")))
    monkeypatch.setenv("VT_MODEL_CACHE", str(tmp_path_factory.mktemp("vt-models")))
    monkeypatch.setenv("VT_OFFLINE", "1")


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vt.testing import tiny_controlnet, tiny_motion_adapter, tiny_sd_pipeline

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "sd": tiny_sd_pipeline(root / "sd"),
        "controlnet": tiny_controlnet(root / "cn"),
        "motion": tiny_motion_adapter(root / "motion"),
    }


@pytest.fixture(scope="session")
def carphone_frames() -> np.ndarray:
    """The first 4 frames of the real carphone clip, (4, 144, 176, 3) uint8."""
    import av

    from vt.testing import sample_clip

    with av.open(str(sample_clip("carphone_pristine"))) as c:
        frames = []
        for frame in c.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 4:
                break
    return np.stack(frames)
