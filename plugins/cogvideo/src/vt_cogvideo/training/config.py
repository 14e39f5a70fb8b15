"""The LoRA training configuration: dataclasses with the spec's defaults, read from YAML.

Every key of the file is checked against these dataclasses: an unknown key, a wrong type or
an out-of-range value is a ``ConfigError`` (a usage error, exit 2) naming the file and the
dotted key (``lora.rank``). ``configs/training/lora_default.yaml`` writes the same defaults out
(a test keeps the two equal). Checks that need the model's own config (sizes the VAE and the
transformer can take) are done once it is known, in ``check_against_model``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from vt.errors import UsageError
from vt_cogvideo.loading import DEFAULT_MODEL

LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
ATTENTION_MODULES = ("to_q", "to_k", "to_v", "to_out.0")


class ConfigError(UsageError):
    """A training configuration value is invalid (the message names the key)."""


Check = Callable[[Any], str | None]  # returns why the value is wrong, or None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value > 0 else "must be a positive integer"


def non_negative_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "must be an integer >= 0"


def optional_positive_int(value: Any) -> str | None:
    return None if value is None else positive_int(value)


def positive_number(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "must be a number > 0"


def non_negative_number(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "must be a number >= 0"


def any_number(value: Any) -> str | None:
    return None if _is_number(value) else "must be a finite number"


def fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "must be a number in [0, 1)"


def open_fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 < value < 1 else "must be a number in (0, 1)"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def multiple_of(step: int, minimum: int) -> Check:
    def check(value: Any) -> str | None:
        if not _is_int(value) or value < minimum or value % step:
            return f"must be an integer multiple of {step}, at least {minimum}"
        return None

    return check


def frame_count(value: Any) -> str | None:
    if not _is_int(value) or value < 1 or (value - 1) % 4:
        return "must be 4k+1 frames (1, 5, 9, …, 49): the VAE compresses time by 4"
    return None


def module_names(value: Any) -> str | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        return "must be a non-empty list of module names"
    unknown = [v for v in value if v not in ATTENTION_MODULES]
    if unknown:
        return (
            f"has {', '.join(unknown)}: LoRA goes on the attention projections "
            f"({', '.join(ATTENTION_MODULES)})"
        )
    return None


def tracker_names(value: Any) -> str | None:
    if value in ("auto", "none", "all"):
        return None
    names = [value] if isinstance(value, str) else value
    if isinstance(names, list) and names and all(isinstance(n, str) and n for n in names):
        return None
    return "must be auto, none, all, a tracker name or a list of them"


def checked(default: Any, check: Check, help: str = "") -> Any:
    """A dataclass field with its value check and a one-line description."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"check": check, "help": help})
    return field(default=default, metadata={"check": check, "help": help})


@dataclass
class DataConfig:
    height: int = checked(480, multiple_of(16, 16), "frame height in pixels")
    width: int = checked(720, multiple_of(16, 16), "frame width in pixels")
    num_frames: int = checked(49, frame_count, "frames per training clip")
    fps: int = checked(8, positive_int, "frames per second the clips are sampled at")
    # the first frame is noised before encoding: sigma = exp(N(mean, std)) (diffusers' I2V)
    image_noise_mean: float = checked(-3.0, any_number, "mean of log sigma")
    image_noise_std: float = checked(0.5, non_negative_number, "std of log sigma")
    noised_image_dropout: float = checked(
        0.05, fraction, "share of steps with zeroed image latents"
    )


@dataclass
class LoraSettings:
    rank: int = checked(64, positive_int, "LoRA rank r")
    alpha: float = checked(64, positive_number, "LoRA alpha (scale = alpha / rank)")
    dropout: float = checked(0.0, fraction, "dropout on the LoRA branch")
    # ``checked`` gives lists a default_factory: no instance shares the default list
    target_modules: list[str] = checked(
        list(ATTENTION_MODULES),
        module_names,  # noqa: RUF009
        "attention projections that get adapters",
    )


@dataclass
class OptimizerConfig:
    learning_rate: float = checked(1e-4, positive_number, "AdamW learning rate")
    lr_scheduler: str = checked("constant", one_of(*LR_SCHEDULERS), "learning-rate schedule")
    lr_warmup_steps: int = checked(0, non_negative_int, "warm-up steps")
    weight_decay: float = checked(1e-4, non_negative_number, "AdamW weight decay")
    adam_beta1: float = checked(0.9, open_fraction, "AdamW beta1")
    adam_beta2: float = checked(0.95, open_fraction, "AdamW beta2")
    adam_epsilon: float = checked(1e-8, positive_number, "AdamW epsilon")
    max_grad_norm: float = checked(1.0, positive_number, "gradient clipping norm")


@dataclass
class TrainingSection:
    epochs: int = checked(10, positive_int, "passes over the data")
    max_steps: int | None = checked(
        None, optional_positive_int, "stop after this many optimizer steps (null: epochs)"
    )
    batch_size: int = checked(1, positive_int, "clips per step per device")
    gradient_accumulation_steps: int = checked(1, positive_int, "batches per optimizer step")
    gradient_checkpointing: bool = checked(True, boolean, "recompute activations (5B needs it)")
    mixed_precision: str = checked(
        "auto", one_of(*MIXED_PRECISION), "auto: bf16 on CUDA, fp32 on CPU"
    )
    seed: int = checked(42, non_negative_int, "seed of shuffling, noise and timesteps")
    checkpointing_steps: int = checked(
        100, positive_int, "save the training state every N optimizer steps"
    )
    checkpoints_total_limit: int | None = checked(
        3, optional_positive_int, "keep the newest N checkpoints (null: all)"
    )
    report_to: str | list[str] = checked(
        "auto",
        tracker_names,  # noqa: RUF009 - a str
        "accelerate trackers (auto: tensorboard if installed)",
    )


