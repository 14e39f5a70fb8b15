"""Model profiles: the patch geometry, budgets and defaults each model family expects.

Built-in profiles cover Qwen2/2.5-VL, Qwen3-VL, LLaVA and an API-style (base64 JPEG) target.
User profiles come from YAML (a ``models:`` mapping, optionally ``base: <profile>`` to inherit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vt.errors import UsageError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelProfile:
    """How a model family wants video: spatial ``factor`` = patch_size x merge_size."""

    name: str
    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    min_tokens: int = 128  # per frame (video)
    max_tokens: int = 768  # per frame (video)
    max_context_tokens: int = 128000  # also the reference's MODEL_SEQ_LEN
    total_pixels_ratio: float = 0.9
    fps: float = 2.0
    nframes: int | None = None  # when set, the default is uniform sampling of this many frames
    min_frames: int = 4
    max_frames: int = 768
    frame_factor: int = 2
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    preferred_precision: str = "bfloat16"
    default_format: str = "tensor"
    token_model: str = "patch"  # "patch" (ViT patches / merge^2) or "tiles" (512px API tiles)
    max_pixels: int | None = None  # hard cap per frame on top of the token limits
    max_image_bytes: int | None = None  # API: per-image payload limit
    jpeg_quality: int = 90
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["factor"] = self.factor
        return data


BUILTIN_PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile(
            "qwen2.5-vl",
            description="Qwen2.5-VL: 14px patches, 2x2 merge (factor 28), 2-frame tubelets",
        ),
        ModelProfile("qwen2-vl", description="Qwen2-VL: same video geometry as Qwen2.5-VL"),
        ModelProfile(
            "qwen3-vl",
            patch_size=16,
            image_mean=HALF,
            image_std=HALF,
            description="Qwen3-VL: 16px patches, 2x2 merge (factor 32), 2-frame tubelets",
        ),
        ModelProfile(
            "llava",
            patch_size=14,
            merge_size=2,
            temporal_patch_size=1,
            max_context_tokens=4096,
            nframes=8,
            min_tokens=1,
            max_tokens=144,  # 336x336 with 2x2 pooling (LLaVA-NeXT-Video style)
            min_frames=2,
            max_frames=32,
            frame_factor=1,
            preferred_precision="float16",
            description="LLaVA-style: CLIP ViT-L/14 at up to 336x336, 2x2 pooled, 4096 context",
        ),
        ModelProfile(
            "api",
            patch_size=32,
            merge_size=1,
            temporal_patch_size=1,
            min_tokens=1,
            max_tokens=768,
            max_context_tokens=128000,
            fps=1.0,
            min_frames=1,
            max_frames=64,
            frame_factor=1,
            preferred_precision="uint8",
            default_format="openai",
            token_model="tiles",
            max_pixels=768 * 768,
            max_image_bytes=20 * 1024 * 1024,
            jpeg_quality=85,
            description="API-style (GPT-4V-like): <=64 base64 JPEG frames, 20 MB per image",
        ),
    )
}
ALIASES = {
    "qwen2_5_vl": "qwen2.5-vl",
    "qwen25-vl": "qwen2.5-vl",
    "qwen3_vl": "qwen3-vl",
    "gpt4v": "api",
    "openai": "api",
    "qwen2_vl": "qwen2-vl",
}

_FIELD_NAMES = {f.name for f in fields(ModelProfile)}


def profile_from_mapping(
    name: str, data: dict[str, Any], profiles: dict[str, ModelProfile]
) -> ModelProfile:
    """A profile from a YAML mapping. ``base`` names a profile to start from; ``factor`` /
    ``image_factor`` (the spec's spelling) sets the spatial factor with merge_size 1."""
    data = dict(data)
    base_name = data.pop("base", None)
    base = profiles[resolve_name(base_name, profiles)] if base_name else ModelProfile(name)
    factor = data.pop("factor", None) or data.pop("image_factor", None)
    if factor is not None:
        data.setdefault("patch_size", int(factor))
        data.setdefault("merge_size", 1)
    if "api_constraints" in data:
        limits = data.pop("api_constraints") or {}
        size = limits.get("max_image_size")
        if size is not None:
            data["max_image_bytes"] = parse_size(size)
    if "preferred_format" in data:
        fmt = data.pop("preferred_format")
        data["default_format"] = "openai" if fmt == "base64" else fmt
    if "patch_size" in data and "merge_size" not in data and base_name is None:
        data["merge_size"] = 2
    unknown = sorted(set(data) - _FIELD_NAMES)
    extra = {k: data.pop(k) for k in unknown}
    for key in ("image_mean", "image_std"):
        if key in data:
            data[key] = tuple(float(v) for v in data[key])
    try:
        return replace(base, name=name, extra={**base.extra, **extra}, **data)
    except TypeError as exc:
        raise UsageError(f"invalid profile {name!r}: {exc}") from None


def resolve_name(name: str, profiles: dict[str, ModelProfile]) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in profiles:
        known = ", ".join(sorted(profiles))
        raise UsageError(f"unknown profile {name!r} (known: {known})")
    return key


def parse_size(value: int | float | str) -> int:
    """``20MB``, ``1.5 GiB``, ``500k`` or a plain number of bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().lower().replace(" ", "").rstrip("b").rstrip("i")
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(float(text))
    except ValueError:
        raise UsageError(f"not a size: {value!r} (e.g. 500MB)") from None


def load_profiles(
    path: str | Path | None = None, data: dict[str, Any] | None = None
) -> dict[str, ModelProfile]:
    """Built-in profiles plus the ``models:`` of a YAML file (or an already-parsed mapping)."""
    profiles = dict(BUILTIN_PROFILES)
    if data is None and path is not None:
        from vt_qwen_preprocess.config import read_yaml

        data = read_yaml(path)
    for name, entry in ((data or {}).get("models") or {}).items():
        if not isinstance(entry, dict):
            raise UsageError(f"profile {name!r} must be a mapping")
        profiles[str(name).lower()] = profile_from_mapping(str(name).lower(), entry, profiles)
    return profiles
