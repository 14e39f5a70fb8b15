"""Image-to-video generation with CogVideoX: the API every ``vt cogvideo`` command, the HTTP
server and the training samples share.

A :class:`Generator` holds one model (a diffusers folder or a hub id) and loads its pipeline
lazily, once per mode (baseline, optimized); LoRA adapters are loaded into that pipeline once
each and switched per request. :meth:`Generator.generate` fits the conditioning image to the
model's size, runs the pipeline, writes the MP4 atomically through the core's
``write_video`` with the generation settings in the container tags, scores temporal
consistency with ``vt.metrics`` and writes a JSON sidecar beside the video.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import InputError, UsageError, VtError
from vt_cogvideo.loading import (
    MODE_SCHEDULER,
    MODES,
    SCHEDULERS,
    LoadedPipeline,
    ModelSpec,
    apply_lora,
    load_pipeline,
    lora_weights,
    read_model_spec,
    set_scheduler,
)
from vt_cogvideo.memory import PeakMemory

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

log = logging.getLogger("vt")

FITS = ("crop", "pad")
MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**32 - 1
#: the image sizes PIL may open (a decompression bomb is refused, not decoded)
MAX_IMAGE_PIXELS = 64_000_000


class Cancelled(VtError):
    """The caller's cancel event was set during a generation: nothing was written."""

    exit_code = 130


@dataclass
class GenerationRequest:
    image: str | Path | Image.Image  # conditioning image, any size (fitted)
    prompt: str
    negative_prompt: str = ""
    num_frames: int | None = None  # None: the model's own (49 for 5B-I2V; tiny: its config's)
    height: int | None = None
    width: int | None = None
    num_inference_steps: int = 50
    guidance_scale: float = 6.0
    seed: int | None = None  # None: a random seed, reported in the result
    fps: int = 8
    mode: str = "baseline"  # baseline | optimized
    scheduler: str | None = None  # ddim | dpm ; None: mode's default
    lora: str | Path | None = None  # folder or file with pytorch_lora_weights.safetensors
    lora_scale: float = 1.0
    fit: str = "crop"  # crop | pad


@dataclass
class GenerationResult:
    output: Path  # the MP4 (written atomically via vt.media.pipeline.write_video)
    sidecar: Path  # OUTPUT.json with everything below
    frames: int
    fps: int
    width: int
    height: int
    seed: int
    temporal_score: float  # vt.metrics temporal consistency, [0,1]
    timings: dict[str, float]  # load_s, generate_s, encode_s, score_s, total_s
    peak_memory_bytes: int  # peak VRAM on CUDA, peak RSS on CPU
    metadata: dict[str, Any] = field(default_factory=dict)  # prompt, seed, model, lora, ...

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"], data["sidecar"] = str(self.output), str(self.sidecar)
        return data


def sidecar_path(output: str | Path) -> Path:
    """Where the JSON sidecar of ``output`` goes: the same name with ``.json``."""
    return Path(output).with_suffix(".json")


