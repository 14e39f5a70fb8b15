"""The YAML configs the commands load: ``configs/model.yaml`` (which model, device, dtype) and
``configs/inference.yaml`` (generation defaults); command-line options override both.

The folder is ``VT_COGVIDEO_CONFIGS`` when set, else the plugin's own ``configs/`` (beside
``src/`` in a checkout or an editable install); the dataclass defaults below are the same
values and apply where no folder is found (a wheel install).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import UsageError
from vt_cogvideo.loading import DEFAULT_MODEL

if TYPE_CHECKING:  # pragma: no cover
    from vt_cogvideo.generation import Generator


def config_dir() -> Path | None:
    explicit = os.environ.get("VT_COGVIDEO_CONFIGS")
    if explicit:
        return Path(explicit).expanduser()
    here = Path(__file__).resolve().parents[2] / "configs"
    return here if here.is_dir() else None


def read_yaml(path: Path, what: str = "config") -> Any:
    """A YAML file's data; one-line errors for a missing or malformed file."""
    import yaml

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"{what} {path} is not valid YAML{where}") from None


def _mapping(path: Path | None, what: str) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    data = read_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path} must be a mapping of settings")
    return data


def _apply(target: Any, data: dict[str, Any], source: str) -> None:
    known = {f.name for f in fields(target)}
    for key, value in data.items():
        if key not in known:
            raise UsageError(
                f"{source}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
        setattr(target, key, value)


@dataclass
class ModelConfig:
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str | None = None
    compile: bool = False
    max_pipelines: int = 2


@dataclass
class InferenceConfig:
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    fps: int = 8
    num_inference_steps: int = 50
    guidance_scale: float = 6.0
    mode: str = "baseline"
    scheduler: str | None = None
    negative_prompt: str = ""
    lora_scale: float = 1.0
    fit: str = "crop"
    threshold: float = 0.6


#: GenerationRequest fields the inference config gives defaults for
REQUEST_KEYS = (
    "negative_prompt",
    "num_frames",
    "height",
    "width",
    "num_inference_steps",
    "guidance_scale",
    "fps",
    "mode",
    "scheduler",
    "lora_scale",
    "fit",
)


@dataclass
class Settings:
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    sources: list[str] = field(default_factory=list)

    def request_defaults(self, given: dict[str, Any]) -> dict[str, Any]:
        """GenerationRequest keywords: ``given`` (options; None = not given) over the config."""
        values = {k: getattr(self.inference, k) for k in REQUEST_KEYS}
        values.update({k: v for k, v in given.items() if v is not None})
        return values

    def generator(
        self, *, model: str | None = None, device: str | None = None, compile: bool | None = None
    ) -> Generator:
        from vt_cogvideo.generation import Generator

        m = self.model
        return Generator(
            model or m.model,
            device or m.device,
            dtype=m.dtype,
            compile=m.compile if compile is None else compile,
            max_pipelines=m.max_pipelines,
        )


def load_settings(inference: Path | None = None, model: Path | None = None) -> Settings:
    """Built-in defaults, then the config folder's model.yaml and inference.yaml, then the
    files given (``--config``)."""
    settings = Settings()
    folder = config_dir()
    layers: list[tuple[Path | None, Any]] = [
        (folder / "model.yaml" if folder else None, settings.model),
        (folder / "inference.yaml" if folder else None, settings.inference),
        (model, settings.model),
        (inference, settings.inference),
    ]
    for path, target in layers:
        if path is None:
            continue
        if path in (model, inference) and not path.is_file():
            raise UsageError(f"config not found: {path}")
        data = _mapping(path, "config")
        if data:
            _apply(target, data, str(path))
            settings.sources.append(str(path))
    return settings
