"""Stage 3, upscale: the shader path (this plugin's edge-directed upscaler) or an AI model.

AI mode owns no model code: the weights are resolved and loaded through the core's model
registry (``vt.models.load_model``, whichever plugin registered the adapter for the format
and the named model), and run by the ``sr-model`` processor another plugin (vt-upscale)
registers, which brings batching, tiling and the resample to the asked scale. This module
never imports that plugin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vt.errors import ModelUnavailableError, UsageError, VtError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt_kizuna.shader import SCALES, EdgeDirectedUpscaler
from vt_kizuna.working import FloatStage, timed

#: the packaged model AI mode runs when none is named (registered by vt-upscale)
DEFAULT_MODEL = "realesr-animevideov3-x{scale}"
AI_PLUGIN_HINT = "pip install vt-upscale"


def check_scale(scale: Any, what: str = "scale") -> int:
    if isinstance(scale, float) and scale.is_integer():
        scale = int(scale)
    if scale not in SCALES:
        raise UsageError(f"{what} must be 2 or 4, got {scale}")
    return int(scale)


class ShaderUpscale(FloatStage):
    """The edge-directed shader upscaler as a frame processor (x2 or x4)."""

    name = "kizuna-upscale"

    def __init__(
        self,
        scale: int = 2,
        sharpness: float = 1.0,
        edge: float = 1.0,
        anti_ringing: float = 1.0,
        threads: int | None = None,
    ) -> None:
        super().__init__(threads)
        self.scale = check_scale(scale)
        self.upscaler = EdgeDirectedUpscaler(
            self.scale, sharpness=sharpness, edge=edge, anti_ringing=anti_ringing
        )
        self.halo = self.upscaler.reach

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return self.upscaler.output_size(width, height)

    def apply(self, x: np.ndarray, context: Any = None) -> np.ndarray:
        return self.upscaler.upscale(x)

    def describe(self) -> str:
        return f"shader x{self.scale}"

    def close(self) -> None:
        super().close()
        self.upscaler.close()


class AIUpscale(FrameProcessor):
    """A registered model through the ``sr-model`` processor (tiling, batching, resample)."""

    name = "kizuna-upscale"
    layouts = ("rgb24", "rgb48")
    devices = ("cpu", "cuda")
    seconds: float = 0.0

    def __init__(
        self,
        model: str | None = None,
        scale: int = 2,
        tile: int = 0,
        device: str = "auto",
        dtype: str = "fp32",
        batch: int = 1,
        threads: int = 0,
    ) -> None:
        from vt.models import load_model
        from vt.plugins import get_host

        self._closed = False
        self.scale = check_scale(scale, "AI scale")
        if tile < 0 or batch < 1:
            raise UsageError("tile must be >= 0 (0: whole frame) and batch >= 1")
        host = get_host()
        if "sr-model" not in host.processors:
            raise ModelUnavailableError(
                f"AI mode needs a super-resolution runner and model adapters, which no "
                f"installed plugin provides ({AI_PLUGIN_HINT})"
            )
        self.model_name = model or DEFAULT_MODEL.format(scale=self.scale)
        try:
            self.model = load_model(self.model_name, device=device, dtype=dtype, threads=threads)
        except VtError:
            raise
        except Exception as exc:  # an adapter's own exception: a broken or foreign file
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelUnavailableError(
                f"cannot load model {self.model_name}: {type(exc).__name__}: {first}"
            ) from exc
        try:
            factory = host.processors.get("sr-model").factory
            self.runner = factory(
                model=self.model, scale=self.scale, tile=tile, batch=batch, strict=True
            )
        except BaseException:
            self._close_model()
            raise
        self.batch_size = int(getattr(self.runner, "batch_size", batch) or batch)
        # kept: the runner forgets its model once closed, reports are written after that
        self._description = f"AI {self.runner.describe()}"

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        return self.runner.configure(fmt)

    @timed
    def process(self, batch: FrameBatch) -> FrameBatch:
        return self.runner.process(batch)

    def describe(self) -> str:
        return self._description

    def _close_model(self) -> None:
        try:  # a core with a per-process model memo shares loaded models: never close those
            from vt.models import is_memoised  # type: ignore[attr-defined]
        except ImportError:
            is_memoised = None
        if is_memoised is not None and is_memoised(self.model):
            return
        close = getattr(self.model, "close", None)
        if close is not None:
            close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.runner.close()
        finally:
            self._close_model()


def upscale_stage(
    mode: str = "shader", scale: int = 2, model: str | None = None, tile: int = 0, **options: Any
) -> FrameProcessor:
    """The ``kizuna-upscale`` factory: ``mode="shader"`` (default) or ``"ai"``."""
    if mode == "shader":
        if model is not None or tile:
            raise UsageError("model and tile are options of AI mode (mode='ai')")
        return ShaderUpscale(scale, **options)
    if mode == "ai":
        return AIUpscale(model, scale, tile, **options)
    raise UsageError(f"upscale mode must be 'shader' or 'ai', got {mode!r}")
