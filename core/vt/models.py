"""Model references: resolve a name or path to weights, pick an adapter, load.

Any plugin can load any registered model through here: ``load_model("realesr-animevideov3")``
finds the named model's weights (registered by the plugin that knows it) and hands them to
the adapter that reads their format (registered by whichever plugin provides it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vt.errors import ModelUnavailableError, UsageError
from vt.registry import ModelAdapterInfo, ModelRef


def resolve_model(name_or_path: str | Path | ModelRef, *, download: bool = True) -> ModelRef:
    """A path that exists, else a registered model name: its located weights, else (when
    ``download``) its fetched weights. Raises ``ModelUnavailableError`` saying where to look."""
    from vt.plugins import get_host

    if isinstance(name_or_path, ModelRef):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return ModelRef(path, name=path.stem, source="path")
    host = get_host()
    if text not in host.models:
        if path.suffix or "/" in text:
            raise UsageError(f"model file not found: {text}")
        known = ", ".join(host.models.names()) or "none registered"
        raise UsageError(f"unknown model {text!r} (known: {known})")
    spec = host.models.get(text)
    ref = spec.locate()
    if ref is not None:
        return ref
    if download and spec.fetch is not None:
        return spec.fetch()
    where = "; ".join(spec.sources) or "nowhere"
    raise ModelUnavailableError(f"weights for {text!r} not found (looked in: {where})")


def choose_adapter(ref: ModelRef) -> ModelAdapterInfo:
    from vt.plugins import get_host

    host = get_host()
    candidates = [a for a in host.model_adapters.items() if a.available() is None]
    adapter = host.call_first("choose_model_adapter", model=ref, candidates=candidates)
    if adapter is None:
        formats = sorted({f for a in candidates for f in a.formats})
        raise ModelUnavailableError(
            f"no installed adapter loads {ref.path.name} ({ref.suffix}); formats available: "
            f"{', '.join(formats) or 'none (install vt-upscale)'}"
        )
    return adapter


def load_model(name_or_path: str | Path | ModelRef, **options: Any) -> Any:
    """Resolve, choose the adapter, load: the adapter's loaded-model object."""
    ref = resolve_model(name_or_path)
    return choose_adapter(ref).load(ref, **options)
