"""Fixtures for vt-vae-scale's tests: a host with this plugin, small clips, a tiny autoencoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from vt.plugins import PluginHost


@pytest.fixture(autouse=True)
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch workers (other processes) load only this plugin: set per test, so the rest of
    the session (other folders' tests) still sees every installed plugin."""
    monkeypatch.setenv("VT_LOAD_PLUGINS", "vae-scale")


@pytest.fixture
def host(host: PluginHost) -> PluginHost:
    """vt.testing's host (built-ins only, made current) plus this plugin: no other installed
    plugin can interfere."""
    import vt_vae_scale.plugin

    host.register(vt_vae_scale.plugin, name="vae-scale")
    return host


@pytest.fixture(autouse=True)
def offline_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache and no downloads: nothing reaches the network."""
    hub = tmp_path_factory.mktemp("hf") / "hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


def save_tiny_vae(folder: Path) -> Path:
    """A tiny AutoencoderKL with fixed weights (seed 0), saved like a hub snapshot."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    vae.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vae(tmp_path_factory.mktemp("models") / "tiny-vae")
