"""Tiny offline models and small clips for vt-stylize's tests (random weights: these tests
check plumbing — sizes, timing, determinism, coherence mechanics — never looks)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vt.media.frames import FrameBatch

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_lora(folder: Path, pipeline_dir: Path, seed: int = 1) -> Path:
    """A LoRA for the tiny UNet (random, non-zero), saved as diffusers saves trained ones."""
    import diffusers
    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = diffusers.UNet2DConditionModel.from_pretrained(pipeline_dir / "unet")
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            init_lora_weights=False,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    diffusers.StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=layers, safe_serialization=True
    )
    return folder / "pytorch_lora_weights.safetensors"


def tiny_depth_model(folder: Path, seed: int = 0) -> Path:
    """A tiny DPT depth estimator with its image processor (its last bias raised so that the
    random network's depth is not flat zero after the final ReLU)."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    model = DPTForDepthEstimation(
        DPTConfig(
            hidden_size=16,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
            backbone_out_indices=[0, 1, 2, 3],
            neck_hidden_sizes=[8, 8, 8, 8],
            fusion_hidden_size=8,
            reassemble_factors=[4, 2, 1, 0.5],
            head_in_index=-1,
        )
    )
    with torch.no_grad():
        [c for c in model.head.head if isinstance(c, torch.nn.Conv2d)][-1].bias.fill_(1.0)
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def fake_hub(cache: Path, repo_id: str, snapshot: Path) -> Path:
    """A Hugging Face cache folder laid out as the hub lays it out, holding ``snapshot``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(snapshot, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def frames_of(path: Path) -> tuple[list[np.ndarray], list[int], dict[str, object]]:
    """Decoded RGB frames, their PTS and a few stream facts of a video file."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        images, pts = [], []
        for frame in c.decode(stream):
            images.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
        facts = {
            "size": (stream.width, stream.height),
            "codec": stream.codec_context.name,
            "audio": len(c.streams.audio),
            "time_base": stream.time_base,
        }
    return images, pts, facts


def batch(images: np.ndarray, start: int = 0) -> FrameBatch:
    n = len(images)
    return FrameBatch(
        np.ascontiguousarray(images),
        list(range(start, start + n)),
        Fraction(1, 25),
        list(range(start, start + n)),
    )
