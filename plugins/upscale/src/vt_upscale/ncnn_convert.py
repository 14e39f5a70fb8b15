"""Read ncnn ``.param``/``.bin`` pairs and turn Real-ESRGAN graphs into torch state dicts,
and write SRVGGNetCompact state dicts as ncnn graphs (:func:`compact_to_ncnn`).

The ``.param`` file is a text graph; the ``.bin`` file holds, in layer order, each
Convolution's weights (a 4-byte storage tag, then fp16 or fp32 values padded to 4 bytes) and
its fp32 bias, and each PReLU's fp32 slopes. Two graph shapes are recognised and laid out as
the state dicts spandrel detects:

- SRVGGNetCompact (``realesr-animevideov3``, ``realesr-general-x4v3``): ``body.N.weight/bias``;
- RRDBNet (``realesrgan-x4plus``, ``-x4plus-anime``): ``conv_first``, ``body.B.rdbK.convJ``,
  ``conv_body``, ``conv_up1/2``, ``conv_hr``, ``conv_last``.

A trailing ``Interp`` after the network (how the ``-x2``/``-x3`` animevideov3 files reach
their scale from the x4 network) is returned as a post-resize factor and mode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vt.errors import ModelUnavailableError

_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_FP32 = 0x00000000
_INTERP_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}
#: beyond any SRVGGNetCompact (realesr-general-x4v3: 4.9 MB; 128 features x 64 convs: 38 MB)
_COMPACT_MAX_BYTES = 64 << 20


@dataclass
class NcnnLayer:
    """One line of a ``.param`` graph, with the weights read for it from the ``.bin``."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, Any]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))

    def float_param(self, key: int, default: float = 0.0) -> float:
        return float(self.params.get(key, default))


@dataclass
class NcnnGraph:
    layers: list[NcnnLayer]

    @property
    def input_name(self) -> str:
        for layer in self.layers:
            if layer.type == "Input":
                return layer.outputs[0]
        raise ModelUnavailableError("ncnn graph has no Input layer")

    @property
    def output_name(self) -> str:
        consumed = {b for layer in self.layers for b in layer.inputs}
        for layer in reversed(self.layers):
            for blob in layer.outputs:
                if blob not in consumed:
                    return blob
        return self.layers[-1].outputs[0]

    def of_type(self, kind: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type == kind]


def _parse_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_param(path: Path) -> list[NcnnLayer]:
    """The layers of a text ``.param`` file."""
    return parse_param_text(Path(path).read_text(), str(path))


