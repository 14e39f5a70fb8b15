"""Device resolution: 'auto' on a machine without a GPU needs no torch import."""

from __future__ import annotations

import sys

import pytest

from vt.models import devices


def test_no_gpu_device_node_means_no_cuda_without_importing_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(devices.glob, "glob", lambda pattern: [])
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # restored after the test
    assert devices.no_gpu_device_nodes()
    assert devices.cuda_available() is False
    assert devices.resolve_device("auto") == "cpu"
    assert "torch" not in sys.modules


def test_a_gpu_device_node_leaves_the_answer_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(
        devices.glob, "glob", lambda pattern: ["/dev/nvidiactl"] if "nvidiactl" in pattern else []
    )
    assert not devices.no_gpu_device_nodes()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.cuda_available() is True
