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
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    diffusers.StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers,
                                                        safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


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
        facts = {"size": (stream.width, stream.height), "codec": stream.codec_context.name,
                 "audio": len(c.streams.audio), "time_base": stream.time_base}
    return images, pts, facts


def batch(images: np.ndarray, start: int = 0) -> FrameBatch:
    n = len(images)
    return FrameBatch(np.ascontiguousarray(images), list(range(start, start + n)),
                      Fraction(1, 25), list(range(start, start + n)))
