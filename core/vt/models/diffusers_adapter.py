"""The one diffusers adapter every plugin shares (stylize, vae-scale, cogvideo…).

Loads ``from_pretrained`` folders (a pipeline with ``model_index.json`` or one model with a
diffusers ``config.json``), Hugging Face ids (resolved to a cache folder by the core), and
single-file ``.safetensors`` / ``.ckpt`` checkpoints. Weights are read from safetensors, or from
pickles with ``weights_only`` (diffusers' own default); remote code is never run. Registered
only when diffusers is importable: the core itself never requires it
(``pip install 'vt[diffusers]'``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import pickletools
import zipfile
from pathlib import Path
from typing import Any

from vt.errors import MissingModelConfigError, ModelUnavailableError, UsageError
from vt.models.checkpoints import safetensors_shapes
from vt.models.descriptor import ModelDescriptor, SizeRequirements, Tiling
from vt.models.devices import torch_dtype
from vt.registry import ModelAdapterInfo, ModelRef

log = logging.getLogger("vt")

OFFLOAD = ("none", "model", "sequential")
#: state-dict key prefixes of single-file checkpoints diffusers reads
_SINGLE_FILE_PREFIXES = (
    "model.diffusion_model.",
    "first_stage_model.",
    "encoder.conv_in.",
    "decoder.conv_out.",
    "encoder.down.",
    "encoder.down_blocks.",
)


def available() -> str | None:
    if importlib.util.find_spec("diffusers") is None:
        return "diffusers is not installed (pip install 'vt[diffusers]')"
    return None


def quiet_libraries() -> None:
    """diffusers/transformers progress bars and advice off the terminal (vt prints its own
    progress); ``--debug``/``VT_DEBUG`` keeps them."""
    import os

    if os.environ.get("VT_DEBUG") or log.isEnabledFor(logging.DEBUG):
        return
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - transformers is optional
            continue
        module.set_verbosity_error()
        module.disable_progress_bar()


def _config(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _safetensors_keys(path: Path) -> list[str]:
    return list(safetensors_shapes(path))


def _ckpt_keys(path: Path) -> list[str]:
    """Strings of a torch zip checkpoint's pickle (its tensor names among them), read with
    ``pickletools`` so nothing in the file runs; legacy (non-zip) pickles give none."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(
                (n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None
            )
            if name is None or archive.getinfo(name).file_size > 200_000_000:
                return []
            data = archive.read(name)
        return [
            arg
            for op, arg, _ in pickletools.genops(data)
            if isinstance(arg, str) and "UNICODE" in op.name
        ]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return []


def _single_file_keys(path: Path) -> list[str]:
    return _ckpt_keys(path) if path.suffix.lower() == ".ckpt" else _safetensors_keys(path)


def probe(ref: ModelRef) -> bool:
    """Whether ``ref`` is something diffusers loads (not a transformers or spandrel model)."""
    path = ref.path
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return True
        config = _config(path)
        return config is not None and ("_diffusers_version" in config or "_class_name" in config)
    if path.suffix.lower() in (".safetensors", ".ckpt"):
        return any(k.startswith(_SINGLE_FILE_PREFIXES) for k in _single_file_keys(path))
    return False


class DiffusersModel(ModelDescriptor):
    """A diffusers pipeline or model (``.model``) described for vt."""

    backend = "diffusers"
    devices = ("cpu", "cuda", "mps")
    dtypes = ("fp32", "fp16", "bf16")
    supports_half = True
    supports_bfloat16 = True
    offload = "none"

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        self.is_pipeline = hasattr(model, "components")
        config = getattr(model, "config", {}) or {}
        cls = type(model).__name__
        if self.is_pipeline:
            self.task = "diffusion-pipeline"
            self.tiling = Tiling.DISCOURAGED
            vae = getattr(model, "vae", None)
            factor = getattr(model, "vae_scale_factor", None) or _compression(vae)
            self.size_requirements = SizeRequirements(multiple_of=int(factor or 8))
        elif cls.startswith("Autoencoder"):
            self.task = "autoencoder"
            factor = _compression(model)
            self.scale = 1 / factor
            self.size_requirements = SizeRequirements(multiple_of=factor)
            self.input_channels = int(config.get("in_channels", 3))
            self.output_channels = int(config.get("out_channels", 3))
            self.latent_channels = int(config.get("latent_channels", 4))
            self.scaling_factor = float(config.get("scaling_factor", 1.0))
            self.tiling = Tiling.INTERNAL if hasattr(model, "enable_tiling") else Tiling.NONE
        else:
            self.task = "diffusion-model"
            self.tiling = Tiling.NONE

    def _move(self, device: str, dtype: str) -> None:
        if self.offload != "none":
            return  # the offload hooks move each component when it runs
        if self.is_pipeline:
            self.model.to(device, torch_dtype(dtype))
        else:
            self.model.to(device=device, dtype=torch_dtype(dtype))


