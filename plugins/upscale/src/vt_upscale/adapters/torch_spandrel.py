"""Torch models through spandrel: any architecture spandrel detects, plus converted ncnn files."""

from __future__ import annotations

import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

from vt.errors import ModelUnavailableError, UntrustedModelError, VtError
from vt.lazy import deferred_imports
from vt.models import SizeRequirements, torch_dtype
from vt.registry import ModelRef
from vt_upscale.adapters.pixels import PEAKS
from vt_upscale.sr import SRModel

TORCH_FORMATS = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


def available() -> str | None:
    import importlib.util

    for module in ("torch", "spandrel"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


class TorchSRModel(SRModel):
    """A spandrel image model (or any ``nn.Module``) run with ``torch.inference_mode``.

    On the CPU it also takes frames one by one as host arrays (:meth:`upscale_image`), from
    several threads at once (torch releases the GIL in its kernels): the upscaler then runs
    frames side by side on one torch thread each (:mod:`vt_upscale.threads`)."""

    backend = "torch"
    devices = ("cpu", "cuda", "mps")
    dtypes = ("fp32", "fp16", "bf16")
    concurrent_calls = True

    def __init__(
        self,
        module: Any,
        *,
        name: str,
        scale: int,
        input_channels: int = 3,
        output_channels: int = 3,
        supports_half: bool = True,
        supports_bfloat16: bool = True,
        size_requirements: SizeRequirements | None = None,
        tiling: str = "supported",
        post_scale: float | None = None,
        post_mode: str = "bicubic",
        architecture: str | None = None,
        device: str = "cpu",
        dtype: str = "fp32",
        channels_last: bool = True,
    ) -> None:
        self.module = module.eval()
        self.name = name
        self.architecture = architecture or type(module).__name__
        self.net_scale = scale
        self.post_scale = post_scale
        self.post_mode = post_mode
        self.scale = round(scale * post_scale) if post_scale else scale
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.supports_half = supports_half
        self.supports_bfloat16 = supports_bfloat16
        self.size_requirements = size_requirements or SizeRequirements()
        self.tiling = tiling
        self.channels_last = channels_last
        self._threads_before: int | None = None
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.to(device, dtype)

    def _move(self, device: str, dtype: str) -> None:
        import torch

        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.module.to(device=device, dtype=torch_dtype(dtype), memory_format=memory_format)

    def __call__(self, image: Any) -> Any:
        import torch
        import torch.nn.functional as F

        n, c, h, w = image.shape
        if c != self.input_channels:
            raise VtError(f"{self.name} takes {self.input_channels}-channel input, got {c}")
        with torch.inference_mode():
            x = image.to(self.device, torch_dtype(self.dtype))
            ph, pw = self.size_requirements.padded(h, w)
            if (ph, pw) != (h, w):
                x = _pad(x, ph - h, pw - w)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.module(x)
            if self.post_scale:
                y = F.interpolate(
                    y,
                    scale_factor=self.post_scale,
                    mode=self.post_mode,
                    align_corners=False if self.post_mode != "nearest" else None,
                )
            y = y[..., : h * self.scale, : w * self.scale]
            return y.clamp_(0, 1)

    @property
    def host_arrays(self) -> bool:  # type: ignore[override]
        return str(self.device).startswith("cpu")

    def upscale_image(self, image: Any) -> Any:
        """One ``(H, W, 3)`` uint8/uint16 RGB frame -> ``(H*s, W*s, 3)`` of the same dtype.

        The interleaved pixels are the channels_last layout of a ``(1, 3, H, W)`` tensor: one
        conversion to float reaches the network in the layout it runs in, with no copy."""
        import numpy as np
        import torch

        peak = PEAKS[image.dtype]
        wide = image if image.dtype == np.uint8 else image.astype(np.int32)
        with torch.inference_mode():
            x = torch.from_numpy(wide).permute(2, 0, 1)[None].to(torch.float32).div_(peak)
            y = self(x)  # [0, 1], cropped to the input's size x scale
            y = y[0].permute(1, 2, 0).float().mul_(peak).round_()
            pixels = y.to(torch.uint8 if image.dtype == np.uint8 else torch.int32)
        return pixels.numpy().astype(image.dtype, copy=False)

    def set_threads(self, threads: int) -> None:
        """torch's intra-op threads, process-wide (torch has one count):
        :meth:`restore_threads` puts back the count found the first time."""
        import torch

        if self._threads_before is None:
            self._threads_before = torch.get_num_threads()
        torch.set_num_threads(max(int(threads), 1))

    def restore_threads(self) -> None:
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["architecture"] = self.architecture
        if self.post_scale:
            info["post_resize"] = f"{self.post_mode} x{self.post_scale:g}"
        return info


def _pad(x: Any, pad_h: int, pad_w: int) -> Any:
    """Pad bottom/right: reflect as far as the image allows, then replicate."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    rh, rw = min(pad_h, h - 1), min(pad_w, w - 1)
    if rh or rw:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if pad_h - rh or pad_w - rw:
        x = F.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
    return x


def from_descriptor(descriptor: Any, name: str, **options: Any) -> TorchSRModel:
    """Wrap a spandrel ``ImageModelDescriptor``."""
    from spandrel import ImageModelDescriptor

    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelUnavailableError(
            f"{name}: spandrel loaded a {descriptor.purpose} model, not an image-to-image model"
        )
    req = descriptor.size_requirements
    return TorchSRModel(
        descriptor.model,
        name=name,
        scale=descriptor.scale,
        input_channels=descriptor.input_channels,
        output_channels=descriptor.output_channels,
        supports_half=descriptor.supports_half,
        supports_bfloat16=descriptor.supports_bfloat16,
        size_requirements=SizeRequirements(req.minimum, req.multiple_of, req.square),
        tiling=descriptor.tiling.name.lower(),
        architecture=descriptor.architecture.name,
        **options,
    )


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip with a ``constants.pkl`` record, the
    test torch itself uses to route ``torch.load`` to ``torch.jit.load``."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.rpartition("/")[2] == "constants.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_state_dict(
    path: Path, *, trusted: bool = False, known_sha256: str | None = None
) -> dict[str, Any]:
    """Read weights without executing pickled code (``weights_only``).

    TorchScript runs code from the file as it loads, so it is read only when ``trusted`` (the
    user said ``--trust-model``) or the file's sha256 is ``known_sha256`` (a registered model's
    published digest)."""
    import torch

    from vt_upscale.models import sha256_of

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if is_torchscript(path):
        if not (trusted or (known_sha256 and sha256_of(path) == known_sha256)):
            raise UntrustedModelError(
                f"{path.name} is a TorchScript file: loading it runs code from the file. "
                "Pass --trust-model (trust_model=True in Python) only if you trust its source"
            )
        return torch.jit.load(str(path), map_location="cpu").state_dict()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unreadable checkpoint in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(
            f"{path.name}: cannot read torch weights ({reason}); vt loads state dicts only "
            "and never runs pickled code"
        ) from None
    if not isinstance(state, dict):
        raise ModelUnavailableError(f"{path.name}: expected a state dict, got {type(state)}")
    return state


_IMPORT_LOCK = threading.Lock()


def import_spandrel() -> Any:
    """:mod:`spandrel`, without importing torchvision. spandrel registers every architecture
    when imported, and two of them (LaMa, RestoreFormer) import torchvision, which imports
    ``torch._dynamo``: 1.1 s of every start here, more than ``import torch`` itself, for
    functions only those two models call. Those are imported when first called instead."""
    with _IMPORT_LOCK:  # models loaded from several threads: one import, fully done
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        try:
            with deferred_imports("torchvision.transforms.functional"):
                import spandrel
        except Exception:  # noqa: BLE001 - a spandrel that uses the names at import time
            for name in [n for n in sys.modules if n.split(".")[0] == "spandrel"]:
                del sys.modules[name]
            import spandrel
        return spandrel


def known_sha256(name: str | None) -> str | None:
    from vt_upscale.models import BY_NAME

    info = BY_NAME.get(name or "")
    return info.sha256 if info is not None else None


def load(
    ref: ModelRef,
    *,
    device: str = "auto",
    dtype: str = "fp32",
    channels_last: bool = True,
    trust_model: bool = False,
    **_: Any,
) -> TorchSRModel:
    """The ``torch-spandrel`` adapter's loader: torch checkpoints, or ncnn files converted.

    ``trust_model`` allows TorchScript files, which run code as they load."""
    spandrel = import_spandrel()

    name = ref.name or ref.path.stem
    options = {"device": device, "dtype": dtype, "channels_last": channels_last}
    if not ref.path.exists():
        raise ModelUnavailableError(f"model file not found: {ref.path}")
    if ref.format == ".param":
        from vt_upscale.ncnn_convert import convert_ncnn

        converted = convert_ncnn(ref.path)
        state, post_scale, post_mode = (
            converted.state_dict,
            converted.post_scale,
            converted.post_mode,
        )
    else:
        state = load_state_dict(ref.path, trusted=trust_model, known_sha256=known_sha256(ref.name))
        post_scale = ref.metadata.get("post_scale")
        post_mode = ref.metadata.get("post_mode", "bicubic")
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise ModelUnavailableError(
            f"{name}: spandrel does not recognise this architecture "
            "(for non-commercial ones: pip install spandrel_extra_arches)"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailableError(f"{name}: cannot load weights ({exc})") from None
    return from_descriptor(descriptor, name, post_scale=post_scale, post_mode=post_mode, **options)
