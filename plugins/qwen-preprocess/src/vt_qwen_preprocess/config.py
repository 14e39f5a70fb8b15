"""Run configuration: defaults from the model profile, then YAML, then environment, then
explicit arguments (each later source wins).

YAML follows the spec's ``video_processing`` block (and ``models:`` for user profiles)::

    video_processing:
      profile: qwen2.5-vl
      default_fps: 2.0
      min_frames: 4
      max_frames: 768
      decoder_priority: [pyav, torchcodec, decord]
      max_pixels: 602112
    models:
      my-model: {base: qwen2.5-vl, max_context_tokens: 32768}

Environment overrides (all optional): ``VT_QWEN_CONFIG`` (YAML path), ``VT_QWEN_PROFILE``,
``VT_QWEN_FPS``, ``VT_QWEN_NFRAMES``, ``VT_QWEN_MIN_PIXELS``, ``VT_QWEN_MAX_PIXELS`` (per frame),
``VT_QWEN_TOTAL_PIXELS`` (all frames together), ``VT_QWEN_MAX_FRAMES``, ``VT_QWEN_DECODERS``
(comma list), ``VT_QWEN_THREADS``, ``VT_QWEN_CACHE_DIR``, ``VT_QWEN_NO_CACHE=1``,
``VT_QWEN_MAX_DOWNLOAD`` (e.g. ``2GB``), ``VT_QWEN_DOWNLOAD_TIMEOUT`` (seconds).

The disk cache folder: ``cache_dir`` (``--cache-dir``, YAML), else ``VT_QWEN_CACHE_DIR``, else
``vt.cache_dir("qwen")`` (``$VT_CACHE_DIR/qwen``, else ``$XDG_CACHE_HOME/vt/qwen``, else
``~/.cache/vt/qwen``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vt.errors import UsageError
from vt_qwen_preprocess.profiles import ModelProfile, load_profiles, parse_size, resolve_name

DTYPES = ("uint8", "float32", "float16", "bfloat16")
RESIZE_METHODS = ("bicubic", "bicubic-torch", "bicubic-float", "swscale")
CHANNEL_ORDERS = ("rgb", "bgr")
LAYOUTS = ("TCHW", "THWC")
# pyav first: the core's PyAV reader decodes only what the sampled frames need (GOP seeking,
# unreferenced H.264 pictures skipped), measured faster and leaner than torchcodec here
# (docs/benchmarks.md); the spec's torchcodec -> decord chain follows as the fallback.
DEFAULT_DECODERS = ("pyav", "torchcodec", "decord")
VIDEO_FORMATS = (
    "mp4",
    "mov",
    "avi",
    "mkv",
    "webm",
    "m4v",
    "flv",
    "ts",
    "mpg",
    "mpeg",
    "wmv",
    "3gp",
    "gif",
    "ogv",
    "mts",
    "m2ts",
    "y4m",
    "h264",
    "hevc",
    "nut",
)


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that decides what comes out (and how it is read)."""

    profile: str = "qwen2.5-vl"
    strategy: str = "auto"
    fps: float | None = None
    nframes: int | None = None
    min_frames: int | None = None
    max_frames: int | None = None
    base_interval: float = 4.0
    scene_weight: float = 0.7
    start: float | None = None
    end: float | None = None
    min_pixels: float | None = None
    max_pixels: float | None = None
    total_pixels: float | None = None
    resized_height: int | None = None
    resized_width: int | None = None
    factor: int | None = None  # spatial factor override (the spec's image_factor)
    total_pixels_ratio: float | None = None  # share of the context for the pixel budget
    resize: str = "bicubic"
    dtype: str = "float32"
    rescale: bool = False  # divide by 255 (values in [0, 1])
    normalize: bool = False  # (x/255 - mean) / std with the profile's mean/std
    channel_order: str = "rgb"
    layout: str = "TCHW"
    device: str = "cpu"
    decoders: tuple[str, ...] = DEFAULT_DECODERS
    threads: int = 0
    max_video_duration: float | None = 3600.0
    supported_formats: tuple[str, ...] = VIDEO_FORMATS
    max_input_bytes: int = 4 * 1024**3
    max_download_bytes: int = 2 * 1024**3
    download_timeout: float = 60.0
    check_context: bool = True
    cache: bool = True
    cache_dir: str | None = None
    cache_size: int = 16  # in-memory entries
    cache_max_bytes: int = 10 * 1024**3  # on-disk cache limit
    profiles_file: str | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and self.nframes is not None:
            raise UsageError("give either --fps or --nframes, not both")
        for name, allowed in (
            ("dtype", DTYPES),
            ("resize", RESIZE_METHODS),
            ("channel_order", CHANNEL_ORDERS),
            ("layout", LAYOUTS),
        ):
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if (self.resized_height is None) != (self.resized_width is None):
            raise UsageError("give both resized_height and resized_width, or neither")
        for name in (
            "fps",
            "min_pixels",
            "max_pixels",
            "total_pixels",
            "nframes",
            "threads",
            "factor",
            "total_pixels_ratio",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name} must not be negative, got {value}")
        if self.normalize and self.dtype == "uint8":
            raise UsageError("normalized output needs a float dtype, not uint8")

    def updated(self, **changes: Any) -> PreprocessConfig:
        """A copy with the non-None ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def get_profile(self) -> ModelProfile:
        profiles = load_profiles(self.profiles_file)
        return profiles[resolve_name(self.profile, profiles)]


# YAML key (spec spelling) -> config field
_YAML_KEYS = {
    "default_fps": "fps",
    "target_fps": "fps",
    "decoder_priority": "decoders",
    "num_threads": "threads",
    "cache_size": "cache_size",
    "image_factor": "factor",
    "max_video_duration": "max_video_duration",
    "supported_formats": "supported_formats",
}
_FIELDS = {f.name for f in fields(PreprocessConfig)}
_IGNORED_YAML = {"batch_size"}  # decoding batches are fixed small (bounded memory)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    import yaml

    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read config {p}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise UsageError(f"invalid YAML in {p}: {first}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config {p} must be a mapping at the top level")
    return data


def _normalise_decoders(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        names.append("pyav" if name in ("torchvision", "av") else name)
    if not names:
        raise UsageError("decoder priority list is empty")
    return tuple(dict.fromkeys(names))


def config_from_mapping(
    block: Mapping[str, Any], base: PreprocessConfig | None = None
) -> PreprocessConfig:
    """Apply a ``video_processing`` mapping on top of ``base``."""
    changes: dict[str, Any] = {}
    for key, value in block.items():
        name = _YAML_KEYS.get(key, key)
        if key in _IGNORED_YAML:
            continue
        if name not in _FIELDS:
            raise UsageError(f"unknown video_processing option {key!r}")
        if name == "decoders":
            value = _normalise_decoders(value)
        elif name == "supported_formats":
            value = tuple(str(v).lower().lstrip(".") for v in value)
        elif name in ("max_input_bytes", "max_download_bytes", "cache_max_bytes"):
            value = parse_size(value)
        changes[name] = value
    cfg = replace(base or PreprocessConfig(), **changes)
    return cfg


def env_overrides(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    conv: dict[str, tuple[str, Any]] = {
        "VT_QWEN_PROFILE": ("profile", str),
        "VT_QWEN_FPS": ("fps", float),
        "VT_QWEN_NFRAMES": ("nframes", int),
        "VT_QWEN_MIN_PIXELS": ("min_pixels", float),
        "VT_QWEN_MAX_PIXELS": ("max_pixels", float),
        "VT_QWEN_TOTAL_PIXELS": ("total_pixels", float),
        "VT_QWEN_MAX_FRAMES": ("max_frames", int),
        "VT_QWEN_DECODERS": ("decoders", _normalise_decoders),
        "VT_QWEN_THREADS": ("threads", int),
        "VT_QWEN_CACHE_DIR": ("cache_dir", str),
        "VT_QWEN_MAX_DOWNLOAD": ("max_download_bytes", parse_size),
        "VT_QWEN_DOWNLOAD_TIMEOUT": ("download_timeout", float),
    }
    for var, (name, fn) in conv.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            out[name] = fn(raw)
        except (ValueError, UsageError):
            raise UsageError(f"invalid value for {var}: {raw!r}") from None
    if env.get("VT_QWEN_NO_CACHE", "") not in ("", "0"):
        out["cache"] = False
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> PreprocessConfig:
    """Build the config: defaults < YAML (``path`` or ``VT_QWEN_CONFIG``) < env < overrides.

    ``fps`` in the environment or YAML is dropped when ``nframes`` is given explicitly (and
    vice versa), so a command-line choice never clashes with a file default.
    """
    env_map = os.environ if env is None else env
    path = path or env_map.get("VT_QWEN_CONFIG") or None
    values: dict[str, Any] = {}
    if path:
        data = read_yaml(path)
        block = data.get("video_processing") or {}
        if not isinstance(block, dict):
            raise UsageError("video_processing must be a mapping")
        base = (
            replace(PreprocessConfig(), profiles_file=str(path))
            if data.get("models")
            else PreprocessConfig()
        )
        values = {k: v for k, v in asdict(config_from_mapping(block, base)).items()}
    else:
        values = asdict(PreprocessConfig())
    for layer in (env_overrides(env_map), {k: v for k, v in overrides.items() if v is not None}):
        if "nframes" in layer and "fps" not in layer:
            values["fps"] = None
        if "fps" in layer and "nframes" not in layer:
            values["nframes"] = None
        values.update(layer)
    for key in ("decoders", "supported_formats"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return PreprocessConfig(**values)


@dataclass(frozen=True)
class Resolved:
    """The config with the profile's defaults filled in: what the pipeline actually uses."""

    config: PreprocessConfig
    profile: ModelProfile
    fps: float | None
    nframes: int | None
    min_frames: int
    max_frames: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve(config: PreprocessConfig) -> Resolved:
    profile = config.get_profile()
    if config.factor is not None:
        merge = profile.merge_size if config.factor % profile.merge_size == 0 else 1
        profile = replace(profile, patch_size=config.factor // merge, merge_size=merge)
    if config.total_pixels_ratio is not None:
        profile = replace(profile, total_pixels_ratio=config.total_pixels_ratio)
    nframes = config.nframes
    fps = config.fps
    if nframes is None and fps is None:
        if config.strategy in ("uniform",) or (profile.nframes and config.strategy == "auto"):
            nframes = profile.nframes
        if nframes is None:
            fps = profile.fps
    return Resolved(
        config=config,
        profile=profile,
        fps=fps,
        nframes=nframes,
        min_frames=config.min_frames if config.min_frames is not None else profile.min_frames,
        max_frames=config.max_frames
        if config.max_frames is not None
        else (None if profile.max_frames == 768 else profile.max_frames),
    )
