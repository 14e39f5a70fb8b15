"""Fixtures for vt-vae-scale's tests: a host with this plugin, small clips, a tiny autoencoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def solid_clip(
    path: Path,
    width: int,
    height: int,
    frames: int = 4,
    audio: bool = False,
    color: tuple[int, int, int] = (200, 150, 90),
) -> Path:
    """A clip of one bright colour with light noise: its non-pad area is easy to measure."""
    import av

    from vt.testing import make_video

    if audio:  # make_video's pattern with a tone; the content test clips need no audio
        return make_video(path, frames=frames, width=width, height=height, audio=True)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[:] = color
            img += rng.integers(0, 8, img.shape, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_frames(path: str | Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def content_box(image: np.ndarray, threshold: int = 50) -> tuple[int, int]:
    """(width, height) of the rows/columns that are mostly not the black pad."""
    bright = image.max(axis=2) > threshold
    cols = np.flatnonzero(bright.mean(axis=0) > 0.5)
    rows = np.flatnonzero(bright.mean(axis=1) > 0.5)
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


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
