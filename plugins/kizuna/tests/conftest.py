"""Fixtures for vt-kizuna's tests: plugin hosts, real frames, a line-art clip, no network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from vt.plugins import PluginHost, set_host


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests reach nothing beyond 127.0.0.1, and models are cached in a temporary folder."""
    real = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"tests must not touch the network ({address})")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("VT_MODEL_CACHE", str(tmp_path_factory.mktemp("models")))


def _host(with_upscale: bool) -> PluginHost:
    import vt_kizuna.plugin

    h = PluginHost(load_entry_points=False).load()
    h.register(vt_kizuna.plugin, name="kizuna")
    if with_upscale:  # through its entry point, as vt loads it: this plugin never imports it
        found = [ep for ep in entry_points(group="vt") if ep.name == "upscale"]
        if not found:
            pytest.skip("vt-upscale is not installed (AI mode runs models through it)")
        h.register(found[0].load(), name="upscale")
    return h


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """Built-ins plus vt-kizuna only: no model adapter, no sr-model runner."""
    h = _host(False)
    previous = set_host(h)
    yield h
    set_host(previous)


@pytest.fixture
def ai_host() -> Iterator[PluginHost]:
    """Built-ins, vt-kizuna and vt-upscale (model adapters, packaged weights, sr-model)."""
    h = _host(True)
    previous = set_host(h)
    yield h
    set_host(previous)


def read_frames(path: Path | str, count: int | None = None) -> np.ndarray:
    import av

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if count is not None and len(out) == count:
                break
    return np.stack(out)


@pytest.fixture(scope="session")
def carphone_frames() -> np.ndarray:
    """The first 8 frames of the real carphone_pristine clip, (8, 144, 176, 3) uint8."""
    from vt.testing import sample_clip

    return read_frames(sample_clip("carphone_pristine"), 8)


@pytest.fixture(scope="session")
def bbb_crop() -> np.ndarray:
    """3 real frames (bigbuckbunny) cropped to 320x256: big enough to be cut into strips."""
    from vt.testing import sample_clip

    frames = read_frames(sample_clip("bigbuckbunny"), 3)
    return np.ascontiguousarray(frames[:, 200:456, 400:720])


@pytest.fixture(scope="session")
def line_art() -> np.ndarray:
    """6 frames of the synthetic line-art clip at 192x128 (the pristine frames)."""
    from vt_kizuna.lineart import render_line_art

    return render_line_art(6, 192, 128)
