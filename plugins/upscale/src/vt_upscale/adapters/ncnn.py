"""ncnn ``.param``/``.bin`` models through the ``ncnn`` package (CPU), without torch.

In bf16 (what ``--dtype auto`` picks on CPUs that compute bf16 natively, or ``--backend ncnn
--dtype bf16``) ncnn keeps activations and weights in bf16 between layers and computes in
fp32: 8-22 % less time per frame here, up to 4/255 off the fp32 output (docs/benchmarks.md).

Frames come as the decoder made them, ``(H, W, 3)`` uint8/uint16 RGB, and are converted once,
straight into the planar float32 array ncnn wraps as its input (no copy of ours besides that
one); the output comes back as ``(H*s, W*s, 3)`` pixels of the same dtype. Calls from several
threads run in parallel (the call releases the GIL), each on a net of its own, so the
upscaler can run a few frames side by side (see :mod:`vt_upscale.threads`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from vt.errors import ModelUnavailableError, VtError
from vt.registry import ModelRef
from vt_upscale.adapters.pixels import from_unit_float, to_unit_float
from vt_upscale.ncnn_convert import (
    NcnnGraph,
    NcnnModelText,
    compact_from_onnx,
    compact_layout,
    compact_to_ncnn,
    parse_param_text,
    unwrap_state,
)
from vt_upscale.sr import SRModel
from vt_upscale.threads import available_cores

_PROBE = 16
#: a pooled block is reused for a request of at least this fraction of its size
POOL_FIT = 0.75


def available() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("ncnn") else "ncnn is not installed (pip install ncnn)"


class NcnnSRModel(SRModel):
    backend = "ncnn"
    devices = ("cpu",)
    dtypes = ("fp32", "bf16")
    supports_bfloat16 = True
    max_batch = 1
    host_arrays = True
    concurrent_calls = True
    pooled_memory = True

    def __init__(
        self,
        ref: ModelRef,
        *,
        threads: int = 0,
        dtype: str = "fp32",
        model: NcnnModelText | None = None,
    ) -> None:
        """The ``.param``/``.bin`` pair at ``ref.path``, or ``model`` (a graph made in memory
        from ``ref``'s torch weights), run in ``dtype`` (fp32 or bf16)."""
        self.name = ref.name or ref.path.stem
        self.param_path: Path = ref.path
        self.bin_path: Path = ref.path.with_suffix(".bin")
        # ncnn references weights loaded from memory instead of copying them: held as long
        # as any net may run
        self.in_memory = model
        if model is None and not self.bin_path.is_file():
            raise ModelUnavailableError(f"{self.name}: {self.bin_path} is missing")
        text = model.param if model is not None else ref.path.read_text()
        graph = NcnnGraph(parse_param_text(text, str(ref.path)))
        self.input_blob, self.output_blob = graph.input_name, graph.output_name
        self.threads = threads or available_cores()
        self.dtype = dtype
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # nets not running a frame now
        # every net made (for set_threads and close) -> its blob and workspace pools
        self._nets: dict[Any, tuple[Any, Any]] = {}
        self.net: Any = self._new_net()
        self._idle.append(self.net)
        probe = self._run(np.zeros((3, _PROBE, _PROBE), np.float32))
        self.scale = max(probe.shape[1] // _PROBE, 1)
        self.output_channels = probe.shape[0]
        self.device = "cpu"

    def _new_net(self) -> Any:
        import ncnn

        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = self.threads
        # fp32 arithmetic; bf16 storage when asked for (fp16 storage is no faster on x86)
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = self.dtype == "bf16"
        opt.use_vulkan_compute = False
        # ncnn's pools hand a request any free block at least as large by default, so small
        # requests take large blocks and large ones then allocate anew; reusing a block only
        # within 4/3 of the request lowers the peak of carphone x4 by 10-20 MB, no slower
        # (docs/benchmarks.md). ncnn keeps no reference to them: they live in ``_nets`` as
        # long as the net (extract returns a copy made outside them).
        pools = (ncnn.PoolAllocator(), ncnn.PoolAllocator())
        for pool in pools:
            pool.set_size_compare_ratio(POOL_FIT)
        opt.blob_allocator, opt.workspace_allocator = pools
        if self.in_memory is not None:
            if net.load_param_mem(self.in_memory.param) != 0:
                raise ModelUnavailableError(f"{self.name}: ncnn cannot load the converted graph")
            net.load_model_mem(self.in_memory.weights)
        elif net.load_param(str(self.param_path)) != 0 or net.load_model(str(self.bin_path)) != 0:
            raise ModelUnavailableError(f"{self.name}: ncnn cannot load {self.param_path}")
        self._nets[net] = pools
        return net

    def set_threads(self, threads: int) -> None:
        """Threads each call uses from now on (the upscaler's thread plan). ncnn packs the
        winograd weights for the thread count at load time, so nets made for another count
        are dropped and made again as calls need them."""
        self._remake(max(int(threads), 1), self.dtype)

    def _move(self, device: str, dtype: str) -> None:
        """``to(dtype=...)``: nets are made for one storage type, so they are made again."""
        self._remake(self.threads, dtype)

    def _remake(self, threads: int, dtype: str) -> None:
        with self._lock:
            if (threads, dtype) == (self.threads, self.dtype):
                return
            self.threads, self.dtype = threads, dtype
            for net in self._idle:  # nets running a call go when it returns (_release)
                self._drop(net)
            self._idle = []
            self.net = self._new_net()
            self._idle.append(self.net)

    # -- running -----------------------------------------------------------------------------
    def _acquire(self) -> Any:
        with self._lock:
            if self.net is None:
                raise VtError(f"{self.name}: the model was closed")
            if self._idle:
                return self._idle.pop()
            # a call running beside others gets a net of its own (weights: ~1 MB for the
            # compact models) rather than sharing one net's allocators between threads
            return self._new_net()

    def _drop(self, net: Any) -> None:
        """Free ``net`` and its pools (never while a call runs on it)."""
        net.clear()
        del self._nets[net]

    def _release(self, net: Any) -> None:
        with self._lock:
            current = (net.opt.num_threads, net.opt.use_bf16_storage) == (
                self.threads,
                self.dtype == "bf16",
            )
            if self.net is not None and current:
                self._idle.append(net)
            elif net in self._nets:  # made for other threads or dtype, or closed meanwhile
                self._drop(net)

    def _run(self, chw: np.ndarray) -> np.ndarray:
        """The network on one C-contiguous ``(C, H, W)`` float32 array; its ``(C, H, W)``
        float32 output, ours to change."""
        import ncnn

        net = self._acquire()
        try:
            with net.create_extractor() as ex:
                # the Mat wraps ``chw``'s memory, which the caller's reference keeps alive
                ex.input(self.input_blob, ncnn.Mat(chw))
                ret, out = ex.extract(self.output_blob)
            if ret != 0:
                raise VtError(f"{self.name}: ncnn inference failed (code {ret})")
            return np.asarray(out)  # a view that keeps ``out``, extract's own copy, alive
        finally:
            self._release(net)

    def upscale_image(self, image: np.ndarray) -> np.ndarray:
        """One ``(H, W, 3)`` uint8/uint16 RGB frame -> ``(H*s, W*s, 3)`` of the same dtype."""
        return from_unit_float(self._run(to_unit_float(image)), image.dtype)

    def __call__(self, image: Any) -> Any:
        """``(N, C, H, W)`` float tensor in [0, 1] -> the upscaled tensor (the generic model
        contract, for callers that hold tensors; the upscaler hands frames to
        :meth:`upscale_image`)."""
        import torch

        x = image.detach().to("cpu", torch.float32).numpy()
        out = np.stack([self._run(np.ascontiguousarray(frame)) for frame in x])
        return torch.from_numpy(out).clamp_(0, 1).to(image.device)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.in_memory is not None:
            info["converted_from"] = self.param_path.suffix.lower()
        return info

    def close(self) -> None:
        """Free the nets; one still running a call is freed when it returns (_release)."""
        with self._lock:
            for net in self._idle:
                self._drop(net)
            self._idle = []
            self.net = None


# -- SRVGGNetCompact from torch and ONNX files -----------------------------------------------------
def _torch_state(path: Path, *, data: bool) -> dict[str, Any] | None:
    """A torch checkpoint's tensors (``data=False``: their shapes only), unwrapped; read
    without torch where :mod:`vt.models.checkpoints` takes the file, else by torch under its
    ``weights_only`` rules. None for TorchScript and for files holding no dict."""
    from vt.models.checkpoints import CheckpointFormatError, read_checkpoint
    from vt_upscale.adapters.torch_spandrel import is_torchscript, load_state_dict

    try:
        state = read_checkpoint(path, data=data)
    except CheckpointFormatError:
        if is_torchscript(path):
            return None
        if data:
            state = load_state_dict(path)
        else:  # the pickle only: tensors stay in the file, memory-mapped
            import torch

            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict):
        return None
    return unwrap_state(state)


def runs_converted(ref: ModelRef) -> bool:
    """Whether ``ref`` is an SRVGGNetCompact network (PReLU) in a torch checkpoint or an ONNX
    file, asked for on the CPU in fp32, bf16 or ``auto`` (an asked-for bf16 of a torch file
    is still chosen for torch's faster bf16 kernels: ``choose``). A file that cannot be read
    here is left to the other adapters, which say why."""
    from vt_upscale.adapters.torch_spandrel import TORCH_FORMATS

    if ref.format == ".param":
        return True
    if ref.format not in (*TORCH_FORMATS, ".onnx") or not ref.path.is_file():
        return False
    if ref.metadata.get("device", "cpu") != "cpu":
        return False
    if ref.metadata.get("dtype", "fp32") not in ("fp32", "bf16", "auto"):
        return False
    try:
        if ref.format == ".onnx":
            return compact_from_onnx(ref.path) is not None
        state = _torch_state(ref.path, data=False)
    except Exception:  # noqa: BLE001 - unreadable here: the other adapters report it
        return False
    if state is None:
        return False
    shapes = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    return len(shapes) == len(state) and compact_layout(shapes) is not None


def _compact_graph(ref: ModelRef) -> NcnnModelText:
    """The ncnn graph of ``ref``'s SRVGGNetCompact weights (torch checkpoint or ONNX)."""
    if ref.format == ".onnx":
        arrays = compact_from_onnx(ref.path)
        if arrays is None:
            raise ModelUnavailableError(f"{ref.path.name}: not an SRVGGNetCompact ONNX graph")
    else:
        state = _torch_state(ref.path, data=True)
        if state is None:
            raise ModelUnavailableError(f"{ref.path.name}: not a state dict of tensors")
        arrays = {
            k: np.asarray(v.float() if hasattr(v, "float") else v, np.float32)
            for k, v in state.items()
        }
    return compact_to_ncnn(
        arrays,
        post_scale=ref.metadata.get("post_scale"),
        post_mode=ref.metadata.get("post_mode", "bicubic"),
    )


def load(
    ref: ModelRef, *, device: str = "auto", dtype: str = "fp32", threads: int = 0, **_: Any
) -> NcnnSRModel:
    if device not in ("auto", "cpu"):
        raise VtError(
            f"the ncnn adapter runs on the CPU here, not {device}; use --backend torch for GPUs"
        )
    if dtype not in NcnnSRModel.dtypes:
        raise VtError(f"the ncnn adapter runs in fp32 or bf16, not {dtype}")
    if not ref.path.is_file():
        raise ModelUnavailableError(f"model file not found: {ref.path}")
    if ref.format != ".param":
        return NcnnSRModel(ref, threads=threads, dtype=dtype, model=_compact_graph(ref))
    return NcnnSRModel(ref, threads=threads, dtype=dtype)
