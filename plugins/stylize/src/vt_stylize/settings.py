"""Everything a stylisation run is asked to do, checked once before any model loads."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from vt.errors import UsageError

DEFAULT_MODEL = "stabilityai/stable-diffusion-2-base"
#: AnimateDiff's motion modules were trained on SD 1.5 bases
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
DEFAULT_UPSCALE_MODEL = "RealESRGAN_x4plus"
NOISE_MODES = ("shared", "fresh")
CONTROLS = ("canny", "depth", "lineart")
DTYPES = ("auto", "fp32", "fp16", "bf16")
_RES = re.compile(r"^\s*(\d+)\s*p?\s*$", re.IGNORECASE)
MAX_SIDE = 16384


def parse_resolution(text: str | int | None) -> int | None:
    """``480p``, ``720``, … -> 480, 720; ``0``/``source``/``none`` -> None (the source's)."""
    if text is None:
        return None
    if isinstance(text, int):
        value = text
    else:
        if text.strip().lower() in ("source", "none", "0", "0p", ""):
            return None
        match = _RES.match(text)
        if not match:
            raise UsageError(
                f"--max-res must be like 480p, 720p or 1080 (or 'source'), got {text!r}"
            )
        value = int(match.group(1))
    if value == 0:
        return None
    if not 8 <= value <= MAX_SIDE:
        raise UsageError(f"--max-res must be between 8 and {MAX_SIDE} lines, got {value}")
    return value


@dataclass
class StylizeSettings:
    """What to stylise with and how (the ``vt stylize`` options, for library use too).

    Sizes: ``max_res`` caps the frames' shorter side (the height of landscape video) before
    the model, keeping the aspect ratio, sizes rounded to the model's multiple of 8;
    ``keep_size`` scales the result back to the source's size.
    """

    prompt: str = ""
    negative_prompt: str = ""
    model: str = DEFAULT_MODEL
    model_config: str | None = None  # configs for a single-file checkpoint (offline)
    controlnet: str | None = None
    control: str = "canny"
    control_model: str | None = None  # the depth/lineart detector's weights
    controlnet_scale: float = 1.0
    animatediff: bool = False
    motion_adapter: str = DEFAULT_MOTION_ADAPTER
    window: int = 16
    overlap: int = 4
    strength: float = 0.5
    steps: int = 20
    guidance: float = 7.5
    seed: int = 0
    noise: str = "shared"
    cross_frame_attention: bool = False
    max_res: int | None = 480
    keep_size: bool = False
    lora: str | None = None
    lora_scale: float = 1.0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 0  # 0: 2 on CUDA, 1 elsewhere (halved on out-of-memory)
    cpu_offload: bool = False
    attention_slicing: bool = False
    vae_tiling: bool = False
    xformers: bool = False

    @classmethod
    def from_options(cls, **options: Any) -> StylizeSettings:
        """Settings from keyword options (the processor factory's), unknown names refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(
                f"stylize has no option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        settings = cls(**options)
        if isinstance(settings.max_res, str):
            settings.max_res = parse_resolution(settings.max_res)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise a one-line :class:`UsageError` for anything that cannot run."""
        if not self.prompt or not self.prompt.strip():
            raise UsageError("the prompt is empty: describe the style, e.g. -p 'anime style'")
        if not self.model or not str(self.model).strip():
            raise UsageError("--model-id is empty")
        if self.model_config and not str(self.model).lower().endswith((".safetensors", ".ckpt")):
            raise UsageError(
                "--model-config is for single-file checkpoints (.safetensors/.ckpt --model-id)"
            )
        for name, value, low, high in (
            ("--strength", self.strength, 0.0, 1.0),
            ("--controlnet-scale", self.controlnet_scale, 0.0, 10.0),
            ("--guidance", self.guidance, 0.0, 50.0),
            ("--lora-scale", self.lora_scale, -10.0, 10.0),
        ):
            if not (
                isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high
            ):
                raise UsageError(f"{name} must be between {low:g} and {high:g}, got {value}")
        if not 1 <= self.steps <= 1000:
            raise UsageError(f"--steps must be between 1 and 1000, got {self.steps}")
        if int(self.steps * self.strength) < 1:
            raise UsageError(
                f"--strength {self.strength:g} with --steps {self.steps} runs no "
                "denoising step (steps x strength < 1): raise either"
            )
        if self.seed < 0 or self.seed >= 2**63 - 2**32:
            raise UsageError(f"--seed must be a non-negative integer, got {self.seed}")
        if self.noise not in NOISE_MODES:
            raise UsageError(f"--noise must be one of {', '.join(NOISE_MODES)}, got {self.noise!r}")
        if self.control not in CONTROLS:
            raise UsageError(
                f"--control must be one of {', '.join(CONTROLS)}, got {self.control!r}"
            )
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.batch_size < 0 or self.batch_size > 64:
            raise UsageError(
                f"--batch-size must be between 1 and 64 (0: auto), got {self.batch_size}"
            )
        if self.max_res is not None and not 8 <= self.max_res <= MAX_SIDE:
            raise UsageError(f"--max-res must be between 8 and {MAX_SIDE} lines")
        if self.animatediff:
            if not 2 <= self.window <= 64:
                raise UsageError(f"--window must be between 2 and 64 frames, got {self.window}")
            if not 0 <= self.overlap < self.window:
                raise UsageError(
                    f"--overlap must be between 0 and --window - 1 "
                    f"({self.window - 1}), got {self.overlap}"
                )
            if self.cross_frame_attention:
                raise UsageError(
                    "--cross-frame-attention is for img2img; AnimateDiff's motion "
                    "modules already link the frames of a window: use one or "
                    "the other"
                )
        if self.lora is not None and not str(self.lora).strip():
            raise UsageError("--lora is empty")

    @property
    def kind(self) -> str:
        """img2img, controlnet, animatediff or animatediff-controlnet."""
        if self.animatediff:
            return "animatediff-controlnet" if self.controlnet else "animatediff"
        return "controlnet" if self.controlnet else "img2img"

    def describe(self) -> dict[str, Any]:
        return asdict(self)
