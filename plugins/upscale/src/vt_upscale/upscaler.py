"""``Upscaler``: load a model once, upscale frames or whole files.

The AI path runs the model with optional tiling, shrinks the batch and then the tile when
the device runs out of memory, and resamples the model's output with Lanczos when the asked
scale is not the model's own (Real-ESRGAN's ``--outscale``). Models that run on host memory
(ncnn, onnxruntime on the CPU) get the decoded frames as they are, a few side by side, with
no torch tensor in between; torch models run in batches under ``torch.inference_mode``. How
many threads the model, the decoder and the encoder get is one rule,
:mod:`vt_upscale.threads`. When the model cannot run at all it falls back to Lanczos with
an :class:`UpscaleWarning`, or raises with ``strict=True``.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vt.cli_media import default_output
from vt.errors import ModelUnavailableError, UsageError, VtError
from vt.media.frames import FrameBatch
from vt.processors.resize import check_method, resize_images, target_size
from vt_upscale.memory import release_large_blocks
from vt_upscale.models import default_model
from vt_upscale.sr import SRModel
from vt_upscale.threads import ThreadPlan, available_cores, plan_threads
from vt_upscale.tiling import free_device_memory, is_oom, next_tile, pre_pad, run_tiled


class UpscaleWarning(UserWarning):
    """The upscaler changed course (fallback to Lanczos, smaller tiles after OOM)."""


def _warn(message: str) -> None:
    warnings.warn(message, UpscaleWarning, stacklevel=3)


#: frames per worker in one call when frames run side by side. Only running frames hold the
#: model's activations; the waiting ones are their input and output arrays (a few MB)
QUEUED_PER_WORKER = 4


class Upscaler:
    """Upscale RGB frames by ``scale`` (or to ``width``x``height``) with a model or a resampler.

    ``ai=True`` (implied by ``model``) uses ``model`` — a registered name, a file, or an
    :class:`~vt_upscale.sr.SRModel` — defaulting to the packaged ``realesr-animevideov3``
    network for the scale. Without AI, ``method`` picks the libswscale filter.
    ``trust_model=True`` allows TorchScript model files, which run code as they load.
    ``cores`` is how many cores the job may use (default: all this process may run on; 1 for
    single-thread jobs): the model's threads, and the decoder's and encoder's in
    :meth:`job_settings`, follow from it (:mod:`vt_upscale.threads`); ``threads`` > 0 fixes
    the model's threads per call instead (one frame at a time).
    """

    def __init__(
        self,
        model: Any = None,
        *,
        ai: bool | None = None,
        scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        method: str = "lanczos",
        resample: str = "lanczos",
        backend: str | None = None,
        device: str = "auto",
        dtype: str = "fp32",
        tile: int = 0,
        tile_pad: int = 10,
        pre_pad: int = 0,
        batch: int = 1,
        threads: int = 0,
        cores: int | None = None,
        strict: bool = False,
        download: bool = True,
        trust_model: bool = False,
    ) -> None:
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise UsageError(f"--scale must be a positive number, got {scale}")
        if tile < 0 or tile_pad < 0 or pre_pad < 0 or batch < 1:
            raise UsageError("--tile, --tile-pad and --pre-pad must be >= 0, --batch >= 1")
        if threads < 0 or (cores is not None and cores < 1):
            raise UsageError("threads must be >= 0 and cores >= 1")
        self.width, self.height = width, height
        self.method = check_method(method)
        self.resample = check_method(resample)
        self.tile, self.tile_pad, self.pre_pad = tile, tile_pad, pre_pad
        self.batch, self.threads, self.strict = batch, threads, strict
        self.cores = cores or available_cores()
        self.workers = 1  # frames the model runs at once (the thread plan's)
        self._frame_pixels: int | None = None  # the frame size the plan was applied for
        self._pool: ThreadPoolExecutor | None = None
        self.model: SRModel | None = None
        self.fallback_reason: str | None = None
        # a loaded SRModel handed in stays the caller's: close() only releases what we loaded
        self._owns_model = not isinstance(model, SRModel)
        self.ai = bool(ai) if ai is not None else model is not None
        if self.ai:
            wanted = model if model is not None else default_model(scale or 2)
            try:
                from vt_upscale.adapters import load_model

                # a CPU runtime is loaded with the threads the plan gives a frame when the
                # backend runs frames side by side; the plan is applied again once loaded
                guess = plan_threads(self.cores, on_cpu=True, concurrent=True)
                self.model = load_model(
                    wanted,
                    backend=backend,
                    device=device,
                    dtype=dtype,
                    threads=threads or guess.model_threads,
                    download=download,
                    trust_model=trust_model,
                )
            except ModelUnavailableError as exc:
                self._fall_back(str(exc))
            if self.model is not None:
                fixed = self.model.size_requirements.fixed
                if fixed and not self.tile:
                    self.tile = max(min(fixed) - 2 * self.tile_pad, 1)
                if self.model.max_batch:
                    self.batch = min(self.batch, self.model.max_batch)
                # applied (threads set) when the frame size is known: prepare()
                self.workers = self.thread_plan().workers
        self.scale = (
            scale
            if scale is not None
            else (float(self.model.scale) if self.model is not None and width is None else 2.0)
        )

    # -- shape -------------------------------------------------------------------------------
    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the output for an input of this size."""
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.width is not None:
            return self.width, max(1, round(height * self.width / width))
        if self.height is not None:
            return max(1, round(width * self.height / height)), self.height
        return target_size(width, height, scale=self.scale)

    def describe(self) -> str:
        if self.model is None:
            text = f"{self.method} x{self.scale:g}"
            return f"{text} (fallback from AI, see the warning)" if self.fallback_reason else text
        m = self.model
        text = f"{m.name} [{m.backend}, {m.device}, {m.dtype}, x{m.scale}]"
        converted = m.describe().get("converted_from")
        if converted:
            text += f" (converted from {converted})"
        if self._needs_resample_hint():
            text += f" + {self.resample} to x{self.scale:g}"
        return text

    # -- threads -----------------------------------------------------------------------------
    @property
    def on_cpu(self) -> bool:
        """Whether the work is on the CPU (classical resampling, or a model there)."""
        return self.model is None or str(self.model.device).startswith("cpu")

    def thread_plan(self) -> ThreadPlan:
        """Threads for the model, decoder and encoder (:mod:`vt_upscale.threads`)."""
        if self.model is None:  # classical: libswscale in the pipeline, FFmpeg's own threads
            return ThreadPlan(workers=1, model_threads=0, decoder_threads=0, encoder_threads=0)
        plan = plan_threads(
            self.cores,
            on_cpu=self.on_cpu,
            concurrent=self.model.concurrent_calls,
            frame_pixels=self._frame_pixels,
        )
        if self.threads:  # fixed by the caller: one frame at a time on that many threads
            plan = replace(plan, workers=1, model_threads=self.threads)
        return plan

    def _apply_plan(self) -> None:
        plan = self.thread_plan()
        if self.model is not None and plan.model_threads:
            self.model.set_threads(plan.model_threads)
        if plan.workers != self.workers:
            self._close_pool()
            self.workers = plan.workers

    def set_cores(self, cores: int) -> None:
        """Use ``cores`` cores from now on (e.g. 1 for a single-thread job)."""
        self.cores = max(int(cores), 1)
        if self._frame_pixels is None:
            self.workers = self.thread_plan().workers
        else:
            self._apply_plan()

    def prepare(self, width: int, height: int) -> None:
        """Set the model's threads for frames of this input size (big frames run one at a
        time on every core, see :mod:`vt_upscale.threads`)."""
        self._frame_pixels = width * height
        self._apply_plan()

    @property
    def frames_per_call(self) -> int:
        """Frames :meth:`upscale_batch` is best given at once (what the processor asks): with
        frames side by side, :data:`QUEUED_PER_WORKER` per worker, so a worker that finishes
        early takes the next frame instead of waiting for the others at every call's end."""
        if not self._host_model:
            return self.batch
        return max(self.batch, self.workers * QUEUED_PER_WORKER if self.workers > 1 else 1)

    def job_settings(self, config: Any, options: Any) -> tuple[Any, Any]:
        """``EncoderConfig`` and ``PipelineOptions`` with the plan's encoder and decoder
        threads where the caller left them automatic (0); a single-thread job keeps its own
        one thread for everything, the model included."""
        if getattr(options, "single_thread", False):
            if self.cores != 1:
                self.set_cores(1)
            return config, options
        plan = self.thread_plan()
        if plan.encoder_threads and not config.threads:
            config = replace(config, threads=plan.encoder_threads)
        if plan.decoder_threads and not options.threads:
            options = replace(options, threads=plan.decoder_threads)
        return config, options

    def _needs_resample_hint(self) -> bool:
        return self.model is not None and (
            self.width is not None or abs(self.scale - self.model.scale) > 1e-9
        )

    # -- fallbacks ---------------------------------------------------------------------------
    def _fall_back(self, reason: str) -> None:
        if self.strict:
            raise ModelUnavailableError(f"{reason} (--strict: no fallback)")
        self.fallback_reason = reason
        self._release()
        _warn(f"AI upscaling unavailable, falling back to {self.method}: {reason}")

    # -- frames --------------------------------------------------------------------------------
    def upscale(self, images: np.ndarray) -> np.ndarray:
        """Upscale ``(H, W, 3)`` or ``(N, H, W, 3)`` uint8 (rgb24) / uint16 (rgb48) images."""
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype not in (np.uint8, np.uint16):
            raise UsageError("images must be (N, H, W, 3) uint8 or uint16 RGB")
        n = batch.shape[0]
        frames = FrameBatch(
            batch,
            [None] * n,
            Fraction(1),
            list(range(n)),
            "rgb48" if batch.dtype == np.uint16 else "rgb24",
        )
        out = self.upscale_batch(frames).images
        return out[0] if single else out

    def upscale_batch(self, batch: FrameBatch) -> FrameBatch:
        """A ``FrameBatch`` upscaled; PTS and indices are kept. A model's output stays a tensor
        on its device (no host copy) unless it must be resampled to a scale of our own."""
        out_w, out_h = self.output_size(batch.width, batch.height)
        if self.model is not None:
            if self._frame_pixels != batch.width * batch.height:
                self.prepare(batch.width, batch.height)
            if self.on_cpu and self.model.pooled_memory:
                release_large_blocks()  # RSS follows the frames in flight (vt_upscale.memory)
            try:
                result = self._run_host(batch) if self._host_model else self._run_model(batch)
            except VtError:
                raise
            except Exception as exc:  # noqa: BLE001 - OOM that tiling could not fix, etc.
                if not is_oom(exc):
                    raise
                self._fall_back(
                    f"out of memory even with {self.tile}px tiles ({str(exc).splitlines()[0]})"
                )
                result = None
            if result is not None:
                if (result.width, result.height) != (out_w, out_h):
                    result = result.with_images(
                        resize_images(result.images, (out_w, out_h), self.resample)
                    )
                return result
        return batch.with_images(resize_images(batch.images, (out_w, out_h), self.method))

    @property
    def _host_model(self) -> bool:
        return self.model is not None and self.model.host_arrays

    def _run_host(self, batch: FrameBatch) -> FrameBatch:
        """A host-array model over ``batch``: frame by frame, ``self.workers`` side by side,
        straight from the decoded pixels into the output array (no tensors)."""
        model = self.model
        assert model is not None
        images = batch.images
        n, h, w = images.shape[:3]
        scale = model.scale
        while True:
            tile = self.tile
            out = np.empty((n, h * scale, w * scale, 3), images.dtype)

            def one(i: int, tile: int | None = tile, out: np.ndarray = out) -> None:
                image = pre_pad(images[i], self.pre_pad)
                y = run_tiled(
                    model.upscale_image, image, scale, tile, self.tile_pad, spatial=(0, 1)
                )
                out[i] = y[: h * scale, : w * scale]

            try:
                if self.workers > 1 and n > 1:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(
                            self.workers, thread_name_prefix="vt-upscale"
                        )
                    for future in [self._pool.submit(one, i) for i in range(n)]:
                        future.result()
                else:
                    for i in range(n):
                        one(i)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                if self._shrink(h, w, exc):
                    continue  # again with a smaller tile
                raise
            return batch.with_images(out)

    def _run_model(self, batch: FrameBatch) -> FrameBatch:
        """The model over ``batch`` in chunks of ``self.batch``, on the model's device."""
        import torch

        model = self.model
        assert model is not None
        frames = batch.to_tensor(model.device)  # no copy when it is there already
        outputs = []
        start = 0
        n = len(batch)
        while start < n:
            count = min(self.batch, n - start)
            x = frames[start : start + count]
            try:
                with torch.inference_mode():
                    outputs.append(self._infer(x).clamp_(0, 1))
            except Exception as exc:
                if not is_oom(exc):
                    raise
                free_device_memory()
                if self._shrink(x.shape[-2], x.shape[-1], exc):
                    continue  # retry this chunk with a smaller batch or tile
                raise
            start += count
        return batch.from_tensor(outputs[0] if len(outputs) == 1 else torch.cat(outputs))

    def _infer(self, x: Any) -> Any:
        model = self.model
        assert model is not None
        h, w = x.shape[-2:]
        padded = pre_pad(x, self.pre_pad)
        y = run_tiled(model, padded, model.scale, self.tile, self.tile_pad)
        return y[..., : h * model.scale, : w * model.scale]

    def _shrink(self, height: int, width: int, exc: BaseException) -> bool:
        """After OOM: halve the batch, then the tile. False when neither can shrink."""
        if self.batch > 1:
            self.batch = max(1, self.batch // 2)
            _warn(f"out of memory: retrying with --batch {self.batch}")
            return True
        tile = next_tile(self.tile, height, width)
        if tile is None:
            return False
        self.tile = tile
        _warn(f"out of memory: retrying with --tile {tile}")
        return True

    # -- files -------------------------------------------------------------------------------
    def processor(self) -> Any:
        """A pipeline ``FrameProcessor`` that runs this upscaler."""
        from vt_upscale.processors import UpscaleProcessor

        return UpscaleProcessor(self)

    def upscale_video(self, input: Any, output: Any = None, **options: Any) -> Any:
        """Upscale a whole file through the core pipeline; see :func:`upscale_video`."""
        return _transcode(self, input, output, **options)

    def close(self) -> None:
        self._close_pool()
        self._release()

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _release(self) -> None:
        from vt.models import is_memoised

        if self.model is not None:
            self.model.restore_threads()
        # a memoised model stays loaded for the process's next job (vt.models memo)
        if self.model is not None and self._owns_model and not is_memoised(self.model):
            self.model.close()
        self.model = None

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _transcode(
    upscaler: Upscaler,
    input: Any,
    output: Any = None,
    *,
    config: Any = None,
    options: Any = None,
    **encoder: Any,
) -> Any:
    from vt.media.encode import EncoderConfig
    from vt.media.pipeline import PipelineOptions, process_video

    if config is None:
        config = EncoderConfig(**encoder)
    elif encoder:
        raise UsageError("pass encoder settings either as config= or as keywords, not both")
    output = Path(output) if output is not None else default_output(Path(input), "upscaled")
    config, options = upscaler.job_settings(config, options or PipelineOptions())
    return process_video(input, output, [upscaler.processor()], config=config, options=options)


def upscale_video(
    input: Any,
    output: Any = None,
    *,
    scale: float | None = None,
    ai: bool | None = None,
    model: Any = None,
    method: str = "lanczos",
    config: Any = None,
    options: Any = None,
    **settings: Any,
) -> Any:
    """Upscale ``input`` into ``output`` (default ``IN_upscaled.EXT``); returns the report.

    ``settings`` go to :class:`Upscaler` (tile, device, dtype, batch, backend, strict…) or,
    when not upscaler settings, to the core's ``EncoderConfig`` (codec, crf, preset…).
    """
    import inspect

    known = set(inspect.signature(Upscaler.__init__).parameters) - {"self"}
    upscaler_kw = {k: v for k, v in settings.items() if k in known}
    encoder_kw = {k: v for k, v in settings.items() if k not in known}
    if options is not None and options.single_thread:
        upscaler_kw.setdefault("cores", 1)
    with Upscaler(model, ai=ai, scale=scale, method=method, **upscaler_kw) as upscaler:
        return _transcode(upscaler, input, output, config=config, options=options, **encoder_kw)
