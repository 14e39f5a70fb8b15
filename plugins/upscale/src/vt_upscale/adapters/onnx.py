"""ONNX models through onnxruntime: scale from the model's shapes, else from a probe run.

On the CPU, frames go to the session as host arrays (converted once into the planar float
input, no torch); ``session.run`` releases the GIL and may be called from several threads at
once, so the upscaler runs a few frames side by side (see :mod:`vt_upscale.threads`). There,
per-channel PReLUs run rewritten for onnxruntime's NCHWc kernels (:mod:`vt_upscale.onnx_rewrite`)
once a probe frame gives the same output values as the file as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vt.errors import ModelUnavailableError, VtError
from vt.models import SizeRequirements, resolve_device
from vt.registry import ModelRef
from vt_upscale.adapters.pixels import from_unit_float, to_unit_float
from vt_upscale.sr import SRModel

_PROBE = 32


def available() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("onnxruntime") else "onnxruntime is not installed"


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxSRModel(SRModel):
    backend = "onnx"
    devices = ("cpu", "cuda")
    dtypes = ("fp32", "fp16")
    concurrent_calls = True
    pooled_memory = True

    def __init__(
        self, ref: ModelRef, *, device: str = "auto", dtype: str | None = None, threads: int = 0
    ) -> None:
        import onnxruntime as ort

        self.name = ref.name or ref.path.stem
        device = resolve_device(device)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise VtError(
                    "onnxruntime here has no CUDA provider (pip install "
                    "onnxruntime-gpu), use --device cpu"
                )
            index = int(device.partition(":")[2] or 0)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        self.path, self.providers, self.threads = ref.path, providers, threads
        self.source: str | bytes = str(ref.path)  # what sessions are made from
        self.rewritten_prelus = 0
        self.session = self._open_session(threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelUnavailableError(f"{self.name}: expected one image input, got {len(inputs)}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        in_shape, out_shape = list(inputs[0].shape), list(outputs[0].shape)
        if len(in_shape) != 4:
            raise ModelUnavailableError(f"{self.name}: input is not NCHW ({in_shape})")
        self.np_dtype = np.float16 if "float16" in inputs[0].type else np.float32
        self.dtype = "fp16" if self.np_dtype == np.float16 else "fp32"
        self.supports_half = self.dtype == "fp16"
        if dtype and dtype != self.dtype:
            raise VtError(
                f"{self.name}: this ONNX model takes {self.dtype} input; "
                f"export it in {dtype} to run it so"
            )
        self.device = device
        # frames stay host arrays on the CPU; CUDA sessions take them too, but the torch
        # relay keeps them on the device between processors
        self.host_arrays = device == "cpu"
        self.input_channels = _static(in_shape[1]) or 3
        self.max_batch = 1 if _static(in_shape[0]) == 1 else None
        fixed_h, fixed_w = _static(in_shape[2]), _static(in_shape[3])
        self.size_requirements = SizeRequirements(
            fixed=(fixed_h, fixed_w) if fixed_h and fixed_w else None
        )
        if fixed_h and _static(out_shape[2]):
            self.scale = _static(out_shape[2]) // fixed_h  # type: ignore[operator]
            self.output_channels = _static(out_shape[1]) or 3
        else:
            probe = np.zeros((1, self.input_channels, _PROBE, _PROBE), self.np_dtype)
            result = self._run(probe)
            self.scale = max(result.shape[2] // _PROBE, 1)
            self.output_channels = result.shape[1]
            if result.shape[2] != _PROBE * self.scale:
                raise ModelUnavailableError(
                    f"{self.name}: output size is not a whole multiple of the input size"
                )
        if device == "cpu" and self.np_dtype == np.float32:
            self._adopt_rewrite()

    def _adopt_rewrite(self) -> None:
        """Run the graph with its PReLUs rewritten (:mod:`vt_upscale.onnx_rewrite`) when
        there are any and a random frame comes out with the same values as from the file
        (anything that goes wrong on the way keeps the file)."""
        from vt_upscale.onnx_rewrite import prelu_for_nchwc

        found = prelu_for_nchwc(self.path)
        if found is None:
            return
        rewritten, count = found
        original, source = self.session, self.source
        self.source = rewritten
        try:
            candidate = self._open_session(self.threads)
        except ModelUnavailableError:
            self.source = source
            return
        h, w = self.size_requirements.fixed or (_PROBE, _PROBE)  # a size the file ran
        frame = np.random.default_rng(0).random((1, self.input_channels, h, w), np.float32)
        try:
            expected = self._run(frame)
            self.session = candidate
            same = np.array_equal(self._run(frame), expected, equal_nan=True)
        except Exception:  # noqa: BLE001 - onnxruntime's own errors: keep the file
            same = False
        if same:
            self.rewritten_prelus = count
        else:
            self.session, self.source = original, source

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.rewritten_prelus:
            info["prelu_rewritten_for_nchwc"] = self.rewritten_prelus
        return info

    def _open_session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(self.source, options, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelUnavailableError(
                f"{self.name}: onnxruntime cannot load it ({exc})"
            ) from None

    def set_threads(self, threads: int) -> None:
        """Threads each call uses from now on (the upscaler's thread plan): a new session,
        since onnxruntime fixes its thread pool when the session is made."""
        if threads != self.threads:
            self.session = self._open_session(threads)
            self.threads = threads

    def _run(self, array: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: array})[0]

    def upscale_image(self, image: np.ndarray) -> np.ndarray:
        """One ``(H, W, 3)`` uint8/uint16 RGB frame -> ``(H*s, W*s, 3)`` of the same dtype."""
        h, w = image.shape[:2]
        ph, pw = self.size_requirements.padded(h, w)
        if ph < h or pw < w:
            raise VtError(f"{self.name} takes fixed {ph}x{pw} input: use --tile")
        x = to_unit_float(image)  # float32 arithmetic, as the torch relay did
        if self.np_dtype != np.float32:
            x = x.astype(self.np_dtype)
        if (ph, pw) != (h, w):
            x = np.pad(x, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
        y = self._run(x[None])[0]
        return from_unit_float(y[:, : h * self.scale, : w * self.scale], image.dtype)

    def __call__(self, image: Any) -> Any:
        import torch

        n, c, h, w = image.shape
        ph, pw = self.size_requirements.padded(h, w)
        if ph < h or pw < w:
            raise VtError(f"{self.name} takes fixed {ph}x{pw} input: use --tile")
        x = image.detach().to("cpu", torch.float32)
        if (ph, pw) != (h, w):
            x = torch.nn.functional.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        array = x.numpy().astype(self.np_dtype, copy=False)
        if self.max_batch == 1:
            out = np.concatenate([self._run(array[i : i + 1]) for i in range(n)])
        else:
            out = self._run(array)
        y = torch.from_numpy(out.astype(np.float32, copy=False))
        y = y[..., : h * self.scale, : w * self.scale].clamp_(0, 1)
        return y.to(image.device)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def load(
    ref: ModelRef, *, device: str = "auto", dtype: str | None = None, threads: int = 0, **_: Any
) -> OnnxSRModel:
    if not ref.path.is_file():
        raise ModelUnavailableError(f"model file not found: {ref.path}")
    return OnnxSRModel(
        ref, device=device, dtype=None if dtype == "fp32" else dtype, threads=threads
    )
