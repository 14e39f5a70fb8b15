"""Temporal coherence: per-frame noise, cross-frame attention, overlapping-window blending.

Stable Diffusion run frame by frame flickers because every frame starts from other noise and
attends only to itself. Three mechanisms pull the frames together:

* **shared noise** — every frame's generator is seeded with the same seed (``--noise fresh``
  seeds frame ``k`` with ``seed + k``); generators live on the CPU, so a seed gives the same
  noise on every device, and a frame's noise never depends on the batch it lands in;
* **cross-frame attention** — the UNet's spatial self-attention of every frame uses the keys
  and values of one anchor frame (the clip's first), which rides along at the head of every
  model call;
* **overlapping windows** for AnimateDiff, blended linearly across the overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def frame_seed(seed: int, index: int, noise: str) -> int:
    """The seed of frame ``index``: the same for all with shared noise, ``seed + index``
    with fresh noise."""
    return seed if noise == "shared" else seed + index


def frame_generators(seed: int, indices: Sequence[int], noise: str) -> list[torch.Generator]:
    """One CPU generator per frame (diffusers draws each sample's noise from its own)."""
    import torch

    return [torch.Generator("cpu").manual_seed(frame_seed(seed, i, noise)) for i in indices]


def frame_noise(
    generators: Sequence[torch.Generator], shape: Sequence[int], device: Any, dtype: Any
) -> torch.Tensor:
    """``(len(generators), *shape)`` standard normal noise, one draw per frame's generator."""
    import torch

    draws = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(draws).to(device=device, dtype=dtype)


# -- cross-frame attention ------------------------------------------------------------------
@dataclass
class AnchorLayout:
    """How the frames of one UNet call are laid out: ``frames`` per chunk (the batch is
    ``chunks`` of them, e.g. unconditional then conditional with classifier-free guidance),
    the anchor first in each chunk."""

    frames: int = 1


class CrossFrameAttnProcessor:
    """Self-attention where every frame's queries meet the anchor frame's keys and values.

    The batch holds ``B = chunks x layout.frames`` samples; sample ``c * frames + k`` takes
    keys/values from sample ``c * frames`` (its chunk's anchor). Cross-attention (text) is
    unchanged. Otherwise the same computation as diffusers' ``AttnProcessor2_0``.
    """

    def __init__(self, layout: AnchorLayout) -> None:
        self.layout = layout

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        import torch.nn.functional as F

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        self_attention = encoder_hidden_states is None
        if self_attention:
            encoder_hidden_states = hidden_states[anchor_indices(batch, self.layout.frames)]
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.to(query.dtype)))
        if ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def anchor_indices(batch: int, frames: int) -> list[int]:
    """For each sample of a batch laid out in chunks of ``frames``, its chunk's first one."""
    frames = max(1, min(frames, batch))
    return [(i // frames) * frames for i in range(batch)]


def is_spatial_self_attention(name: str) -> bool:
    """``…attentions.N.transformer_blocks.M.attn1.processor`` (not AnimateDiff's temporal
    ``motion_modules``, not cross-attention ``attn2``)."""
    return name.endswith("attn1.processor") and "motion_modules" not in name


def enable_cross_frame_attention(unet: Any, layout: AnchorLayout) -> Callable[[], None]:
    """Swap the UNet's spatial self-attention processors; returns the undo function."""
    previous = dict(unet.attn_processors)
    shared = CrossFrameAttnProcessor(layout)
    unet.set_attn_processor(
        {
            name: shared if is_spatial_self_attention(name) else proc
            for name, proc in previous.items()
        }
    )

    def restore() -> None:
        unet.set_attn_processor(previous)

    return restore


# -- overlapping windows ---------------------------------------------------------------------
def window_weights(count: int, overlap: int) -> np.ndarray:
    """Each position's weight in a window of ``count`` frames whose first and last ``overlap``
    frames are shared with its neighbours: rising (1 … n)/(n+1) at the head, falling at the
    tail, 1 between. Two windows overlapping by ``n`` frames sum to 1 on each shared frame (a
    linear cross-fade); normalising by the sum of weights covers the clip's ends and any
    overlap wider than half a window."""
    p = np.arange(count, dtype=np.float32)
    rise = np.minimum((p + 1) / (overlap + 1), 1.0)
    fall = np.minimum((count - p) / (overlap + 1), 1.0)
    return np.minimum(rise, fall)


class WindowBlender:
    """Accumulates overlapping windows' outputs, weighted, and hands out finished frames."""

    def __init__(self, overlap: int) -> None:
        self.overlap = overlap
        self._sum: np.ndarray | None = None  # (covered, H, W, 3) float32
        self._weight: np.ndarray | None = None  # (covered,)

    @property
    def covered(self) -> int:
        """Frames from the start of the pending ones that some window has covered."""
        return 0 if self._weight is None else len(self._weight)

    def add(self, frames: np.ndarray) -> None:
        """A window's output for the pending frames ``0 … len(frames)-1``."""
        count = len(frames)
        w = window_weights(count, self.overlap)
        values = frames.astype(np.float32) * w[:, None, None, None]
        if self._sum is None or self._weight is None:
            self._sum, self._weight = values, w
            return
        covered = self.covered
        if count < covered:
            raise ValueError("a window must reach at least as far as the previous one")
        self._sum = np.concatenate([self._sum + values[:covered], values[covered:]])
        self._weight = np.concatenate([self._weight + w[:covered], w[covered:]])

    def take(self, count: int) -> np.ndarray:
        """The first ``count`` frames, final (no later window covers them): uint8."""
        assert self._sum is not None and self._weight is not None and count <= self.covered
        done = self._sum[:count] / self._weight[:count, None, None, None]
        self._sum, self._weight = self._sum[count:], self._weight[count:]
        if not len(self._weight):
            self._sum = self._weight = None
        return np.clip(np.rint(done), 0, 255).astype(np.uint8)
