"""Generation settings written as mappings (batch jobs, validation scenarios, HTTP forms):
one place that knows ``generate``'s option names, diffusers' argument names, and their types.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vt.errors import UsageError

#: key (as written in a jobs file or a form) -> GenerationRequest field
ALIASES = {
    "image": "image",
    "input_image": "image",
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "num_frames": "num_frames",
    "height": "height",
    "width": "width",
    "steps": "num_inference_steps",
    "num_inference_steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "guidance_scale": "guidance_scale",
    "seed": "seed",
    "fps": "fps",
    "mode": "mode",
    "scheduler": "scheduler",
    "lora": "lora",
    "lora_scale": "lora_scale",
    "fit": "fit",
}
#: keys that are not request fields but mean something to the commands
EXTRA_KEYS = ("output", "model", "name")
_INT = {"num_frames", "height", "width", "num_inference_steps", "seed", "fps"}
_FLOAT = {"guidance_scale", "lora_scale"}
_STR = {"image", "prompt", "negative_prompt", "mode", "scheduler", "lora", "fit"}


def _convert(field: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        if field in _INT:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if field in _FLOAT:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        kind = "an integer" if field in _INT else "a number"
        raise UsageError(f"{where}: {field} must be {kind}, got {value!r}") from None
    if field in _STR and not isinstance(value, (str, Path)):
        raise UsageError(f"{where}: {field} must be a string, got {value!r}")
    return value


def parse_entry(
    entry: Any,
    where: str,
    *,
    base: Path | None = None,
    required: tuple[str, ...] = ("image", "prompt"),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(request fields, extras)`` of one mapping; names as ``generate``'s options
    (``steps``, ``guidance``, ``negative-prompt``) or diffusers' arguments. Relative ``image``
    and ``lora`` paths are taken from ``base`` (the file's folder)."""
    if not isinstance(entry, Mapping):
        raise UsageError(f"{where}: expected a mapping of options, got {type(entry).__name__}")
    fields: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for raw_key, value in entry.items():
        key = str(raw_key).strip().lstrip("-").replace("-", "_").lower()
        if key in EXTRA_KEYS:
            if value is not None and not isinstance(value, (str, Path)):
                raise UsageError(f"{where}: {key} must be a string, got {value!r}")
            extras[key] = value
            continue
        field = ALIASES.get(key)
        if field is None:
            known = sorted(set(ALIASES) | set(EXTRA_KEYS))
            raise UsageError(f"{where}: unknown option {raw_key!r} (known: {', '.join(known)})")
        fields[field] = _convert(field, value, where)
    for name in required:
        if fields.get(name) in (None, ""):
            raise UsageError(f"{where}: no {name}")
    if base is not None:
        for name in ("image", "lora"):
            value = fields.get(name)
            if value and not Path(str(value)).expanduser().is_absolute():
                fields[name] = str(base / str(value))
    return fields, extras


def load_entries(path: Path, what: str, key: str) -> list[Any]:
    """The list in a JSON or YAML file: the file itself, or its ``key`` entry."""
    import json

    from vt_cogvideo.config import read_yaml

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"{what} not found: {path}") from None
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UsageError(f"{what} {path} is not valid JSON: {exc}") from None
    elif path.suffix.lower() in (".yaml", ".yml"):
        data = read_yaml(path, what)
    else:
        raise UsageError(f"{what} must be .json, .yaml or .yml: {path}")
    if isinstance(data, Mapping) and key in data:
        data = data[key]
    if not isinstance(data, list):
        raise UsageError(f"{what} {path}: expected a list (or a mapping with '{key}: [...]')")
    if not data:
        raise UsageError(f"{what} {path} is empty")
    return data