# -- the conditioning image ----------------------------------------------------------------
def load_image(image: str | Path | Image.Image) -> Image.Image:
    """An RGB PIL image from a path or an image; one-line errors for missing/bad files."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    path = Path(image).expanduser()
    if not path.exists():
        raise InputError(f"image not found: {image}")
    if path.is_dir():
        raise InputError(f"image is a folder: {image}")
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(
            f"not a readable image: {image} ({str(exc).splitlines()[0][:120]})"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read image {image}: {str(exc)[:200]}") from None


def fit_image(image: Image.Image, width: int, height: int, fit: str = "crop") -> Image.Image:
    """``image`` at exactly ``width`` x ``height``: ``crop`` scales to cover and cuts the
    centre; ``pad`` scales to fit and centres it on black (no distortion either way)."""
    from PIL import Image

    if fit not in FITS:
        raise UsageError(f"fit must be crop or pad, got {fit!r}")
    w, h = image.size
    if (w, h) == (width, height):
        return image
    scale = max(width / w, height / h) if fit == "crop" else min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image.resize((sw, sh), Image.Resampling.LANCZOS)
    if fit == "crop":
        left, top = (sw - width) // 2, (sh - height) // 2
        return resized.crop((left, top, left + width, top + height))
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    canvas.paste(resized, ((width - sw) // 2, (height - sh) // 2))
    return canvas


# -- the generator -------------------------------------------------------------------------
class Generator:
    """Holds loaded pipelines (one per mode, LoRA adapters loaded into it once each and
    switched per request), loads lazily. One generation at a time per generator (a lock):
    share one generator between threads rather than making several.

    ``dtype`` overrides the mode's (bf16 on CUDA, fp32 on CPU); ``compile`` asks for
    ``torch.compile`` of the transformer in optimized mode (CUDA only); at most
    ``max_pipelines`` modes stay loaded (the least recently used is released).
    """

    def __init__(
        self,
        model: str | Path,
        device: str | None = None,
        *,
        dtype: str | None = None,
        compile: bool = False,
        max_pipelines: int = 2,
    ) -> None:
        from vt.models import resolve_device

        self.model = str(model)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.compile = compile
        self.max_pipelines = max(1, max_pipelines)
        self._spec: ModelSpec | None = None
        self._pipelines: OrderedDict[str, LoadedPipeline] = OrderedDict()
        #: pipelines loaded by this generator so far (batch reports show reuse)
        self.loads = 0
        self._lock = threading.RLock()
        #: one-line notes (features off on this device…), each said once
        self.notes: list[str] = []

    # -- model config ----------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        """The model's sizes from its configs (read once; no weights loaded)."""
        if self._spec is None:
            self._spec = read_model_spec(self.model)
        return self._spec

    def validate(self, request: GenerationRequest) -> GenerationRequest:
        """Fill defaults from the model config, raise vt.errors.UsageError on sizes/frame counts
        the model cannot take. Cheap after the first load (reads config only)."""
        r = request
        _check_types(r)
        if not isinstance(r.prompt, str) or not r.prompt.strip():
            raise UsageError("prompt is empty")
        if len(r.prompt) > MAX_PROMPT_CHARS or len(r.negative_prompt or "") > MAX_PROMPT_CHARS:
            raise UsageError(f"prompt longer than {MAX_PROMPT_CHARS} characters")
        if any(ord(c) < 32 and c not in "\t\n\r" for c in r.prompt + (r.negative_prompt or "")):
            raise UsageError("prompt contains control characters")
        if r.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {r.mode!r}")
        if r.scheduler is not None and r.scheduler not in SCHEDULERS:
            raise UsageError(
                f"scheduler must be one of {', '.join(SCHEDULERS)}, got {r.scheduler!r}"
            )
        if r.fit not in FITS:
            raise UsageError(f"fit must be crop or pad, got {r.fit!r}")
        if not isinstance(r.num_inference_steps, int) or not 1 <= r.num_inference_steps <= 1000:
            raise UsageError(f"steps must be 1..1000, got {r.num_inference_steps}")
        if not math.isfinite(r.guidance_scale) or not 0 <= r.guidance_scale <= 50:
            raise UsageError(f"guidance must be 0..50, got {r.guidance_scale}")
        if not isinstance(r.fps, int) or not 1 <= r.fps <= 240:
            raise UsageError(f"fps must be 1..240, got {r.fps}")
        if r.seed is not None and not 0 <= r.seed <= MAX_SEED:
            raise UsageError(f"seed must be 0..{MAX_SEED}, got {r.seed}")
        if not math.isfinite(r.lora_scale) or not -10 <= r.lora_scale <= 10:
            raise UsageError(f"lora_scale must be -10..10, got {r.lora_scale}")
        lora = lora_weights(r.lora) if r.lora not in (None, "") else None
        spec = self.spec
        height = spec.height if r.height is None else int(r.height)
        width = spec.width if r.width is None else int(r.width)
        frames = spec.frames if r.num_frames is None else int(r.num_frames)
        spec.check(height, width, frames)
        return replace(
            r,
            height=height,
            width=width,
            num_frames=frames,
            negative_prompt=r.negative_prompt or "",
            scheduler=r.scheduler or MODE_SCHEDULER[r.mode],
            lora=lora,
        )

    # -- pipelines -------------------------------------------------------------------------
    def pipeline(self, mode: str) -> tuple[LoadedPipeline, float]:
        """The loaded pipeline for ``mode`` and the seconds spent loading it now (0 if it
        was loaded already)."""
        with self._lock:
            loaded = self._pipelines.get(mode)
            if loaded is not None:
                self._pipelines.move_to_end(mode)
                return loaded, 0.0
            while len(self._pipelines) >= self.max_pipelines:
                self._release(next(iter(self._pipelines)))
            from vt.models.diffusers_adapter import quiet_libraries

            quiet_libraries()
            loaded = load_pipeline(
                self.spec, mode=mode, device=self.device, dtype=self.dtype, compile=self.compile
            )
            for note in loaded.notes:
                if note not in self.notes:
                    self.notes.append(note)
                    log.info(note)
            self._pipelines[mode] = loaded
            self.loads += 1
            return loaded, loaded.load_seconds

    def _release(self, mode: str) -> None:
        self._pipelines.pop(mode, None)
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def close(self) -> None:
        """Release every loaded pipeline."""
        with self._lock:
            for mode in list(self._pipelines):
                self._release(mode)

    # -- generation ------------------------------------------------------------------------
    def generate(
        self,
        request: GenerationRequest,
        output: str | Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        overwrite: bool = False,
        sidecar: str | Path | None = None,
    ) -> GenerationResult:
        """Generate one clip into ``output`` (and its ``.json`` sidecar, ``sidecar`` or
        beside ``output``). ``progress(step, total_steps)`` after each denoising step; a set
        ``cancel`` stops at the next step with :class:`Cancelled` (nothing written)."""
        started = time.perf_counter()
        req = self.validate(request)
        output = Path(output).expanduser()
        sidecar = Path(sidecar) if sidecar is not None else sidecar_path(output)
        _check_outputs(output, sidecar, overwrite)
        image = fit_image(load_image(req.image), int(req.width or 0), int(req.height or 0), req.fit)
        seed = req.seed if req.seed is not None else secrets.randbelow(MAX_SEED + 1)
        with self._lock:
            loaded, load_s = self.pipeline(req.mode)
            set_scheduler(loaded, str(req.scheduler))
            lora = Path(req.lora) if req.lora is not None else None
            apply_lora(loaded, lora, req.lora_scale)
            t0 = time.perf_counter()
            with PeakMemory(self.device) as peak:
                frames = _run(loaded, req, image, seed, progress, cancel)
            generate_s = time.perf_counter() - t0
        spec = self.spec
        metadata = {
            "prompt": req.prompt,
            "negative_prompt": req.negative_prompt,
            "seed": seed,
            "model": spec.ref.metadata.get("repo_id") or spec.name,
            "model_path": str(spec.ref.path),
            "lora": str(lora) if lora else None,
            "lora_scale": req.lora_scale if lora else None,
            "mode": req.mode,
            "scheduler": req.scheduler,
            "steps": req.num_inference_steps,
            "guidance_scale": req.guidance_scale,
            "num_frames": len(frames),
            "width": req.width,
            "height": req.height,
            "fps": req.fps,
            "fit": req.fit,
            "device": self.device,
            "dtype": loaded.dtype,
            "offload": loaded.offload,
            "vae_tiling": loaded.vae_tiling,
            "compiled": loaded.compiled,
            "peak_memory_kind": peak.kind,
            "generator": "vt-cogvideo",
        }
        if isinstance(req.image, (str, Path)):
            metadata["image"] = str(req.image)
        # the score (OpenCV, GIL released) runs while the core's writer encodes
        with ThreadPoolExecutor(1, thread_name_prefix="vt-score") as pool:
            scoring = pool.submit(_timed_score, frames)
            t0 = time.perf_counter()
            write(frames, output, req.fps, metadata, overwrite)
            encode_s = time.perf_counter() - t0
            score, score_s = scoring.result()
        timings = {
            "load_s": load_s,
            "generate_s": generate_s,
            "encode_s": encode_s,
            "score_s": score_s,
            "total_s": time.perf_counter() - started,
        }
        result = GenerationResult(
            output=output,
            sidecar=sidecar,
            frames=len(frames),
            fps=req.fps,
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            seed=seed,
            temporal_score=score,
            timings={k: round(v, 4) for k, v in timings.items()},
            peak_memory_bytes=peak.bytes,
            metadata=metadata,
        )
        _write_sidecar(result, overwrite)
        return result

    def describe(self) -> dict[str, Any]:
        """Model id/path, device, dtype, loaded pipelines (for ``/health`` and ``check``)."""
        info: dict[str, Any] = {
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype or "auto",
            "compile": self.compile,
        }
        try:
            info["spec"] = self.spec.as_dict()
        except VtError as exc:
            info["error"] = str(exc)
        info["pipelines"] = {m: p.describe() for m, p in list(self._pipelines.items())}
        info["notes"] = list(self.notes)
        return info


