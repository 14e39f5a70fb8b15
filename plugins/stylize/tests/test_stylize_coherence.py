"""Coherence mechanics, checked as properties.

Plumbing checks: with random tiny weights nothing here says anything about how the output
looks; they check that the mechanisms do what they claim (same noise -> same frames, the
anchor's keys and values are the ones attended to, windows cross-fade).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stylize_helpers import batch

from vt.media.frames import FrameFormat
from vt_stylize import StylizeProcessor
from vt_stylize.coherence import (
    AnchorLayout,
    CrossFrameAttnProcessor,
    WindowBlender,
    anchor_indices,
    enable_cross_frame_attention,
    frame_generators,
    frame_noise,
    window_weights,
)


def _still(frame: np.ndarray, count: int = 3) -> np.ndarray:
    return np.repeat(frame[None], count, axis=0)


def _stylize(models: dict[str, Path], images: np.ndarray, **options: object) -> np.ndarray:
    options = {
        "prompt": "anime style",
        "model": str(models["sd"]),
        "steps": 2,
        "strength": 0.5,
        "max_res": 32,
        **options,
    }
    p = StylizeProcessor(**options)
    try:
        h, w = images.shape[1:3]
        p.configure(FrameFormat(w, h))
        return p.process(batch(images)).images
    finally:
        p.close()


@pytest.mark.parametrize("batch_size", [1, 3])
def test_still_clip_shared_noise_gives_identical_frames_fresh_noise_does_not(
    models: dict[str, Path], carphone_frames: np.ndarray, batch_size: int
) -> None:
    still = _still(carphone_frames[0])
    shared = _stylize(models, still, noise="shared", batch_size=batch_size)
    assert shared.shape == (3, 32, 40, 3)
    assert np.array_equal(shared[0], shared[1]) and np.array_equal(shared[0], shared[2])
    fresh = _stylize(models, still, noise="fresh", batch_size=batch_size)
    assert not np.array_equal(fresh[0], fresh[1]) and not np.array_equal(fresh[1], fresh[2])
    # frame 0's seed is the same in both modes: only the later frames change
    assert np.array_equal(fresh[0], shared[0])


def test_still_clip_with_cross_frame_attention_stays_identical(
    models: dict[str, Path], carphone_frames: np.ndarray
) -> None:
    still = _still(carphone_frames[0], 4)
    out = _stylize(models, still, cross_frame_attention=True, batch_size=2)
    assert all(np.array_equal(out[0], out[k]) for k in range(1, 4))


def test_cross_frame_attention_changes_every_frame_but_the_anchor(
    models: dict[str, Path], carphone_frames: np.ndarray
) -> None:
    """The anchor attends to itself (output unchanged); later frames, also those in later
    calls where the anchor rides along, attend to it instead of themselves."""
    frames = carphone_frames[[0, 1, 2, 3]]
    plain = _stylize(models, frames, batch_size=2)
    linked = _stylize(models, frames, batch_size=2, cross_frame_attention=True)
    assert np.array_equal(plain[0], linked[0])
    assert all(not np.array_equal(plain[k], linked[k]) for k in (1, 2, 3))


def test_frame_noise_depends_on_the_frame_not_the_batch() -> None:
    alone = frame_noise(frame_generators(7, [5], "fresh"), (4, 3, 3), "cpu", torch.float32)
    among = frame_noise(frame_generators(7, [4, 5, 6], "fresh"), (4, 3, 3), "cpu", torch.float32)
    assert torch.equal(alone[0], among[1]) and not torch.equal(among[0], among[1])
    shared = frame_noise(frame_generators(7, [0, 9], "shared"), (4, 3, 3), "cpu", torch.float32)
    assert torch.equal(shared[0], shared[1])


# -- cross-frame attention, through the processor ------------------------------------------
def _attention() -> torch.nn.Module:
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


def _reference(
    attn: torch.nn.Module, queries_from: torch.Tensor, keys_from: torch.Tensor
) -> torch.Tensor:
    """Plain attention of one frame's queries over another frame's keys/values."""
    q = attn.to_q(queries_from)
    k, v = attn.to_k(keys_from), attn.to_v(keys_from)
    heads = attn.heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2)

    out = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
    out = out.transpose(1, 2).reshape(q.shape[0], -1, q.shape[-1])
    return attn.to_out[1](attn.to_out[0](out))


def test_cross_frame_attention_uses_the_anchors_keys_and_values() -> None:
    attn = _attention()
    frames, tokens = 3, 10
    torch.manual_seed(1)
    x = torch.randn(2 * frames, tokens, 16)  # two chunks (unconditional, conditional)
    attn.set_processor(CrossFrameAttnProcessor(AnchorLayout(frames)))
    with torch.no_grad():
        out = attn(x)
        for k in range(2 * frames):
            anchor = (k // frames) * frames
            expected = _reference(attn, x[k : k + 1], x[anchor : anchor + 1])
            assert torch.allclose(out[k : k + 1], expected, atol=1e-5), k
        # frame 2 does not see frame 1: changing frame 1 leaves frame 2 alone…
        y = x.clone()
        y[1] += 1.0
        assert torch.allclose(attn(y)[2], out[2], atol=1e-6)
        # …but changing the anchor changes every frame of its chunk, and only those
        z = x.clone()
        z[0] += 1.0
        moved = attn(z)
        assert not torch.allclose(moved[2], out[2], atol=1e-4)
        assert torch.allclose(moved[frames + 2], out[frames + 2], atol=1e-6)
        # text cross-attention is untouched: every frame meets its own text tokens
        text = torch.randn(2 * frames, 5, 16)
        cross = attn(x, encoder_hidden_states=text)
        assert torch.allclose(cross[2:3], _reference(attn, x[2:3], text[2:3]), atol=1e-5)


def test_anchor_layout_maps_each_sample_to_its_chunks_first() -> None:
    assert anchor_indices(6, 3) == [0, 0, 0, 3, 3, 3]
    assert anchor_indices(4, 4) == [0, 0, 0, 0]
    assert anchor_indices(2, 5) == [0, 0]  # a layout larger than the batch: one chunk


def test_only_spatial_self_attention_is_swapped_and_restorable(models: dict[str, Path]) -> None:
    import diffusers

    unet = diffusers.UNet2DConditionModel.from_pretrained(models["sd"] / "unet")
    before = dict(unet.attn_processors)
    restore = enable_cross_frame_attention(unet, AnchorLayout(2))
    swapped = {n for n, p in unet.attn_processors.items() if isinstance(p, CrossFrameAttnProcessor)}
    assert swapped and all(n.endswith("attn1.processor") for n in swapped)
    assert swapped == {n for n in before if n.endswith("attn1.processor")}
    restore()
    assert not any(isinstance(p, CrossFrameAttnProcessor) for p in unet.attn_processors.values())


# -- overlapping windows ---------------------------------------------------------------------
def test_window_weights_cross_fade_linearly_over_the_overlap() -> None:
    w = window_weights(8, 3)
    assert np.allclose(w, [0.25, 0.5, 0.75, 1, 1, 0.75, 0.5, 0.25])
    stride = 8 - 3  # two windows sharing 3 frames sum to 1 on each of them
    assert np.allclose(w[stride:] + w[:3], 1.0)


def test_window_blender_hands_out_each_frame_once_cross_faded() -> None:
    blender = WindowBlender(overlap=2)
    first = np.full((5, 2, 2, 3), 0, np.uint8)
    second = np.full((5, 2, 2, 3), 90, np.uint8)
    blender.add(first)
    done = blender.take(3)  # stride = 5 - 2
    assert (done == 0).all() and blender.covered == 2
    blender.add(second)  # covers the 2 held frames and 3 new ones
    out = blender.take(5)
    assert [int(f[0, 0, 0]) for f in out] == [30, 60, 90, 90, 90]
    assert blender.covered == 0
