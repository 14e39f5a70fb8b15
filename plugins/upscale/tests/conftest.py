"""Fixtures for vt-upscale's tests: a plugin host with this plugin, tiny models, real frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from upscale_helpers import tiny_compact

from vt.plugins import PluginHost


@pytest.fixture
def host(host: PluginHost) -> PluginHost:
    """vt.testing's host (built-ins only, made current) plus this plugin: no other installed
    plugin can interfere."""
    import vt_upscale.plugin

    host.register(vt_upscale.plugin, name="upscale")
    return host


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An empty model cache per test, and no downloads unless a test allows them."""
    cache = tmp_path_factory.mktemp("model-cache")
    monkeypatch.setenv("VT_MODEL_CACHE", str(cache))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr("vt_upscale.models.download", no_network)
    return cache


@pytest.fixture
def tiny_pth(tmp_path: Path) -> Path:
    import torch

    path = tmp_path / "tiny_x2.pth"
    torch.save(tiny_compact().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def carphone_frame() -> np.ndarray:
    """The first frame of the real carphone clip, (144, 176, 3) uint8."""
    import av

    from vt.testing import sample_clip

    with av.open(str(sample_clip("carphone_pristine"))) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


@pytest.fixture
def torchscript_pt(tmp_path: Path) -> Path:
    """A real TorchScript archive (a traced tiny x2 network): loading it runs its code."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        traced = torch.jit.trace(tiny_compact(), torch.rand(1, 3, 8, 8))
        path = tmp_path / "tiny_script.pt"
        torch.jit.save(traced, str(path))
    return path
