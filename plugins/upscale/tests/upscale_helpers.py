"""Helpers shared by vt-upscale's tests."""

from __future__ import annotations

import numpy as np


def tiny_compact(scale: int = 2, num_conv: int = 2, num_feat: int = 8, seed: int = 0):
    """A small SRVGGNetCompact with random weights (receptive radius num_conv + 2)."""
    import torch
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=scale)
    with torch.no_grad():  # non-trivial PReLU slopes
        for module in model.modules():
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.05, 0.5)
    return model.eval()


def export_onnx(path, net=None, *, size: int = 16, dynamic: bool = True):
    """``net`` (default: :func:`tiny_compact`) exported to ONNX at ``path`` as
    ``torch.onnx.export`` writes it for users (dynamic batch and size unless ``dynamic`` is
    False: then fixed at ``size``); skips the test when the ``onnx`` package is missing."""
    import warnings

    import pytest
    import torch

    pytest.importorskip("onnx")
    axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "ho", 3: "wo"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            (net if net is not None else tiny_compact()).float().eval(),
            torch.rand(1, 3, size, size),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=axes if dynamic else None,
            opset_version=17,
        )
    return path


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)
