"""Per-channel PReLU rewritten for onnxruntime's CPU kernels, with the same output values.

onnxruntime runs convolutions on the CPU in its blocked NCHWc layout, but has no NCHWc
PReLU: every ``Conv -> PRelu`` is wrapped in layout reorders, and its broadcasting PRelu
kernel took a third of SRVGGNetCompact's time at 640x360 (docs/benchmarks.md). Written as

    PRelu(x, a) = Relu(x) + (-a) * Relu(-1 * x)

with the two per-channel products as ``BatchNormalization`` (scale -1 or -a, bias and mean
0, variance 1, epsilon 0), every node stays in NCHWc: onnxruntime turns those into depthwise
1x1 convolutions, fuses the inner Relu and the Add (x86; elsewhere they run as plain ops).
Each value is computed exactly as PRelu computes it: x > 0 gives x + (-0), x < 0 gives
0 + (-a)(-x) = a*x, and negation and adding zero round nothing; only a zero's sign can
differ (PRelu keeps -0 where the sum gives +0). The adapter still checks the rewritten graph
against the original on a probe and keeps the original when they differ
(:mod:`vt_upscale.adapters.onnx`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: BatchNormalization's inputs and attributes are the ones used here from this opset on
_MIN_OPSET = 9


def prelu_for_nchwc(path: Path) -> tuple[bytes, int] | None:
    """The model at ``path`` with each per-channel PRelu on a 4-D tensor rewritten as above,
    serialised, and how many were; None when there is none, when the ``onnx`` package is
    missing, or when the graph cannot be read here (onnxruntime then loads the file as it
    is)."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)  # the graph: is there a PRelu?
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset < _MIN_OPSET or not any(n.op_type == "PRelu" for n in model.graph.node):
            return None
        onnx.load_external_data_for_model(model, str(Path(path).parent))
        graph = model.graph
        ranks = _ranks(shape_inference.infer_shapes(model).graph)
    except Exception:  # noqa: BLE001 - unreadable here: onnxruntime says why, if anything
        return None
    initializers = {t.name: t for t in graph.initializer}
    referenced = _names(graph)
    taken = referenced | set(initializers)

    def fresh(stem: str) -> str:
        name, i = stem, 0
        while name in taken:
            i += 1
            name = f"{stem}_{i}"
        taken.add(name)
        return name

    nodes: list[Any] = []
    added: list[Any] = []
    replaced: set[str] = set()  # slope initializers
    rewritten = 0
    for node in graph.node:
        slope = _channel_slope(node, initializers, ranks)
        if slope is None:
            nodes.append(node)
            continue
        stem = fresh(f"vt_prelu_{node.name or rewritten}")
        nodes += _as_nchwc_ops(node.input[0], node.output[0], slope, stem, fresh, added)
        replaced.add(node.input[1])
        rewritten += 1
    if not rewritten:
        return None
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    # slopes nothing reads any more (onnxruntime warns about each)
    unused = replaced - _names(graph)
    kept = [t for t in graph.initializer if t.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return bytes(model.SerializeToString()), rewritten


def _as_nchwc_ops(
    x: str, y: str, slope: np.ndarray, stem: str, fresh: Any, added: list[Any]
) -> list[Any]:
    """``y = PRelu(x, slope)`` as ``Relu(x) + (-slope) * Relu(-1 * x)``; the constants it
    needs go to ``added``, every name comes from ``fresh``."""
    from onnx import helper, numpy_helper

    def const(role: str, values: np.ndarray) -> str:
        name = fresh(f"{stem}_{role}")
        added.append(numpy_helper.from_array(values.astype(np.float32), name))
        return name

    channels = slope.shape[0]
    zero, one = const("zero", np.zeros(channels)), const("one", np.ones(channels))

    def node(op: str, inputs: list[str], role: str, **attributes: Any) -> Any:
        out = y if role == "sum" else fresh(f"{stem}_{role}")
        return helper.make_node(op, inputs, [out], name=fresh(f"{stem}_{role}_node"), **attributes)

    def times(source: str, factors: np.ndarray, role: str) -> Any:
        """``source`` times ``factors`` per channel, exactly: mean 0, variance 1."""
        inputs = [source, const(f"{role}_factors", factors), zero, zero, one]
        return node("BatchNormalization", inputs, role, epsilon=0.0)

    positive = node("Relu", [x], "positive")
    negated = times(x, -np.ones(channels), "negated")
    negative_part = node("Relu", [negated.output[0]], "negative_part")
    scaled = times(negative_part.output[0], -slope, "scaled")
    total = node("Add", [positive.output[0], scaled.output[0]], "sum")
    return [positive, negated, negative_part, scaled, total]


def _names(graph: Any) -> set[str]:
    """Every node, value and graph input/output name in ``graph`` and its subgraphs (If, Loop,
    Scan bodies)."""
    names = {v.name for v in (*graph.input, *graph.output)}
    for node in graph.node:
        names |= {node.name, *node.input, *node.output}
        for attribute in node.attribute:
            subgraphs = [*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])]
            for sub in subgraphs:
                names |= _names(sub)
    return names


def _ranks(graph: Any) -> dict[str, int]:
    """Tensor name -> rank, where shape inference knows it."""
    ranks = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            ranks[value.name] = len(tensor.shape.dim)
    return ranks


def _channel_slope(node: Any, initializers: dict[str, Any], ranks: dict[str, int]) -> Any:
    """The (C,) float32 slopes of a PRelu on a 4-D tensor with one slope per channel (an
    initializer of shape (C, 1, 1) or (1, C, 1, 1)), else None."""
    from onnx import numpy_helper

    if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
        return None
    if ranks.get(node.input[0]) != 4 or node.input[1] not in initializers:
        return None
    slope = numpy_helper.to_array(initializers[node.input[1]])
    if slope.dtype != np.float32 or slope.size < 2:  # one slope for all: no channel count
        return None
    if slope.shape not in ((slope.size, 1, 1), (1, slope.size, 1, 1)):
        return None
    return slope.reshape(-1)
