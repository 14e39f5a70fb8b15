"""Stage 2, reconstruct: compression clean-up that keeps the line art.

Two passes at the input resolution, both adaptive, so a clean frame comes out almost as it
went in:

- **Deblocking.** Codec blocks leave small steps on the 8x8 grid. The frame's blockiness
  (mean luma step across block boundaries minus the mean step elsewhere) sets a threshold;
  boundary steps below it, with flat pixels on both sides, are spread into a 4-pixel ramp
  (the H.264 loop filter's weak mode). Steps above it are real edges and are left alone.
- **Denoise and deringing.** A self-guided filter (He et al.) on luma, with ``eps`` from the
  frame's noise level (Immerkær's estimator on the flat pixels), flattens mosquito noise and
  grain while edges above the noise survive. Thin dark lines, found as the black-hat of the
  luma, are masked out so the filter never greys them.

A frame with less than a quarter grey level of excess blockiness, or half a grey level of
noise, is left as it is (and costs only the measurement). Changes are made on luma and added
to R, G and B alike (chroma is untouched, except by the
deblocking, which smooths all three channels where luma says a boundary is a block edge).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vt.errors import UsageError
from vt_kizuna.working import FloatStage, add_luma, luma, to_float

BLOCK = 8
#: below these (grey levels of 255) a frame has no visible blocking / noise: left as it is
MIN_BLOCKINESS = 0.25 / 255
MIN_NOISE = 0.5 / 255
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(y: np.ndarray) -> float:
    """Standard deviation of white noise in luma (Immerkær 1996), edges excluded."""
    response = np.abs(cv2.filter2D(y, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    gradient = cv2.magnitude(
        cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    )
    # the flatter 60 % (threshold from every 4th pixel each way): texture and edges out
    flat = gradient < np.percentile(gradient[::4, ::4], 60)
    if not flat.any():
        return 0.0
    return float(math.sqrt(math.pi / 2) / 6 * response[flat].mean())


def blockiness(y: np.ndarray, block: int = BLOCK) -> float:
    """Mean |step| across block boundaries minus the mean |step| inside blocks (both axes)."""
    excess = []
    for axis in (1, 0):
        steps = np.abs(np.diff(y, axis=axis))
        positions = np.arange(steps.shape[axis]) % block == block - 1
        if not positions.any() or positions.all():
            continue
        across = steps.compress(positions, axis=axis).mean()
        inside = steps.compress(~positions, axis=axis).mean()
        excess.append(across - inside)
    return float(max(np.mean(excess), 0.0)) if excess else 0.0


def _deblock_axis(
    x: np.ndarray, y: np.ndarray, axis: int, alpha: float, beta: float, block: int
) -> None:
    """Weak H.264-style filter across the block boundaries of one axis, in place."""
    n = x.shape[axis]
    last = (n - 2) // block * block  # boundaries b with b - 2 >= 0 and b + 1 < n
    if last < block:
        return

    def take(a: np.ndarray, offset: int) -> np.ndarray:
        sl = slice(block + offset, last + 1 + offset, block)
        return a[:, sl] if axis == 1 else a[sl]

    lp1, lp0, lq0, lq1 = (take(y, o) for o in (-2, -1, 0, 1))
    step = lq0 - lp0
    mask = (np.abs(step) < alpha) & (np.abs(lp1 - lp0) < beta) & (np.abs(lq1 - lq0) < beta)
    if not mask.any():
        return
    m = mask[..., None].astype(np.float32)
    p1, p0, q0, q1 = (take(x, o) for o in (-2, -1, 0, 1))
    d = (q0 - p0) * m
    # the step becomes a ramp over p1 p0 q0 q1 (1/8, 3/8, 5/8, 7/8 of the way)
    p1 += d * 0.125
    p0 += d * 0.375
    q0 -= d * 0.375
    q1 -= d * 0.125
    dl = step * mask
    take(y, -2)[...] += dl * 0.125
    take(y, -1)[...] += dl * 0.375
    take(y, 0)[...] -= dl * 0.375
    take(y, 1)[...] -= dl * 0.125


class Reconstruct(FloatStage):
    """Deblocking plus line-aware edge-preserving denoise (see the module docstring).

    ``strength`` (0-1) scales both; ``deblock``/``denoise`` turn either off.
    """

    name = "kizuna-reconstruct"
    align = BLOCK  # strips start on the codec's block grid

    def __init__(
        self,
        strength: float = 1.0,
        deblock: bool = True,
        denoise: bool = True,
        radius: int = 2,
        threads: int | None = None,
    ) -> None:
        super().__init__(threads)
        if not 0.0 <= strength <= 1.0:
            raise UsageError(f"reconstruct strength must be between 0 and 1, got {strength}")
        if radius < 1:
            raise UsageError(f"reconstruct radius must be at least 1, got {radius}")
        self.strength = strength
        self.deblock = deblock
        self.denoise = denoise
        self.radius = radius
        # rows each side a strip needs: the deblock ramp (2) + guided filter (2 radius) and
        # black-hat (4), rounded up to the block grid
        self.halo = -(-(2 * radius + 6) // BLOCK) * BLOCK
        #: what the last frame measured (for reports and tests)
        self.last: dict[str, float] = {}

    def measure(self, image: np.ndarray) -> dict[str, float]:
        """Blockiness and noise level of the whole frame (they set the filters' thresholds)."""
        y = luma(to_float(image, self.scratch.get("measure", image.shape)))
        return self._measure_luma(y)

    def _measure_luma(self, y: np.ndarray) -> dict[str, float]:
        found = {
            "blockiness": blockiness(y) if self.deblock else 0.0,
            "noise_sigma": noise_sigma(y) if self.denoise else 0.0,
        }
        self.last = found
        return found

    def apply(self, x: np.ndarray, context: dict[str, float] | None = None) -> np.ndarray:
        if self.strength == 0:
            return x
        h, w = x.shape[:2]
        y = luma(x, self.scratch.get("y", (h, w)))
        if context is None:
            context = self._measure_luma(y)
        excess = context["blockiness"]
        alpha = 10.0 * excess * self.strength
        if self.deblock and excess > MIN_BLOCKINESS:
            for axis in (1, 0):  # vertical boundaries first, as H.264 does
                _deblock_axis(x, y, axis, alpha, alpha * 0.5, BLOCK)
        sigma = context["noise_sigma"]
        if self.denoise and sigma > MIN_NOISE:
            eps = (2.5 * sigma) ** 2
            smooth = cv2.ximgproc.guidedFilter(y, y, self.radius, eps)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
            lines = cv2.morphologyEx(y, cv2.MORPH_BLACKHAT, kernel, borderType=cv2.BORDER_REFLECT)
            # keep = 1 on thin dark lines (black-hat well above the noise), 0 elsewhere
            keep = np.clip((lines - 3 * sigma) / (3 * sigma), 0.0, 1.0)
            delta = cv2.subtract(smooth, y)
            delta *= (1.0 - keep) * self.strength
            add_luma(x, delta, x, self.scratch.get("rgb", x.shape))
        return x
