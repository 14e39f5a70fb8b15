"""Resolve a name, path or Hugging Face id; pick the adapter; load a ``ModelDescriptor``.

Any plugin loads any model through here: ``load_model("realesr-animevideov3-x4")`` finds the
named model's weights (registered by the plugin that knows it) and hands them to the adapter
that reads their format (registered by whichever plugin provides it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import ModelUnavailableError, RegistryError, UsageError
from vt.models.descriptor import ModelDescriptor, Provenance, UnsupportedModelConfig, unexpected
from vt.models.devices import dtype_name, resolve_device, resolve_dtype
from vt.models.hub import looks_like_hub_id, resolve_hub_id
from vt.models.memo import cached_load
from vt.registry import ModelAdapterInfo, ModelRef, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from vt.plugins import PluginHost

#: what to install when no adapter reads a format
FORMAT_PACKAGES = {
    ".pth": "vt-upscale",
    ".pt": "vt-upscale",
    ".ckpt": "vt-upscale",
    ".safetensors": "vt-upscale (super-resolution) or vt[diffusers] (diffusion models)",
    ".onnx": "vt-upscale and onnxruntime",
    ".param": "vt-upscale and ncnn",
    "dir": "vt[diffusers] (diffusers folders)",
}


def resolve_model(name_or_path: str | Path | ModelRef, *, download: bool = True) -> ModelRef:
    """An existing path; else a registered model name (its located, else fetched, weights);
    else a Hugging Face id ``org/name[@revision]``. A missing file or an unknown name is a
    usage error; weights that cannot be had raise ``ModelUnavailableError``."""
    from vt.plugins import get_host

    if isinstance(name_or_path, ModelRef):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if path.suffix.lower() == ".bin" and path.with_suffix(".param").is_file():
            path = path.with_suffix(".param")  # an ncnn pair named by its weights
        return ModelRef(path.resolve(), name=path.stem, source="path")
    host = get_host()
    spec = _named(host, text)
    if spec is not None:
        ref = spec.locate()
        if ref is None and download and spec.fetch is not None:
            ref = spec.fetch()
        if ref is None:
            where = "; ".join(spec.sources) or "nowhere"
            raise ModelUnavailableError(f"weights for {text!r} not found (looked in: {where})")
        sha = spec.metadata.get("sha256")
        return replace(ref, metadata={**({"sha256": sha} if sha else {}), **ref.metadata})
    if looks_like_hub_id(text):
        return resolve_hub_id(text, download=download)
    if path.suffix or "/" in text:
        raise UsageError(f"model file not found: {text}")
    import difflib

    names = host.models.names()
    close = difflib.get_close_matches(text, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names) or 'none'})"
    raise UsageError(f"unknown model {text!r}{hint}")


def _named(host: PluginHost, text: str) -> ModelSpec | None:
    """The registered model called ``text``, by name or by one of its aliases."""
    if text in host.models:
        return host.models.get(text)
    for spec in host.models.items():
        if text in spec.metadata.get("aliases", ()):
            return spec
    return None


def choose_adapter(ref: ModelRef, adapter: str | None = None) -> ModelAdapterInfo:
    """The adapter named, or the one the ``choose_model_adapter`` hook picks for ``ref``."""
    from vt.plugins import get_host

    host = get_host()
    if adapter:
        try:
            info = host.model_adapters.get(adapter)
        except RegistryError as exc:
            raise UsageError(str(exc)) from None
        if not info.accepts(ref):
            takes = (  # a format it reads, refused by its probe: say which files it takes
                info.description or "a kind of file it does not take"
                if ref.format in info.formats
                else f"it loads {', '.join(info.formats)}"
            )
            raise UsageError(f"the {info.name} adapter cannot load {ref.path.name} ({takes})")
        reason = info.available()
        if reason:
            raise ModelUnavailableError(f"the {info.name} adapter is unavailable: {reason}")
        return info
    readers = [a for a in host.model_adapters.items() if a.accepts(ref)]
    ready = [a for a in readers if a.available() is None]
    if not ready:
        if readers:
            reasons = "; ".join(f"{a.name}: {a.available()}" for a in readers)
            raise ModelUnavailableError(f"no adapter can load {ref.path.name} here ({reasons})")
        package = FORMAT_PACKAGES.get(ref.format, "a plugin that reads them")
        raise ModelUnavailableError(
            f"no installed adapter loads {ref.format} models ({ref.path.name}): install {package}"
        )
    chosen = host.call_first("choose_model_adapter", model=ref, candidates=ready)
    return chosen or ready[0]


def load_model(
    name_or_path: str | Path | ModelRef,
    *,
    adapter: str | None = None,
    device: str = "auto",
    dtype: str = "fp32",
    download: bool = True,
    cache: bool = True,
    **options: Any,
) -> ModelDescriptor:
    """Resolve ``name_or_path``, choose the adapter (or use ``adapter``), load on ``device``
    in ``dtype`` (``auto``: bf16 on a CPU that computes it natively where the adapter runs
    it and the model takes it, else fp32; see ``resolve_dtype``). Adapter-specific
    ``options`` (tiling, offload, threads…) pass through.

    With ``cache`` (the default) the same weights loaded with the same adapter and options
    come back from this process's memo (``vt.models.memo``): callers share the object and
    must not close it (``is_memoised`` says whether one is); a caller that changes the model
    (LoRA, attention processors, offload hooks) loads with ``cache=False``."""
    ref = resolve_model(name_or_path, download=download)
    device = resolve_device(device)
    asked = dtype_name(dtype)
    ref = replace(ref, metadata={**ref.metadata, "device": device, "dtype": asked})
    info = choose_adapter(ref, adapter)
    dtype = resolve_dtype(asked, device, info.dtypes)

    def load(dtype: str) -> Any:
        at = replace(ref, metadata={**ref.metadata, "dtype": dtype})
        if cache:
            return cached_load(at, info, device=device, dtype=dtype, **options)
        return info.load(at, device=device, dtype=dtype, **options)

    try:
        loaded = load(dtype)
    except UnsupportedModelConfig:
        if asked != "auto" or dtype == "fp32":
            raise
        loaded = load("fp32")  # auto: a model whose weights refuse bf16 runs in fp32
    if not isinstance(loaded, ModelDescriptor):
        raise unexpected(info.name, loaded)
    if loaded.provenance is None:
        loaded.provenance = Provenance(
            path=ref.path,
            source=ref.source,
            sha256=ref.metadata.get("sha256"),
            name=ref.name,
            repo_id=ref.metadata.get("repo_id"),
            revision=ref.metadata.get("revision"),
        )
    return loaded