def parse_param_text(text: str, source: str = "ncnn graph") -> list[NcnnLayer]:
    """The layers of a text ``.param`` graph (``source`` names it in errors)."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != [str(_MAGIC)]:
        raise ModelUnavailableError(f"{source}: not a text ncnn .param file (bad magic)")
    layers = []
    for parts in lines[2:]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        inputs = parts[4 : 4 + n_in]
        outputs = parts[4 + n_in : 4 + n_in + n_out]
        params: dict[int, Any] = {}
        for item in parts[4 + n_in + n_out :]:
            key_text, _, value = item.partition("=")
            key = int(key_text)
            if key <= -23300:  # array: -233xx=count,v1,v2…
                values = value.split(",")
                params[-key - 23300] = [_parse_value(v) for v in values[1:]]
            else:
                params[key] = _parse_value(value)
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    return layers


class _BinReader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, nbytes: int) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise ModelUnavailableError(f"{self.path}: .bin ends early (truncated or mismatched)")
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = struct.unpack("<I", self.take(4))
        if tag == _TAG_FP16:
            values = np.frombuffer(self.take(2 * count), dtype="<f2").astype(np.float32)
            self.take((-2 * count) % 4)
            return values
        if tag == _TAG_FP32:
            return self.fp32(count)
        raise ModelUnavailableError(
            f"{self.path}: unsupported ncnn weight storage tag {tag:#010x} (quantised model?)"
        )


def load_graph(param_path: str | Path, bin_path: str | Path | None = None) -> NcnnGraph:
    """Parse ``.param`` and read every layer's weights from the matching ``.bin``."""
    param_path = Path(param_path)
    bin_path = Path(bin_path) if bin_path else param_path.with_suffix(".bin")
    if not bin_path.is_file():
        raise ModelUnavailableError(f"{param_path}: weights file {bin_path.name} is missing")
    layers = parse_param(param_path)
    reader = _BinReader(bin_path.read_bytes(), bin_path)
    for layer in layers:
        if layer.type == "Convolution":
            out_ch = layer.int_param(0)
            kw = layer.int_param(1)
            kh = layer.int_param(11, kw)
            size = layer.int_param(6)
            if layer.int_param(7, 1) != 1:
                raise ModelUnavailableError(f"{param_path}: grouped convolutions unsupported")
            weight = reader.tagged(size)
            layer.weights["weight"] = weight.reshape(out_ch, size // (out_ch * kh * kw), kh, kw)
            if layer.int_param(5):
                layer.weights["bias"] = reader.fp32(out_ch)
        elif layer.type == "PReLU":
            layer.weights["weight"] = reader.fp32(max(layer.int_param(0), 1))
        elif layer.type in (
            "InnerProduct",
            "ConvolutionDepthWise",
            "Deconvolution",
            "BatchNorm",
            "Scale",
            "Embed",
            "MemoryData",
        ):
            raise ModelUnavailableError(
                f"{param_path}: layer type {layer.type} is not supported by the converter"
            )
    if reader.pos != len(reader.data):
        raise ModelUnavailableError(
            f"{bin_path}: {len(reader.data) - reader.pos} unread bytes (graph and weights differ)"
        )
    return NcnnGraph(layers)


@dataclass
class ConvertedModel:
    """A torch state dict for spandrel, plus a resize the ncnn graph applies after it."""

    architecture: str  # "Compact" | "ESRGAN"
    state_dict: dict[str, Any]
    post_scale: float | None = None
    post_mode: str = "bicubic"


def _post_resize(graph: NcnnGraph, last_network_blob: str) -> tuple[float | None, str]:
    """A final Interp fed by the network's output, as (factor, mode)."""
    for layer in graph.of_type("Interp"):
        if layer.inputs == [last_network_blob]:
            fy, fx = layer.float_param(1, 1.0), layer.float_param(2, 1.0)
            if abs(fx - fy) > 1e-6 or layer.int_param(3) or layer.int_param(4):
                raise ModelUnavailableError("ncnn graph ends in an unsupported resize")
            return fx, _INTERP_MODES.get(layer.int_param(0), "bicubic")
    return None, "bicubic"


def convert_graph(graph: NcnnGraph) -> ConvertedModel:
    """Map a parsed Real-ESRGAN ncnn graph onto spandrel's state-dict layout."""
    import torch

    convs = graph.of_type("Convolution")
    kinds = [layer.type for layer in graph.layers if layer.type not in ("Input", "Split")]
    if graph.of_type("PixelShuffle") and graph.of_type("PReLU"):
        body = [layer for layer in graph.layers if layer.type in ("Convolution", "PReLU")]
        expected = ["Convolution", "PReLU"] * (len(body) // 2) + ["Convolution"]
        if [layer.type for layer in body] != expected:
            raise ModelUnavailableError("ncnn graph is not an SRVGGNetCompact network")
        state = {}
        for index, layer in enumerate(body):
            for key, value in layer.weights.items():
                state[f"body.{index}.{key}"] = torch.from_numpy(value.copy())
        adds = [layer for layer in graph.layers if layer.type == "BinaryOp"]
        last = adds[-1].outputs[0] if adds else graph.of_type("PixelShuffle")[0].outputs[0]
        factor, mode = _post_resize(graph, last)
        return ConvertedModel("Compact", state, factor, mode)
    if graph.of_type("Concat") and graph.of_type("Eltwise") and (len(convs) - 6) % 15 == 0:
        blocks = (len(convs) - 6) // 15
        names = ["conv_first"]
        for b in range(blocks):
            for r in range(1, 4):
                names += [f"body.{b}.rdb{r}.conv{j}" for j in range(1, 6)]
        names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
        if len(graph.of_type("Interp")) < 2:
            raise ModelUnavailableError("ncnn RRDBNet graph: only the x4 layout is supported")
        state = {}
        for name, layer in zip(names, convs, strict=True):
            for key, value in layer.weights.items():
                state[f"{name}.{key}"] = torch.from_numpy(value.copy())
        factor, mode = _post_resize(graph, convs[-1].outputs[0])
        return ConvertedModel("ESRGAN", state, factor, mode)
    raise ModelUnavailableError(
        "ncnn graph is neither SRVGGNetCompact nor RRDBNet; load it with the ncnn adapter "
        f"(layers: {', '.join(sorted(set(kinds)))})"
    )


def convert_ncnn(param_path: str | Path, bin_path: str | Path | None = None) -> ConvertedModel:
    """Convert a Real-ESRGAN ncnn model into a state dict spandrel loads."""
    return convert_graph(load_graph(param_path, bin_path))


# -- torch -> ncnn (SRVGGNetCompact) ------------------------------------------------------------
@dataclass(frozen=True)
class NcnnModelText:
    """An ncnn model in memory: the ``.param`` text and the ``.bin`` bytes."""

    param: str
    weights: bytes


def unwrap_state(state: dict[str, Any]) -> dict[str, Any]:
    """The weights of a Real-ESRGAN/BasicSR checkpoint (``params_ema``/``params`` wrappers and
    DataParallel's ``module.`` prefix removed), as spandrel unwraps them."""
    for key in ("params_ema", "params"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def compact_layout(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """The upscale factor of an SRVGGNetCompact state dict with PReLU activations given its
    tensor shapes (``body.0`` conv, ``body.1`` PReLU, ..., last conv to ``3*s*s`` channels),
    or None when the dict is anything else (ReLU variants keep no weights to tell them by)."""
    count = len({k.split(".")[1] for k in shapes if k.startswith("body.")})
    if count < 3 or count % 2 == 0:
        return None
    expected: set[str] = set()
    for i in range(count):
        expected |= {f"body.{i}.weight", f"body.{i}.bias"} if i % 2 == 0 else {f"body.{i}.weight"}
    if set(shapes) != expected:
        return None
    last = shapes[f"body.{count - 1}.weight"]
    feat = shapes["body.0.weight"][0]
    for i in range(count):
        shape = shapes[f"body.{i}.weight"]
        if i % 2 == 1:  # PReLU: one slope per channel
            if shape != (feat,):
                return None
            continue
        convs_into = 3 if i == 0 else feat
        square_odd = len(shape) == 4 and shape[2] == shape[3] and shape[2] % 2 == 1
        if not square_odd or shape[1] != convs_into or (i < count - 1 and shape[0] != feat):
            return None
        if shapes[f"body.{i}.bias"] != (shape[0],):
            return None
    scale = round((last[0] / 3) ** 0.5)
    return scale if scale >= 1 and 3 * scale * scale == last[0] else None


def compact_to_ncnn(
    state: dict[str, np.ndarray], *, post_scale: float | None = None, post_mode: str = "bicubic"
) -> NcnnModelText:
    """An SRVGGNetCompact (PReLU) state dict as the ncnn graph Real-ESRGAN's own files use:
    the conv/PReLU chain, PixelShuffle, plus the input upsampled (nearest) and added, and
    an optional final resize. Weights stay fp32 (storage tag 0): ncnn computes with exactly
    the checkpoint's values."""
    shapes = {k: tuple(np.shape(v)) for k, v in state.items()}
    scale = compact_layout(shapes)
    if scale is None:
        raise ModelUnavailableError("not an SRVGGNetCompact state dict with PReLU activations")
    count = len(shapes) // 3 * 2 + 1
    layers: list[str] = []
    chunks: list[bytes] = []
    blob = "input.1_splitncnn_1"
    for i in range(count):
        weight = np.ascontiguousarray(state[f"body.{i}.weight"], dtype="<f4")
        out = f"body_{i}"
        if i % 2 == 0:
            k = weight.shape[2]
            layers.append(
                f"Convolution body.{i} 1 1 {blob} {out} 0={weight.shape[0]} 1={k} 4={k // 2} "
                f"5=1 6={weight.size}"
            )
            bias = np.ascontiguousarray(state[f"body.{i}.bias"], dtype="<f4")
            chunks += [struct.pack("<I", _TAG_FP32), weight.tobytes(), bias.tobytes()]
        else:
            layers.append(f"PReLU body.{i} 1 1 {blob} {out} 0={weight.size}")
            chunks.append(weight.tobytes())
        blob = out
    sum_out = "output" if post_scale is None else "network"
    layers += [
        f"PixelShuffle upsampler 1 1 {blob} shuffled 0={scale}",
        f"Interp base 1 1 input.1_splitncnn_0 base 0=1 1={scale:.6e} 2={scale:.6e}",
        f"BinaryOp add 2 1 shuffled base {sum_out} 0=0",
    ]
    if post_scale is not None:
        modes = {mode: code for code, mode in _INTERP_MODES.items()}
        if post_mode not in modes:
            raise ModelUnavailableError(f"no ncnn resize for mode {post_mode!r}")
        layers.append(
            f"Interp post_resize 1 1 network output 0={modes[post_mode]} "
            f"1={post_scale:.6e} 2={post_scale:.6e}"
        )
    head = [
        "Input input.1 0 1 data",
        "Split splitncnn_input0 1 2 data input.1_splitncnn_0 input.1_splitncnn_1",
    ]
    # magic, then the layer and blob counts (each layer after Split makes one blob)
    counts = f"{len(head) + len(layers)} {3 + len(layers)}"
    text = "\n".join([str(_MAGIC), counts, *head, *layers]) + "\n"
    return NcnnModelText(text, b"".join(chunks))


def compact_from_onnx(path: Path) -> dict[str, np.ndarray] | None:
    """The SRVGGNetCompact state dict of an ONNX graph that is exactly that network (Conv and
    PRelu from the input, a last Conv, DepthToSpace in torch's CRD order, plus the input
    upsampled nearest by the same factor and added: what ``torch.onnx.export`` writes for
    it), or None for any other graph, or when the ``onnx`` package is missing."""
    if Path(path).stat().st_size > _COMPACT_MAX_BYTES:  # not parsed only to be refused
        return None
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1 and len(node.attribute) == 1:
            value = onnx.helper.get_attribute_value(node.attribute[0])
            is_tensor = isinstance(value, onnx.TensorProto)
            values[node.output[0]] = numpy_helper.to_array(value) if is_tensor else np.array(value)
        else:
            nodes.append(node)
    inputs = [i.name for i in graph.input if i.name not in values]
    if len(inputs) != 1 or len(graph.output) != 1:
        return None
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def attrs(node: Any) -> dict[str, Any]:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def conv_ok(node: Any) -> bool:
        a = attrs(node)
        weight = values.get(node.input[1]) if len(node.input) == 3 else None
        if weight is None or weight.ndim != 4 or node.input[2] not in values:
            return False
        k = weight.shape[2]
        return (
            weight.shape[3] == k
            and a.get("group", 1) == 1
            and list(a.get("strides", [1, 1])) == [1, 1]
            and list(a.get("dilations", [1, 1])) == [1, 1]
            and list(a.get("pads", [0, 0, 0, 0])) == [k // 2] * 4
        )

    state: dict[str, np.ndarray] = {}
    blob, index, chain = inputs[0], 0, []
    while True:
        following = [
            n for n in consumers.get(blob, []) if index or n.op_type not in ("Resize", "Upsample")
        ]
        if len(following) != 1:
            return None
        node = following[0]
        if index % 2 == 0 and node.op_type == "Conv" and conv_ok(node):
            state[f"body.{index}.weight"] = values[node.input[1]]
            state[f"body.{index}.bias"] = values[node.input[2]]
        elif index % 2 == 1 and node.op_type == "PRelu" and node.input[1] in values:
            state[f"body.{index}.weight"] = values[node.input[1]].reshape(-1)
        else:
            break
        chain.append(node)
        blob, index = node.output[0], index + 1
    shuffle = node
    a = attrs(shuffle)
    if shuffle.op_type != "DepthToSpace" or a.get("mode", b"DCR") != b"CRD" or index % 2 == 0:
        return None
    scale = int(a["blocksize"])
    add = consumers.get(shuffle.output[0], [])
    if len(add) != 1 or add[0].op_type != "Add" or add[0].output[0] != graph.output[0].name:
        return None
    base = [n for n in nodes if n.output[0] in add[0].input and n is not shuffle]
    if len(base) != 1 or not _nearest_upsample(base[0], inputs[0], scale, values, attrs):
        return None
    if len(nodes) != len(chain) + 3:  # nothing else in the graph
        return None
    state = {k: np.asarray(v, np.float32) for k, v in state.items()}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return state if compact_layout(shapes) == scale else None


def _nearest_upsample(
    node: Any, source: str, scale: int, values: dict[str, np.ndarray], attrs: Any
) -> bool:
    """Whether ``node`` repeats each pixel of ``source`` ``scale`` times: Resize/Upsample
    nearest at an integer factor, with coordinates that map every output pixel back to its own
    source pixel (asymmetric with floor, as torch exports it; half-pixel with rounding)."""
    if node.op_type not in ("Resize", "Upsample") or node.input[0] != source:
        return False
    a = attrs(node)
    if a.get("mode", b"nearest") != b"nearest":
        return False
    if node.op_type == "Resize":
        coords = a.get("coordinate_transformation_mode", b"half_pixel")
        rounding = a.get("nearest_mode", b"round_prefer_floor")
        exact = (coords == b"asymmetric" and rounding == b"floor") or (
            coords in (b"half_pixel", b"pytorch_half_pixel")
            and rounding in (b"round_prefer_floor", b"round_prefer_ceil")
        )
        if not exact:
            return False
    scales_name = node.input[2] if node.op_type == "Resize" else node.input[1]
    scales = values.get(scales_name)
    return scales is not None and [float(v) for v in scales.reshape(-1)] == [1, 1, scale, scale]