@dataclass
class ValidationConfig:
    prompts: str | None = checked(
        None,
        optional_text,
        "validation prompts YAML (null: the first training clip's prompt and first frame)",
    )
    every_epochs: int = checked(1, positive_int, "write sample clips every N epochs")
    max_samples: int = checked(1, non_negative_int, "sample clips per epoch (0: none)")
    num_inference_steps: int = checked(50, positive_int, "denoising steps of a sample")
    guidance_scale: float = checked(6.0, non_negative_number, "classifier-free guidance")
    seed: int = checked(0, non_negative_int, "seed of the sample clips")
    # optimized: model CPU offload and VAE tiling on CUDA, so the sampling pipeline fits
    # beside the model being trained
    mode: str = checked(
        "optimized",
        one_of("baseline", "optimized"),
        "generation mode of the samples (optimized: offload on CUDA)",
    )


@dataclass
class TrainingConfig:
    model: str = checked(DEFAULT_MODEL, text, "hub id or folder of a CogVideoX I2V pipeline")
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingSection = field(default_factory=TrainingSection)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    #: the file it was read from (relative paths inside it are relative to its folder)
    source: Path | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        return data

    def validation_prompts_path(self) -> Path | None:
        if self.validation.prompts is None:
            return None
        path = Path(self.validation.prompts).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path


#: the command-line overrides and the keys they set
OVERRIDES = {
    "model": "model",
    "height": "data.height",
    "width": "data.width",
    "num_frames": "data.num_frames",
    "max_steps": "training.max_steps",
    "epochs": "training.epochs",
    "rank": "lora.rank",
    "learning_rate": "optimizer.learning_rate",
}


def _fill(cls: type, values: Mapping[str, Any], where: str, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from ``values``, every key checked."""
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{where}: {prefix.rstrip('.') or 'the file'} must be a mapping of "
            f"keys to values, got {type(values).__name__}"
        )
    known = {f.name: f for f in fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = (
                f" (did you mean {prefix}{close[0]}?)"
                if close
                else f" (known: {', '.join(prefix + k for k in known)})"
            )
            raise ConfigError(f"{where}: unknown key {name}{hint}")
        spec = known[key]
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        if is_dataclass(default):
            kwargs[key] = _fill(
                type(default), value if value is not None else {}, where, f"{name}."
            )
            continue
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(default, float):
            value = float(value)  # 1 for 1.0 is fine in YAML
        if key == "report_to" and isinstance(value, list):
            value = list(value)
        why = spec.metadata["check"](value)
        if why:
            raise ConfigError(f"{where}: {name} {why}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """The configuration in ``path`` (YAML or JSON; None: the defaults) with ``overrides``
    (the command line's ``--rank`` … keyed as in ``OVERRIDES``; None values are skipped)."""
    raw: Any = {}
    where = "defaults"
    source: Path | None = None
    if path is not None:
        source = Path(path).expanduser()
        where = str(source)
        if not source.is_file():
            raise ConfigError(f"config file not found: {source}")
        try:
            import yaml
        except ImportError:  # pragma: no cover - declared in the train extra
            raise ConfigError(
                "reading YAML configs needs pyyaml: pip install 'vt-cogvideo[train]'"
            ) from None
        try:
            raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {source}: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{source}: not valid YAML{at}: {problem}") from None
        raw = raw if raw is not None else {}
    config = _fill(TrainingConfig, raw, where)
    config = replace(config, source=source)
    for option, value in (overrides or {}).items():
        if value is None:
            continue
        if option not in OVERRIDES:
            raise ConfigError(f"unknown override {option!r}")
        config = apply_override(config, OVERRIDES[option], value, f"--{option.replace('_', '-')}")
    return config


def apply_override(config: TrainingConfig, key: str, value: Any, where: str) -> TrainingConfig:
    """``config`` with the dotted ``key`` set to ``value`` (checked like a file's value)."""
    section_name, _, name = key.rpartition(".")
    section = getattr(config, section_name) if section_name else config
    spec = next(f for f in fields(section) if f.name == name)
    why = spec.metadata["check"](value)
    if why:
        raise ConfigError(f"{where}: {key} {why}, got {value!r}")
    if section_name:
        return replace(config, **{section_name: replace(section, **{name: value})})
    return replace(config, **{name: value})


def resolve_mixed_precision(setting: str, device: str) -> str:
    """accelerate's mixed-precision name for ``setting`` on ``device`` ("auto": bf16 on
    CUDA, none elsewhere); half precision off CUDA is refused."""
    if setting == "auto":
        return "bf16" if device.startswith("cuda") else "no"
    if setting != "no" and not device.startswith("cuda"):
        raise ConfigError(
            f"training.mixed_precision {setting} needs a CUDA device (this run "
            f"is on {device}); use auto or no"
        )
    return setting


def check_against_model(config: TrainingConfig, spec: Any) -> None:
    """Sizes the model cannot take (``vt_cogvideo.loading.ModelSpec.check``, the rule the
    generation code applies too), as config errors naming the keys."""
    data = config.data
    try:
        spec.check(data.height, data.width, data.num_frames)
    except UsageError as exc:
        raise ConfigError(
            f"data.height/data.width/data.num_frames ({data.height}x"
            f"{data.width}x{data.num_frames}): {exc}"
        ) from None


def describe_fields() -> list[tuple[str, Any, str]]:
    """(dotted key, default, description) of every configuration key, for the docs."""
    rows: list[tuple[str, Any, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in fields(obj):
            if f.name == "source":
                continue
            value = getattr(obj, f.name)
            if is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((f"{prefix}{f.name}", value, f.metadata.get("help", "")))

    walk(TrainingConfig(), "")
    return rows