_INTS = ("num_frames", "height", "width", "num_inference_steps", "seed", "fps")
_NUMBERS = ("guidance_scale", "lora_scale")
_STRINGS = ("prompt", "negative_prompt", "mode", "fit")


def _check_types(r: GenerationRequest) -> None:
    """Wrong types (from JSON, forms) are usage errors, not tracebacks further down."""
    for name in _INTS:
        value = getattr(r, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{name} must be an integer, got {value!r}")
    for name in _NUMBERS:
        value = getattr(r, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{name} must be a number, got {value!r}")
    for name in _STRINGS:
        if not isinstance(getattr(r, name), str):
            raise UsageError(f"{name} must be a string, got {getattr(r, name)!r}")
    if r.scheduler is not None and not isinstance(r.scheduler, str):
        raise UsageError(f"scheduler must be a string, got {r.scheduler!r}")


def _check_outputs(output: Path, sidecar: Path, overwrite: bool) -> None:
    """Refuse before generating what write_video would refuse after (minutes later)."""
    from vt.errors import OutputError

    if output.suffix.lower() == ".json":
        raise UsageError(f"output must be a video file, not {output.name}")
    for path in (output, sidecar):
        if path.is_dir():
            raise UsageError(f"output is a directory: {path}")
        if path.exists() and not overwrite:
            raise UsageError(f"output exists: {path} (use --overwrite to replace it)")
    if not output.parent.is_dir():
        raise OutputError(f"output folder does not exist: {output.parent}")


def _run(
    loaded: LoadedPipeline,
    req: GenerationRequest,
    image: Image.Image,
    seed: int,
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
) -> np.ndarray:
    """The pipeline call; frames as ``(F, H, W, 3)`` uint8."""
    import numpy as np
    import torch

    steps = req.num_inference_steps
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled before it started")

    def on_step(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled at step {step + 1} of {steps}")
        if progress is not None:
            progress(step + 1, steps)
        return tensors

    # a CPU generator: the same seed gives the same noise on every device
    generator = torch.Generator("cpu").manual_seed(seed)
    spec_tokens = int(loaded.pipe.transformer.config.max_text_seq_length)
    with torch.inference_mode():
        out = loaded.pipe(
            image=image,
            prompt=req.prompt,
            negative_prompt=req.negative_prompt or None,
            num_frames=req.num_frames,
            height=req.height,
            width=req.width,
            num_inference_steps=steps,
            guidance_scale=req.guidance_scale,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step,
            max_sequence_length=spec_tokens,
        )
    video = out.frames[0]  # (F, H, W, 3) float in [0, 1]
    frames: np.ndarray = (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return frames


def container_tags(metadata: dict[str, Any]) -> dict[str, str]:
    """Tags for the MP4: title and comment (which MP4 keeps) plus one tag per setting."""
    settings = {k: v for k, v in metadata.items() if v is not None}
    tags = {str(k): str(v) for k, v in settings.items() if k not in ("model_path",)}
    tags["title"] = str(metadata.get("prompt", ""))[:250]
    tags["comment"] = json.dumps(settings, sort_keys=True)
    return tags


def write(
    frames: np.ndarray, output: Path, fps: int, metadata: dict[str, Any], overwrite: bool
) -> None:
    """Encode ``frames`` (F, H, W, 3) uint8 to ``output`` through the core's writer."""
    from vt.media.frames import FrameBatch
    from vt.media.pipeline import write_video

    batch = FrameBatch(frames, [None] * len(frames), Fraction(1, fps), list(range(len(frames))))
    write_video([batch], output, fps=fps, overwrite=overwrite, metadata=container_tags(metadata))


def score_frames(frames: np.ndarray) -> float:
    """Temporal consistency (``vt.metrics``, DIS flow, σ = 1 px) of the generated frames."""
    from vt.metrics import temporal_consistency

    if len(frames) < 2:
        return 1.0
    return round(temporal_consistency(list(frames)).score, 6)


def _timed_score(frames: np.ndarray) -> tuple[float, float]:
    started = time.perf_counter()
    return score_frames(frames), time.perf_counter() - started


def _write_sidecar(result: GenerationResult, overwrite: bool) -> None:
    from vt.atomic import atomic_file

    with atomic_file(result.sidecar, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
