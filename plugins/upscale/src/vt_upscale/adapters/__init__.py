"""Model adapters: torch (spandrel), ONNX (onnxruntime) and ncnn, registered with the core.

Each adapter's ``load(ref, device=, dtype=, threads=)`` returns a :class:`vt_upscale.sr.SRModel`.
Any plugin can load a model through the core's ``model_adapters`` registry and get the same
object. ``.param`` files of Real-ESRGAN networks run through ncnn on the CPU in fp32 and in
``auto`` (fp32 or bf16), and through torch (converted) on GPUs or when fp16/bf16 is asked for;
SRVGGNetCompact networks saved by torch or exported to ONNX likewise run through ncnn
(converted) on the CPU in fp32 and ``auto``. ``--backend`` overrides the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vt.errors import ModelUnavailableError, UsageError
from vt.registry import ModelAdapterInfo, ModelRef
from vt_upscale.adapters import ncnn as ncnn_adapter
from vt_upscale.adapters import onnx as onnx_adapter
from vt_upscale.adapters import torch_spandrel
from vt_upscale.sr import SRModel

TORCH = ModelAdapterInfo(
    name="torch-spandrel",
    load=torch_spandrel.load,
    formats=(*torch_spandrel.TORCH_FORMATS, ".param"),
    description="PyTorch via spandrel: any architecture spandrel detects "
    "(.pth/.pt/.ckpt/.safetensors); Real-ESRGAN ncnn files converted to torch",
    tasks=("super-resolution", "restoration"),
    devices=("cpu", "cuda", "mps"),
    dtypes=("fp32", "fp16", "bf16"),
    available=torch_spandrel.available,
)
ONNX = ModelAdapterInfo(
    name="onnx",
    load=onnx_adapter.load,
    formats=(".onnx",),
    description="ONNX via onnxruntime (CPU, or CUDA with onnxruntime-gpu)",
    tasks=("super-resolution", "restoration"),
    devices=("cpu", "cuda"),
    dtypes=("fp32", "fp16"),
    available=onnx_adapter.available,
)
NCNN = ModelAdapterInfo(
    name="ncnn",
    load=ncnn_adapter.load,
    formats=(".param", *torch_spandrel.TORCH_FORMATS, ".onnx"),
    description="ncnn .param/.bin pairs via the ncnn package (CPU); SRVGGNetCompact torch "
    "and ONNX files converted, on the CPU (fp32, or bf16 for --dtype auto)",
    tasks=("super-resolution", "restoration"),
    devices=("cpu",),
    dtypes=("fp32", "bf16"),
    available=ncnn_adapter.available,
    probe=ncnn_adapter.runs_converted,
)
ADAPTERS = (TORCH, ONNX, NCNN)
#: --backend spellings
BACKENDS = {
    "torch": "torch-spandrel",
    "spandrel": "torch-spandrel",
    "pytorch": "torch-spandrel",
    "torch-spandrel": "torch-spandrel",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "ncnn": "ncnn",
}


def convertible(ref: ModelRef) -> bool:
    """Whether an ncnn graph is one the torch adapter rebuilds (Compact or RRDBNet)."""
    from vt_upscale.ncnn_convert import parse_param

    try:
        kinds = {layer.type for layer in parse_param(ref.path)}
    except (OSError, ModelUnavailableError, ValueError, IndexError):
        return False
    compact = {"Convolution", "PReLU", "PixelShuffle"} <= kinds
    rrdb = {"Convolution", "Concat", "Eltwise", "Interp"} <= kinds
    return compact or rrdb


def choose(ref: ModelRef, candidates: Sequence[ModelAdapterInfo]) -> ModelAdapterInfo | None:
    """This plugin's pick for ncnn ``.param`` files, and for torch and ONNX files of networks
    ncnn runs (others: None, the core decides).

    Real-ESRGAN graphs run in torch (converted) on GPUs and when fp16/bf16 is asked for, and
    through ncnn on the CPU in fp32 (measured about twice as fast as torch there) and in
    ``auto``: bf16 on CPUs that compute it natively, where ncnn takes 8-22 % less time per
    frame than in fp32 and, unlike torch, needs neither torch's import (~1 s) nor its memory
    (~500 MB); an asked-for bf16 keeps torch, whose bf16 kernels are faster still once
    started (docs/benchmarks.md). The device and dtype come from ``ref.metadata`` when the
    caller knows them.
    """
    by_name = {c.name: c for c in candidates}
    dtype = ref.metadata.get("dtype", "fp32")
    if ref.format in (*torch_spandrel.TORCH_FORMATS, ".onnx"):
        # ncnn is among the candidates only when its probe found SRVGGNetCompact on the CPU;
        # an asked-for bf16 of a torch file keeps torch's bf16 kernels
        if dtype == "bf16" and ref.format in torch_spandrel.TORCH_FORMATS:
            return by_name.get("torch-spandrel")
        return by_name.get("ncnn")
    if ref.format != ".param":
        return None
    torch_ok = (
        "torch-spandrel" in by_name
        and by_name["torch-spandrel"].available() is None
        and convertible(ref)
    )
    ncnn = by_name.get("ncnn")
    if ncnn is not None and ncnn.available() is not None:
        ncnn = None
    device = ref.metadata.get("device")
    if device is None:  # caller did not say: the GPU when there is one
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    wants_torch = device != "cpu" or dtype not in ("fp32", "auto") or ncnn is None
    if torch_ok and wants_torch:
        return by_name["torch-spandrel"]
    return ncnn or (by_name["torch-spandrel"] if torch_ok else None)


def load_model(
    model: Any,
    *,
    backend: str | None = None,
    device: str = "auto",
    dtype: str = "fp32",
    threads: int = 0,
    download: bool = True,
    trust_model: bool = False,
    cache: bool = True,
) -> SRModel:
    """``model`` (name, path, ``ModelRef`` or loaded ``SRModel``) through the core loader,
    with ``--backend`` spellings mapped to adapter names.

    ``trust_model`` lets the torch adapter load TorchScript, which runs code from the file.
    With ``cache`` the load goes through the core's per-process model memo
    (``vt.models.memo``): the same weights, adapter and options give the same object, which
    the memo owns (callers must not close it)."""
    if isinstance(model, SRModel):
        return model
    from vt.models import load_model as core_load

    adapter = None
    if backend:
        adapter = BACKENDS.get(backend.lower())
        if adapter is None:
            raise UsageError(f"unknown backend {backend!r} (use torch, onnx or ncnn)")
    loaded = core_load(
        model,
        adapter=adapter,
        device=device,
        dtype=dtype,
        download=download,
        cache=cache,
        threads=threads,
        trust_model=trust_model,
    )
    if not isinstance(loaded, SRModel):
        raise UsageError(f"{loaded.name} is a {loaded.task} model, not a super-resolution one")
    return loaded
