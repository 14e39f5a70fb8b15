"""The autoencoder round trip: frames -> [-1, 1] -> padded -> encode -> decode -> cropped.

Models are loaded through the core (``vt.models.load_model`` with the diffusers adapter, Hugging
Face ids through the core's cache resolver); this module owns only what the spec adds: the
normalisation, the padding to the model's multiple, mean-or-sample latents, and halving the
batch on out-of-memory before giving up.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vt.errors import ModelUnavailableError, UsageError, VtError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor

log = logging.getLogger("vt")

DEFAULT_MODEL = "stabilityai/sd-vae-ft-mse"


class AutoencoderOutOfMemory(VtError):
    """Even one frame at a time does not fit: the caller falls back to letterbox."""


def default_dtype(device: str) -> str:
    """fp16 on CUDA (SD VAEs are trained for it), fp32 elsewhere."""
    return "fp16" if str(device).startswith("cuda") else "fp32"


def is_local_path(text: str) -> bool:
    """Whether ``text`` names a folder rather than a hub id (``org/name``)."""
    from vt.models.hub import looks_like_hub_id

    if os.path.exists(os.path.expanduser(text)):
        return True
    return (
        text.startswith((".", "/", "~")) or os.sep + os.sep in text or (not looks_like_hub_id(text))
    )


def load_hf_autoencoder(
    model_id: str = DEFAULT_MODEL,
    device: str = "auto",
    dtype: str | None = None,
    *,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
) -> Any:
    """Load an ``AutoencoderKL``/``AutoencoderTiny`` by hub id or local folder.

    Returns the core's ``DiffusersModel`` (``.model`` is the diffusers module). A local path
    that does not exist is a ``UsageError``; weights that cannot be had or read raise
    ``ModelUnavailableError``.
    """
    from vt.models import load_model, resolve_device

    text = str(model_id)
    if is_local_path(text) and not Path(text).expanduser().exists():
        raise UsageError(f"autoencoder model folder not found: {text}")
    device = resolve_device(device)
    dtype = dtype or default_dtype(device)
    try:
        model = load_model(
            text,
            adapter="diffusers",
            device=device,
            dtype=dtype,
            vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
        )
    except UsageError as exc:
        if Path(text).expanduser().exists():  # a folder that is there but is not a model
            raise ModelUnavailableError(f"cannot load {text}: {exc}") from None
        raise
    if getattr(model, "task", None) != "autoencoder":
        raise ModelUnavailableError(
            f"{text} is not an autoencoder (AutoencoderKL or AutoencoderTiny), it is a {model.task}"
        )
    return model


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


class VaeRoundtrip(FrameProcessor):
    """Encode and decode frames with an autoencoder; same size out as in.

    ``chunk_size`` frames are handed over at once (the memory bound); they go through the model
    ``batch`` frames at a time, halved on out-of-memory down to one frame.
    """

    name = "vae-roundtrip"
    layouts = ("rgb24", "rgb48")
    devices = ("cpu", "cuda", "mps")

    def __init__(
        self,
        model: Any = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str | None = None,
        chunk_size: int = 250,
        batch: int = 8,
        sample: bool = False,
        seed: int = 0,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
    ) -> None:
        if int(chunk_size) < 1 or int(batch) < 1:
            raise UsageError("chunk size and batch must be >= 1")
        if isinstance(model, str | os.PathLike):
            model = load_hf_autoencoder(
                str(model), device, dtype, vae_slicing=vae_slicing, vae_tiling=vae_tiling
            )
        self.descriptor = model
        self.vae = getattr(model, "model", model)
        self.multiple = int(
            getattr(getattr(model, "size_requirements", None), "multiple_of", 0) or 8
        )
        param = next(self.vae.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.batch_size = int(chunk_size)
        self.batch = int(batch)
        self.sample = bool(sample)
        self.seed = int(seed)
        self.retries = 0  # batches halved after out-of-memory

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        return fmt

    def process(self, batch: FrameBatch) -> FrameBatch:
        import torch

        x = batch.to_tensor(self.device, torch.float32)
        out = torch.empty_like(x)
        start, step = 0, self.batch
        while start < len(x):
            part = x[start : start + step]
            try:
                out[start : start + len(part)] = self.roundtrip(part)
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if step == 1:
                    raise AutoencoderOutOfMemory(
                        "autoencoder out of memory even one frame at a time"
                    ) from None
                step = max(1, step // 2)
                self.batch = step  # the next chunks start at the size that fitted
                self.retries += 1
                log.warning("vae-roundtrip: out of memory, retrying %d frames at a time", step)
                continue
            start += len(part)
        return batch.from_tensor(out)

    def roundtrip(self, x: Any) -> Any:
        """(N, 3, H, W) in [0, 1] -> the same after encode/decode."""
        import torch
        import torch.nn.functional as F

        _, _, h, w = x.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        with torch.inference_mode():
            y = x.to(self.dtype) * 2 - 1
            if ph or pw:  # replicate the edges: no black border leaks into the content
                y = F.pad(y, (0, pw, 0, ph), mode="replicate")
            encoded = self.vae.encode(y)
            if hasattr(encoded, "latent_dist"):  # AutoencoderKL
                dist = encoded.latent_dist
                if self.sample:
                    gen = torch.Generator(device=self.device).manual_seed(self.seed)
                    z = dist.sample(generator=gen)
                else:
                    z = dist.mean
            else:  # AutoencoderTiny: deterministic latents
                z = encoded.latents
            decoded = self.vae.decode(z).sample[:, :, :h, :w]
            return ((decoded.float() + 1) / 2).clamp_(0, 1)
