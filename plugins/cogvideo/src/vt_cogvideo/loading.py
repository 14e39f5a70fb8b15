"""What a CogVideoX image-to-video model can take (from its configs), and loading it.

:func:`read_model_spec` reads ``model_index.json`` and the transformer and VAE configs only (no
weights): the sizes and frame counts the model accepts come from there, never from constants,
so the 5B model takes 720x480x49 and the tiny test model its own 16x16x9.
:func:`load_pipeline` loads through the core's resolver and diffusers adapter
(``vt.models.load_model``), in the mode's dtype and memory settings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vt.errors import ModelUnavailableError, UsageError
from vt.registry import ModelRef

log = logging.getLogger("vt")

PIPELINE_CLASS = "CogVideoXImageToVideoPipeline"
#: the model the spec targets (a hub id, resolved through the Hugging Face cache)
DEFAULT_MODEL = "THUDM/CogVideoX-5b-I2V"
MODES = ("baseline", "optimized")
SCHEDULERS = {"ddim": "CogVideoXDDIMScheduler", "dpm": "CogVideoXDPMScheduler"}
#: the scheduler each mode uses unless the request names one
MODE_SCHEDULER = {"baseline": "ddim", "optimized": "dpm"}
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class ModelSpec:
    """Sizes a CogVideoX I2V model takes, derived from its configs."""

    ref: ModelRef
    height: int  # the model's own size (pixels) and frame count
    width: int
    frames: int
    spatial_compression: int  # VAE: pixels per latent pixel
    temporal_compression: int  # VAE: frames per latent frame (after the first)
    patch_size: int
    learned_positions: bool  # learned positional embeddings fix size and frame count
    max_text_tokens: int
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return self.ref.name or self.ref.path.name

    @property
    def size_multiple(self) -> int:
        return self.spatial_compression * self.patch_size

    def check(self, height: int, width: int, frames: int) -> None:
        """Raise ``UsageError`` for a size or frame count this model cannot take."""
        if height <= 0 or width <= 0:
            raise UsageError(f"size must be positive, got {width}x{height}")
        if frames < 1:
            raise UsageError(f"num_frames must be positive, got {frames}")
        if self.learned_positions:
            why = (
                f"{self.name} has learned positional embeddings for "
                f"{self.width}x{self.height}, {self.frames} frames"
            )
            if (height, width) != (self.height, self.width):
                raise UsageError(f"size {width}x{height} not supported: {why}")
            if frames != self.frames:
                raise UsageError(f"num_frames {frames} not supported: {why}")
            return
        m = self.size_multiple
        if height % m or width % m:
            raise UsageError(
                f"size {width}x{height} not supported by {self.name}: width "
                f"and height must be multiples of {m}"
            )
        t = self.temporal_compression
        if (frames - 1) % t:
            raise UsageError(
                f"num_frames {frames} not supported by {self.name}: it must be "
                f"{t}k+1 (e.g. {((frames - 1) // t) * t + 1} or "
                f"{((frames - 1) // t + 1) * t + 1})"
            )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("config")
        data["ref"] = {
            "path": str(self.ref.path),
            "name": self.ref.name,
            "source": self.ref.source,
            **{k: v for k, v in self.ref.metadata.items() if isinstance(v, str)},
        }
        return data


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelUnavailableError(
            f"not a CogVideoX pipeline folder: {path.name} is missing in {path.parent}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelUnavailableError(f"cannot read {path}: not a JSON object")
    return data


def resolve(model: str | Path | ModelRef) -> ModelRef:
    """A folder, or a hub id through the core's resolver (cache first, download allowed
    unless ``HF_HUB_OFFLINE=1``)."""
    from vt.models import resolve_model

    return resolve_model(model if isinstance(model, ModelRef) else str(model))


def read_model_spec(model: str | Path | ModelRef) -> ModelSpec:
    ref = resolve(model)
    folder = ref.path
    if not folder.is_dir():
        raise UsageError(f"--model must be a diffusers pipeline folder or a hub id: {folder}")
    index = _json(folder / "model_index.json")
    cls = index.get("_class_name")
    if cls != PIPELINE_CLASS:
        raise ModelUnavailableError(
            f"{ref.name or folder.name} is a {cls or 'unknown'} "
            f"pipeline, not {PIPELINE_CLASS} (image-to-video)"
        )
    tconf = _json(folder / "transformer" / "config.json")
    vconf = _json(folder / "vae" / "config.json")
    blocks = vconf.get("block_out_channels") or (128, 256, 256, 512)
    spatial = 2 ** (len(blocks) - 1)
    temporal = int(vconf.get("temporal_compression_ratio", 4))
    try:
        height = int(tconf["sample_height"]) * spatial
        width = int(tconf["sample_width"]) * spatial
        frames = int(tconf["sample_frames"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelUnavailableError(
            f"{folder / 'transformer' / 'config.json'}: no usable {exc}"
        ) from None
    return ModelSpec(
        ref=ref,
        height=height,
        width=width,
        frames=frames,
        spatial_compression=spatial,
        temporal_compression=temporal,
        patch_size=int(tconf.get("patch_size", 2)),
        learned_positions=bool(tconf.get("use_learned_positional_embeddings", False)),
        max_text_tokens=int(tconf.get("max_text_seq_length", 226)),
        config={"transformer": tconf, "vae": vconf},
    )


@dataclass
class LoadedPipeline:
    """One loaded pipeline, the memory switches it got, and the LoRA adapters loaded into it."""

    pipe: Any
    mode: str
    device: str
    dtype: str
    offload: str
    vae_tiling: bool
    compiled: bool
    notes: list[str]
    load_seconds: float
    default_scheduler: dict[str, Any]
    adapters: dict[str, str] = field(default_factory=dict)  # adapter name -> weights file
    scheduler: str | None = None  # the scheduler currently set

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "device": self.device,
            "dtype": self.dtype,
            "offload": self.offload,
            "vae_tiling": self.vae_tiling,
            "compiled": self.compiled,
            "loras": dict(self.adapters),
            "load_seconds": round(self.load_seconds, 3),
        }


def mode_dtype(mode: str, device: str) -> str:
    """bf16 on CUDA (CogVideoX-5B's own dtype), fp32 on CPU (bf16 matmuls are slow there)."""
    return "bf16" if device.startswith("cuda") else "fp32"


def load_pipeline(
    spec: ModelSpec, *, mode: str, device: str, dtype: str | None = None, compile: bool = False
) -> LoadedPipeline:
    """Load the pipeline for ``mode``: baseline is the plain pipeline on the device;
    optimized adds model CPU offload, VAE slicing and tiling and optionally
    ``torch.compile`` of the transformer — each needs CUDA and is skipped, with a note,
    elsewhere."""
    import time

    from vt.models import load_model

    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    cuda = device.startswith("cuda")
    dtype = dtype or mode_dtype(mode, device)
    notes: list[str] = []
    optimized = mode == "optimized"
    if optimized and not cuda:
        notes.append(
            f"optimized mode on {device}: model CPU offload, VAE tiling and "
            "torch.compile need CUDA and are off (the DPM scheduler is used)"
        )
    elif compile and not cuda:
        notes.append(f"torch.compile needs CUDA: off on {device}")
    offload = "model" if optimized and cuda else "none"
    tiling = optimized and cuda
    started = time.perf_counter()
    descriptor = load_model(
        spec.ref,
        adapter="diffusers",
        device=device,
        dtype=dtype,
        cache=False,
        pipeline_class=PIPELINE_CLASS,
        offload=offload,
        vae_slicing=tiling,
        vae_tiling=tiling,
    )
    pipe = descriptor.model
    compiled = False
    if compile and cuda:
        pipe.transformer.compile()  # in place: the module (and LoRA loading) stays as it is
        compiled = True
    return LoadedPipeline(
        pipe=pipe,
        mode=mode,
        device=device,
        dtype=dtype,
        offload=offload,
        vae_tiling=tiling,
        compiled=compiled,
        notes=notes,
        load_seconds=time.perf_counter() - started,
        default_scheduler=dict(pipe.scheduler.config),
    )


def set_scheduler(loaded: LoadedPipeline, name: str) -> None:
    """Swap the scheduler (same config: betas, prediction type, spacing) when it differs."""
    import diffusers

    if name not in SCHEDULERS:
        raise UsageError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    if loaded.scheduler == name:
        return
    cls = getattr(diffusers, SCHEDULERS[name])
    loaded.pipe.scheduler = cls.from_config(loaded.default_scheduler)
    loaded.scheduler = name


def lora_weights(path: str | Path) -> Path:
    """The LoRA weights file of ``path``: a folder holding ``pytorch_lora_weights.safetensors``
    (what ``vt cogvideo train`` and diffusers' ``save_lora_weights`` write) or that file."""
    p = Path(path).expanduser()
    if p.is_dir():
        weights = p / LORA_WEIGHTS
        if not weights.is_file():
            found = sorted(x.name for x in p.glob("*.safetensors"))
            hint = f" (it has {', '.join(found)})" if found else ""
            raise UsageError(f"--lora {path}: no {LORA_WEIGHTS} in this folder{hint}")
        return weights.resolve()
    if p.is_file():
        if p.suffix.lower() != ".safetensors":
            raise UsageError(f"--lora {path}: LoRA weights must be a .safetensors file")
        return p.resolve()
    raise UsageError(f"--lora: no such file or folder: {path}")


def adapter_name(weights: Path) -> str:
    import hashlib

    return "lora_" + hashlib.sha1(str(weights).encode()).hexdigest()[:12]


def apply_lora(loaded: LoadedPipeline, weights: Path | None, scale: float) -> None:
    """Activate ``weights`` at ``scale`` (loaded once per pipeline), or no LoRA at all."""
    pipe = loaded.pipe
    if weights is None:
        if loaded.adapters:
            pipe.disable_lora()
        return
    name = adapter_name(weights)
    if name not in loaded.adapters:
        try:
            pipe.load_lora_weights(str(weights.parent), weight_name=weights.name, adapter_name=name)
        except Exception as exc:  # noqa: BLE001 - peft/diffusers raise many kinds
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelUnavailableError(f"cannot load LoRA {weights}: {first[:300]}") from None
        loaded.adapters[name] = str(weights)
    pipe.enable_lora()
    pipe.set_adapters([name], [scale])
