"""ControlNet conditioning images computed from each frame.

``canny`` (OpenCV, always available) is the default. ``depth`` runs a transformers depth model
(``--control-model``, default Depth Anything small) resolved like every model in vt (a folder,
or a Hugging Face id from the cache); ``lineart`` needs the ``controlnet_aux`` detectors
(``pip install 'vt-stylize[lineart]'``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from vt.errors import ModelUnavailableError, UsageError

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DEFAULT_LINEART_MODEL = "lllyasviel/Annotators"

#: (N, H, W, 3) uint8 frames -> (N, H, W, 3) uint8 conditioning images of the same size
Detector = Callable[[np.ndarray], np.ndarray]


class Canny:
    """Canny edges (white on black), the conditioning canny ControlNets were trained on."""

    name = "canny"

    def __init__(self, low: int = 100, high: int = 200) -> None:
        self.low, self.high = low, high

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import cv2

        out = np.empty_like(images)
        for i, image in enumerate(images):
            edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), self.low, self.high)
            out[i] = edges[..., None]
        return out


class Depth:
    """Relative depth, near = bright, from a transformers depth-estimation model."""

    name = "depth"

    def __init__(self, model: str | None = None, device: str = "cpu") -> None:
        from vt.models import resolve_model

        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError:  # pragma: no cover - transformers is a dependency
            raise ModelUnavailableError("--control depth needs transformers") from None
        ref = resolve_model(model or DEFAULT_DEPTH_MODEL)
        try:
            self.processor = AutoImageProcessor.from_pretrained(str(ref.path))
            self.model = AutoModelForDepthEstimation.from_pretrained(
                str(ref.path), use_safetensors=any(ref.path.glob("*.safetensors")) or None
            )
        except Exception as exc:  # noqa: BLE001 - one line for any loading failure
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelUnavailableError(
                f"cannot load the depth model {ref.name}: {first[:200]}"
            ) from None
        self.model.to(device).eval()
        self.device = device

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        n, h, w, _ = images.shape
        inputs = self.processor(images=list(images), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            depth = self.model(**inputs).predicted_depth  # (N, h', w')
            depth = torch.nn.functional.interpolate(
                depth[:, None].float(), size=(h, w), mode="bicubic", align_corners=False
            )[:, 0]
        flat = depth.reshape(n, -1)
        low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
        scaled = ((depth - low) / (high - low).clamp_min(1e-6) * 255).round().clamp(0, 255)
        gray = scaled.to(torch.uint8).cpu().numpy()
        return np.repeat(gray[..., None], 3, axis=-1)


class Lineart:
    """Line drawings from controlnet_aux's lineart detector."""

    name = "lineart"

    def __init__(self, model: str | None = None, device: str = "cpu") -> None:
        if importlib.util.find_spec("controlnet_aux") is None:
            raise ModelUnavailableError(
                "--control lineart needs the controlnet_aux detectors "
                "(pip install 'vt-stylize[lineart]')"
            )
        from controlnet_aux import LineartDetector

        from vt.models import resolve_model

        ref = resolve_model(model or DEFAULT_LINEART_MODEL)
        try:
            self.detector = LineartDetector.from_pretrained(str(ref.path)).to(device)
        except Exception as exc:  # noqa: BLE001
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelUnavailableError(
                f"cannot load the lineart detector: {first[:200]}"
            ) from None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import cv2

        h, w = images.shape[1:3]
        out = np.empty_like(images)
        for i, image in enumerate(images):
            lines: Any = self.detector(
                image, detect_resolution=max(h, w), image_resolution=max(h, w), output_type="np"
            )
            lines = np.asarray(lines)
            if lines.shape[:2] != (h, w):
                lines = cv2.resize(lines, (w, h), interpolation=cv2.INTER_AREA)
            out[i] = lines if lines.ndim == 3 else lines[..., None]
        return out


def make_detector(kind: str, model: str | None = None, device: str = "cpu") -> Detector:
    """The conditioning detector called ``kind``."""
    if kind == "canny":
        if model:
            raise UsageError("--control-model is for depth and lineart (canny needs no model)")
        return Canny()
    if kind == "depth":
        return Depth(model, device)
    if kind == "lineart":
        return Lineart(model, device)
    raise UsageError(f"unknown --control {kind!r} (use canny, depth or lineart)")


def to_tensor(images: np.ndarray, device: Any, dtype: Any) -> Any:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [0, 1], what the pipelines' control inputs take."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).to(dtype).div_(255)
