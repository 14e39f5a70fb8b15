"""PReLU rewritten for onnxruntime's NCHWc kernels: the same output values, or the file as is."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from upscale_helpers import export_onnx, tiny_compact

from vt.registry import ModelRef
from vt_upscale.adapters import onnx as onnx_adapter
from vt_upscale.onnx_rewrite import prelu_for_nchwc

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _compact_onnx(path: Path, seed: int = 0) -> Path:
    """16 features (what onnxruntime's NCHWc convolutions take), slopes of every sign."""
    net = tiny_compact(num_feat=16, num_conv=3, seed=seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(-1.5, 1.7)
    return export_onnx(path, net)


def _plain(path: Path) -> object:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _frame(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32) / 255


def test_rewritten_prelus_give_the_files_output_values(
    tmp_path: Path, carphone_frame: np.ndarray
) -> None:
    path = _compact_onnx(tmp_path / "compact.onnx")
    model = onnx_adapter.load(ModelRef(path=path), device="cpu", threads=1)
    assert model.rewritten_prelus == 4  # after the first conv and each of the 3 body convs
    assert model.describe()["prelu_rewritten_for_nchwc"] == 4
    x = _frame(carphone_frame)
    expected = _plain(path).run(None, {"input": x})[0]
    assert np.array_equal(model._run(x), expected)
    model.set_threads(2)  # a new session, made from the rewritten graph again
    assert np.array_equal(model._run(x), expected)
    rewritten = onnx.load_from_string(model.source)
    kinds = {n.op_type for n in rewritten.graph.node}
    assert "PRelu" not in kinds and "BatchNormalization" in kinds
    # the slopes are no longer initializers (onnxruntime warns about unused ones)
    slopes = {n.input[1] for n in onnx.load(str(path)).graph.node if n.op_type == "PRelu"}
    assert len(slopes) == 4 and not slopes & {t.name for t in rewritten.graph.initializer}


def test_a_rewrite_that_changes_the_output_is_not_used(
    tmp_path: Path, carphone_frame: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _compact_onnx(tmp_path / "compact.onnx")
    other = _compact_onnx(tmp_path / "other.onnx", seed=1)  # other weights: other bits
    import vt_upscale.onnx_rewrite as rewrite

    monkeypatch.setattr(rewrite, "prelu_for_nchwc", lambda p: (other.read_bytes(), 4))
    model = onnx_adapter.load(ModelRef(path=path), device="cpu", threads=1)
    assert model.rewritten_prelus == 0 and model.source == str(path)
    x = _frame(carphone_frame[:40, :48])
    assert np.array_equal(model._run(x), _plain(path).run(None, {"input": x})[0])


def test_a_rewrite_that_cannot_run_the_probe_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnx import TensorProto, helper

    path = _compact_onnx(tmp_path / "compact.onnx")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, None, None])
    renamed = helper.make_model(  # loads, but has no input called "input"
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    import vt_upscale.onnx_rewrite as rewrite

    monkeypatch.setattr(rewrite, "prelu_for_nchwc", lambda p: (renamed.SerializeToString(), 4))
    model = onnx_adapter.load(ModelRef(path=path), device="cpu", threads=1)
    assert model.rewritten_prelus == 0 and model.source == str(path)


def test_graphs_without_per_channel_prelu_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnx import TensorProto, helper, numpy_helper

    def graph(slope: np.ndarray, name: str) -> Path:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
        nodes = [helper.make_node("PRelu", ["x", "a"], ["y"])]
        init = [numpy_helper.from_array(slope.astype(np.float32), "a")]
        model = helper.make_model(
            helper.make_graph(nodes, "g", [x], [y], init),
            opset_imports=[helper.make_opsetid("", 17)],
        )
        path = tmp_path / name
        onnx.save(model, str(path))
        return path

    assert prelu_for_nchwc(graph(np.array([0.25]), "scalar.onnx")) is None  # one slope
    assert prelu_for_nchwc(export_onnx(tmp_path / "relu.onnx", torch.nn.ReLU())) is None
    assert prelu_for_nchwc(graph(np.full((1, 1, 8), 0.25), "width.onnx")) is None  # not channels
    per_channel = graph(np.array([0.1, -0.5, 1.5, 2.0]).reshape(4, 1, 1), "channels.onnx")
    found = prelu_for_nchwc(per_channel)
    assert found is not None and found[1] == 1
    x = np.random.default_rng(1).standard_normal((1, 4, 8, 8), np.float32)
    rewritten = ort.InferenceSession(found[0], providers=["CPUExecutionProvider"])
    expected = _plain(per_channel).run(None, {"x": x})[0]
    assert np.array_equal(rewritten.run(None, {"x": x})[0], expected)
    # without the onnx package there is nothing to rewrite with: the file runs as it is
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert prelu_for_nchwc(per_channel) is None
