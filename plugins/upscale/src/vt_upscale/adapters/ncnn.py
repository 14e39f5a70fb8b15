"""ncnn ``.param``/``.bin`` models through the ``ncnn`` package (CPU)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vt.errors import ModelUnavailableError, VtError
from vt.registry import ModelRef

from vt_upscale.ncnn_convert import NcnnGraph, parse_param
from vt_upscale.sr import SRModel

_PROBE = 16


def available() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("ncnn") else "ncnn is not installed (pip install ncnn)"


class NcnnSRModel(SRModel):
    backend = "ncnn"
    devices = ("cpu",)
    dtypes = ("fp32",)
    max_batch = 1

    def __init__(self, ref: ModelRef, *, threads: int = 0) -> None:
        import ncnn

        self.name = ref.name or ref.path.stem
        bin_path = ref.path.with_suffix(".bin")
        if not bin_path.is_file():
            raise ModelUnavailableError(f"{self.name}: {bin_path} is missing")
        graph = NcnnGraph(parse_param(ref.path))
        self.input_blob, self.output_blob = graph.input_name, graph.output_name
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = threads or os.cpu_count() or 1
        # fp32 storage and arithmetic: exact results, and what the torch path computes
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_vulkan_compute = False
        if self.net.load_param(str(ref.path)) != 0 or self.net.load_model(str(bin_path)) != 0:
            raise ModelUnavailableError(f"{self.name}: ncnn cannot load {ref.path}")
        probe = self._run(np.zeros((3, _PROBE, _PROBE), np.float32))
        self.scale = max(probe.shape[1] // _PROBE, 1)
        self.output_channels = probe.shape[0]
        self.device, self.dtype = "cpu", "fp32"

    def _run(self, chw: np.ndarray) -> np.ndarray:
        import ncnn

        array = np.ascontiguousarray(chw, dtype=np.float32)
        mat = ncnn.Mat(array)  # wraps ``array``'s memory: keep ``array`` alive until extract
        with self.net.create_extractor() as ex:
            ex.input(self.input_blob, mat)
            ret, out = ex.extract(self.output_blob)
            if ret != 0:
                raise VtError(f"{self.name}: ncnn inference failed (code {ret})")
            return np.array(out, copy=True)

    def __call__(self, image: Any) -> Any:
        import torch

        x = image.detach().to("cpu", torch.float32).numpy()
        out = np.stack([self._run(frame) for frame in x])
        return torch.from_numpy(out).clamp_(0, 1).to(image.device)

    def close(self) -> None:
        if getattr(self, "net", None) is not None:
            self.net.clear()
            self.net = None


def load(ref: ModelRef, *, device: str = "auto", dtype: str = "fp32", threads: int = 0,
         **_: Any) -> NcnnSRModel:
    if device not in ("auto", "cpu"):
        raise VtError(f"the ncnn adapter runs on the CPU here, not {device}; "
                      "use --backend torch for GPUs")
    if dtype != "fp32":
        raise VtError(f"the ncnn adapter runs in fp32 only, not {dtype}")
    if not ref.path.is_file():
        raise ModelUnavailableError(f"model file not found: {ref.path}")
    return NcnnSRModel(ref, threads=threads)
