"""Stage 4, enhance: what makes upscaled line art look crisp, without halos.

All on luma, at the output resolution, the change added to R, G and B alike:

1. **Gentle contrast**: a smoothstep S-curve blended in at ``contrast`` (0.1: +/- 1.5 % of
   full scale at most), a fixed tone curve, so it never flickers.
2. **Adaptive sharpening** (in the manner of AMD's CAS): the detail (luma minus a Gaussian
   blur) is added back with a gain that falls where the 3x3 neighbourhood is already near
   black or white, then clamped to that neighbourhood's range: edges get steeper, but no
   pixel overshoots its neighbours, so no halo can appear.
3. **Line darkening** (Anime4K's DarkenLines): pixels on the dark side of a line or edge
   (below their blur) are pushed further down, in proportion to the local contrast.
4. **Line thinning** (Anime4K's ThinLines): pixels on the soft rim next to a dark line or
   edge are pulled up towards the neighbourhood's bright value, so the line's core stays
   and its blurred border shrinks.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vt.errors import UsageError
from vt_kizuna.working import FloatStage, add_luma, luma

_KERNEL3 = np.ones((3, 3), np.uint8)


class Enhance(FloatStage):
    """Line darkening and thinning, adaptive sharpening, gentle contrast (module docstring).

    Every amount is in [0, 1]; 0 turns that effect off.
    """

    name = "kizuna-enhance"

    def __init__(
        self,
        sharpen: float = 0.6,
        darken: float = 0.4,
        thin: float = 0.3,
        contrast: float = 0.1,
        sigma: float = 1.0,
        threads: int | None = None,
    ) -> None:
        super().__init__(threads)
        for label, value in (
            ("sharpen", sharpen),
            ("darken", darken),
            ("thin", thin),
            ("contrast", contrast),
        ):
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"enhance {label} must be between 0 and 1, got {value}")
        if sigma <= 0:
            raise UsageError(f"enhance sigma must be positive, got {sigma}")
        self.sharpen, self.darken, self.thin, self.contrast = sharpen, darken, thin, contrast
        self.sigma = sigma
        # reach of the filters, rows each side: Gaussian (4 sigma) + the 3x3 dilate, + margin
        self.halo = int(np.ceil(4 * sigma)) + 3

    def apply(self, x: np.ndarray, context: Any = None) -> np.ndarray:
        h, w = x.shape[:2]
        buf = self._buffers(h, w)  # every temporary reused: no page faults at 4K
        y0 = luma(x, buf["y0"])
        y = buf["y"]
        np.copyto(y, y0)
        t1, t2, t3 = buf["t1"], buf["t2"], buf["t3"]
        if self.contrast > 0:
            # y + c * (smoothstep(y) - y), smoothstep = y²(3 - 2y), on y clipped to [0, 1]
            cv2.max(y, 0.0, dst=t1)
            cv2.min(t1, 1.0, dst=t1)
            cv2.multiply(t1, t1, dst=t2)
            cv2.addWeighted(t1, -2.0, t1, 0.0, 3.0, dst=t3)
            cv2.multiply(t2, t3, dst=t2)
            cv2.addWeighted(y, 1.0 - self.contrast, t2, self.contrast, 0.0, dst=y)
        lo = cv2.erode(y, _KERNEL3, dst=buf["lo"], borderType=cv2.BORDER_REFLECT)
        hi = cv2.dilate(y, _KERNEL3, dst=buf["hi"], borderType=cv2.BORDER_REFLECT)
        blur = cv2.GaussianBlur(
            y, (0, 0), self.sigma, dst=buf["blur"], borderType=cv2.BORDER_REFLECT
        )
        out = buf["out"]
        np.copyto(out, y)
        if self.sharpen > 0:
            # CAS-style headroom: sqrt(min(lo, 1 - hi) / hi), small near black or white
            cv2.subtract(1.0, hi, dst=t1)
            cv2.min(lo, t1, dst=t1)
            cv2.max(t1, 0.0, dst=t1)
            cv2.max(hi, 1e-4, dst=t2)
            cv2.divide(t1, t2, dst=t1)
            cv2.sqrt(t1, dst=t1)
            cv2.min(t1, 1.0, dst=t1)
            cv2.subtract(y, blur, dst=t2)  # detail
            cv2.multiply(t2, t1, dst=t2)
            cv2.scaleAdd(t2, 2.0 * self.sharpen, out, dst=out)
            cv2.min(out, hi, dst=out)
            cv2.max(out, lo, dst=out)
        if self.darken > 0 or self.thin > 0:
            spread = cv2.subtract(hi, lo, dst=buf["spread"])
            # the dark side of lines and edges: how far below the local blur
            below = cv2.subtract(blur, y, dst=buf["below"])
            cv2.max(below, 0.0, dst=below)
            if self.darken > 0:
                cv2.multiply(below, spread, dst=t1)
                cv2.scaleAdd(t1, -4.0 * self.darken, out, dst=out)
            if self.thin > 0:
                # pixels next to a dark line or edge, and among them the soft rim (half-way
                # between the neighbourhood's darkest and brightest): pulled up towards the
                # brightest, so the line keeps its core and loses its blurred border
                near = cv2.dilate(below, _KERNEL3, dst=t3, borderType=cv2.BORDER_REFLECT)
                cv2.multiply(near, 8.0, dst=near)
                cv2.min(near, 1.0, dst=near)
                cv2.subtract(y, lo, dst=t1)
                cv2.add(spread, 1e-4, dst=t2)
                cv2.divide(t1, t2, dst=t1)  # 0 on a line's core, 1 on the bright side
                cv2.subtract(1.0, t1, dst=t2)
                cv2.multiply(t1, t2, dst=t1, scale=4.0)  # the rim: peaks half-way
                cv2.multiply(t1, near, dst=t1)
                cv2.subtract(hi, y, dst=t2)
                cv2.multiply(t1, t2, dst=t1)
                cv2.scaleAdd(t1, self.thin, out, dst=out)
            cv2.min(out, hi, dst=out)  # never above the neighbourhood's brightest: no halo
        cv2.subtract(out, y0, dst=out)
        return add_luma(x, out, x, buf["rgb"])

    def _buffers(self, h: int, w: int) -> dict[str, np.ndarray]:
        names = ("y0", "y", "t1", "t2", "t3", "lo", "hi", "blur", "out", "spread", "below")
        buf = {n: self.scratch.get(n, (h, w)) for n in names}
        buf["rgb"] = self.scratch.get("rgb", (h, w, 3))
        return buf