def _compression(vae: Any) -> int:
    """Spatial downscale of a VAE: 2 per down block after the first (8 for SD's)."""
    if vae is None:
        return 8
    config = getattr(vae, "config", {}) or {}
    blocks = config.get("block_out_channels") or ()
    if getattr(vae, "spatial_compression_ratio", None):
        return int(vae.spatial_compression_ratio)
    return 2 ** (len(blocks) - 1) if blocks else 8


def _dtype_keyword() -> str:
    """diffusers 0.42 renamed ``torch_dtype`` to ``dtype`` (the old name warns, then goes in
    1.0); older releases know only ``torch_dtype``."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:  # pragma: no cover - diffusers before the rename
        return "torch_dtype"
    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _class(name: str | type | None, default: str) -> Any:
    import diffusers

    if isinstance(name, type):
        return name
    try:
        return getattr(diffusers, name or default)
    except AttributeError:
        raise UsageError(f"diffusers has no class {name!r}") from None


def load(
    ref: ModelRef,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    pipeline_class: str | type | None = None,
    model_class: str | type | None = None,
    subfolder: str | None = None,
    config: str | None = None,
    offload: str = "none",
    vae_slicing: bool = False,
    vae_tiling: bool = False,
    components: dict[str, Any] | None = None,
    **_: Any,
) -> DiffusersModel:
    """Load ``ref`` on ``device`` in ``dtype``.

    ``offload`` ("model": whole components, "sequential": layer by layer) needs a CUDA device
    and is ignored, with a note, elsewhere. ``vae_slicing``/``vae_tiling`` trade speed for
    memory on any device. ``subfolder`` picks one component of a pipeline folder (``vae``).
    ``components`` are loaded models a pipeline takes instead of, or beside, the folder's own
    (``{"controlnet": …, "motion_adapter": …}``: diffusers' ``from_pretrained`` keywords).
    """
    if offload not in OFFLOAD:
        raise UsageError(f"offload must be one of {', '.join(OFFLOAD)}, got {offload!r}")
    path = ref.path
    torch_type = torch_dtype(dtype)
    folder = path / subfolder if subfolder else path
    name = ref.name or path.name
    extra = dict(components or {})
    dtype_arg = {_dtype_keyword(): torch_type}
    try:
        if path.is_file():
            cls = _class(pipeline_class or model_class, _single_file_class(path))
            kwargs: dict[str, Any] = {**dtype_arg, **extra}
            if config:
                kwargs["config"] = config
            elif _is_pipeline_class(cls):
                kwargs.update(_default_configs(path, path.name))
            if subfolder and not _is_pipeline_class(cls):
                kwargs["subfolder"] = subfolder  # the component's configs in ``config``
            loaded = cls.from_single_file(str(path), **kwargs)
        elif (folder / "model_index.json").is_file() and not model_class:
            cls = _class(pipeline_class, "DiffusionPipeline")
            loaded = cls.from_pretrained(
                str(folder), **dtype_arg, use_safetensors=_has_safetensors(folder), **extra
            )
        else:
            declared = (_config(folder) or {}).get("_class_name")
            cls = _class(model_class, declared or "AutoencoderKL")
            loaded = cls.from_pretrained(
                str(folder), **dtype_arg, use_safetensors=_has_safetensors(folder)
            )
    except (UsageError, ModelUnavailableError):
        raise
    except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds: one line each
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if path.is_file():
            _explain_single_file_failure(path, path.name, config, first)
        raise ModelUnavailableError(f"diffusers cannot load {name}: {first[:300]}") from None
    model = DiffusersModel(loaded, name)
    model.check(device, dtype)
    _memory_switches(model, vae_slicing, vae_tiling)
    if offload != "none" and not device.startswith("cuda"):
        log.info("offload=%s needs a CUDA device: ignored on %s", offload, device)
        offload = "none"
    model.offload = offload
    if offload == "model":
        loaded.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        loaded.enable_sequential_cpu_offload(device=device)
    model.to(device, dtype)
    if hasattr(loaded, "set_progress_bar_config"):
        loaded.set_progress_bar_config(disable=True)
    return model


def _single_file_class(path: Path) -> str:
    keys = _single_file_keys(path)
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "StableDiffusionPipeline"
    return "AutoencoderKL"


def _is_pipeline_class(cls: Any) -> bool:
    import diffusers

    return isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)


def _default_configs(path: Path, name: str) -> dict[str, str]:
    """A pipeline single file given no configs: diffusers takes them from the hub repository
    of the model family it recognises in the keys (SD 1.5 for SD 1.x). Found in the Hugging
    Face cache, that folder is passed (read as vt reads hub ids); offline and not cached, say
    so in one line before diffusers goes to the network anyway; else diffusers fetches them
    (configs only)."""
    from vt.models.hub import cached_snapshot, offline

    repo = _default_config_repo(path, name)
    snapshot = cached_snapshot(repo) if repo else None
    if snapshot is not None:
        return {"config": str(snapshot)}
    if offline():
        raise _missing_configs(name, repo, "HF_HUB_OFFLINE=1")
    return {}


def _missing_configs(name: str, repo: str | None, why: str) -> MissingModelConfigError:
    where = f"from {repo}, which is" if repo else "from the Hugging Face hub: they are"
    return MissingModelConfigError(
        f"{name} is a single-file checkpoint: diffusers takes its configs {where} not in "
        f"the Hugging Face cache and {why}",
        "pass config= a diffusers folder or a cached Hugging Face id of the same model",
    )


def _explain_single_file_failure(path: Path, name: str, config: str | None, first: str) -> None:
    """Raise a clearer error than diffusers' for the two usual reasons a single file fails:
    a ``.ckpt`` whose pickle holds more than tensors (refused by ``weights_only``), and
    configs that diffusers would fetch from the hub but cannot (not cached, no network)."""
    if path.suffix.lower() == ".ckpt" and not _is_plain_checkpoint(path):
        raise _refused(name)
    if config:
        return
    from vt.models.hub import cached_snapshot, offline

    repo = _default_config_repo(path, name)
    if repo is not None and cached_snapshot(repo) is not None:
        return  # the configs were there: something else failed
    why = "HF_HUB_OFFLINE=1" if offline() else f"the hub is unreachable ({first[:200]})"
    raise _missing_configs(name, repo, why)


def _refused(name: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"{name}: refused: its pickle holds objects other than tensors (loading it could run "
        "code); vt reads .ckpt files with torch's weights_only: use a .safetensors copy of "
        "the weights"
    )


def _is_plain_checkpoint(path: Path) -> bool:
    """Whether torch reads ``path`` with ``weights_only`` (memory-mapped: no tensor is read)."""
    import pickle

    import torch

    try:
        torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        return False
    except Exception:  # noqa: BLE001 - unreadable for another reason: not refused
        return True
    return True


def _default_config_repo(path: Path, name: str) -> str | None:
    """The hub repository whose configs diffusers picks for a single file, by its keys and
    shapes (from the safetensors header, or the memory-mapped ``.ckpt``: no tensor is read),
    or None."""
    import pickle

    try:
        import torch
        from diffusers.loaders.single_file_utils import fetch_diffusers_config

        if path.suffix.lower() == ".ckpt":
            state: Any = torch.load(
                str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
            while isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
        else:
            state = {
                key: torch.empty(shape, device="meta")
                for key, shape in safetensors_shapes(path).items()
            }
        repo = fetch_diffusers_config(state)["pretrained_model_name_or_path"]
    except pickle.UnpicklingError:
        raise _refused(name) from None
    except Exception:  # noqa: BLE001 - unrecognised: diffusers will say what it misses
        return None
    return repo if isinstance(repo, str) else None


def _has_safetensors(folder: Path) -> bool | None:
    """Prefer safetensors where a folder has them; else diffusers' own weights_only pickles."""
    return True if any(folder.rglob("*.safetensors")) else None


def _memory_switches(model: DiffusersModel, slicing: bool, tiling: bool) -> None:
    vae = getattr(model.model, "vae", None) if model.is_pipeline else model.model
    if vae is None or not (slicing or tiling):
        return
    if slicing and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    if tiling:
        if not hasattr(vae, "enable_tiling"):
            raise UsageError(f"{type(vae).__name__} has no tiled decoding")
        vae.enable_tiling()


DIFFUSERS = ModelAdapterInfo(
    name="diffusers",
    load=load,
    formats=("dir", ".safetensors", ".ckpt"),
    description="diffusers pipelines and models (AutoencoderKL, AutoencoderTiny, UNets, "
    "transformers): from_pretrained folders, Hugging Face ids, single .safetensors/.ckpt "
    "files",
    tasks=("diffusion-pipeline", "autoencoder", "diffusion-model"),
    devices=("cpu", "cuda", "mps"),
    dtypes=("fp32", "fp16", "bf16"),
    available=available,
    probe=probe,
)
