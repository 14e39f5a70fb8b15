"""A synthetic line-art clip: flat colours, dark anti-aliased outlines, moving shapes.

What anime frames are made of, rendered exactly (4x supersampled, then area-averaged), so
upscalers can be scored against the full-size frames after a downscale (tests, benchmarks).
Deterministic for a given seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_PALETTE = (
    (250, 230, 200),
    (120, 180, 240),
    (240, 120, 130),
    (140, 220, 150),
    (250, 210, 90),
    (200, 160, 230),
    (90, 90, 160),
)
_INK = (30, 25, 35)


def render_line_art(
    frames: int = 12,
    width: int = 384,
    height: int = 256,
    seed: int = 0,
    supersample: int = 4,
    shapes: int = 7,
) -> np.ndarray:
    """``(frames, height, width, 3)`` uint8 RGB: sky, ground and a horizon line, and circles,
    pentagons and ellipses with 1-3 px outlines drifting and turning."""
    rng = np.random.default_rng(seed)
    ss = supersample
    items = []
    for k in range(shapes):
        items.append(
            {
                "kind": k % 3,
                "x": rng.uniform(0.15, 0.85) * width,
                "y": rng.uniform(0.2, 0.8) * height,
                "r": rng.uniform(0.08, 0.2) * height,
                "vx": rng.uniform(-2, 2),
                "vy": rng.uniform(-1.5, 1.5),
                "colour": _PALETTE[k % len(_PALETTE)],
                "angle": rng.uniform(0, math.pi),
                "spin": rng.uniform(-0.05, 0.05),
                "line": rng.uniform(1.2, 3.0),
            }
        )
    out = np.empty((frames, height, width, 3), np.uint8)
    horizon = int(0.7 * height * ss)
    for t in range(frames):
        canvas = np.empty((height * ss, width * ss, 3), np.uint8)
        canvas[:] = (235, 240, 250)
        cv2.rectangle(canvas, (0, horizon), (width * ss, height * ss), (190, 215, 170), -1)
        cv2.line(canvas, (0, horizon), (width * ss, horizon), (40, 40, 50), 2 * ss, cv2.LINE_AA)
        for s in items:
            cx, cy = (s["x"] + s["vx"] * t) * ss, (s["y"] + s["vy"] * t) * ss
            r, a = s["r"] * ss, s["angle"] + s["spin"] * t
            lw = max(1, round(s["line"] * ss))
            centre = (int(cx), int(cy))
            if s["kind"] == 0:
                cv2.circle(canvas, centre, int(r), s["colour"], -1, cv2.LINE_AA)
                cv2.circle(canvas, centre, int(r), _INK, lw, cv2.LINE_AA)
            elif s["kind"] == 1:
                pts = np.array(
                    [
                        [
                            cx + r * math.cos(a + i * 2 * math.pi / 5),
                            cy + r * math.sin(a + i * 2 * math.pi / 5),
                        ]
                        for i in range(5)
                    ],
                    np.int32,
                )
                cv2.fillPoly(canvas, [pts], s["colour"], cv2.LINE_AA)
                cv2.polylines(canvas, [pts], True, _INK, lw, cv2.LINE_AA)
            else:
                axes = (int(r * 1.4), int(r * 0.7))
                cv2.ellipse(
                    canvas, centre, axes, math.degrees(a), 0, 360, s["colour"], -1, cv2.LINE_AA
                )
                cv2.ellipse(canvas, centre, axes, math.degrees(a), 0, 360, _INK, lw, cv2.LINE_AA)
                cv2.line(
                    canvas,
                    (int(cx - r * 0.5), int(cy)),
                    (int(cx + r * 0.5), int(cy + r * 0.3)),
                    _INK,
                    max(1, lw // 2),
                    cv2.LINE_AA,
                )
        out[t] = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return out


def downscale_x2(images: np.ndarray) -> np.ndarray:
    """Halve ``(N, H, W, 3)`` frames with antialiased bicubic (PIL's, torch's
    ``antialias=True``): Keys a=-0.5 stretched x2, 8 taps, centre-aligned. uint8 frames come
    back rounded to uint8, float frames as float32."""
    x = np.arange(-4, 4) + 0.5  # tap offsets from an output centre, in input pixels
    t = np.abs(x / 2)
    a = -0.5
    w = np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )
    w = (w / w.sum()).astype(np.float32)
    out = []
    for image in images:
        f = cv2.sepFilter2D(
            image.astype(np.float32), -1, w, w, anchor=(3, 3), borderType=cv2.BORDER_REFLECT
        )
        out.append(f[::2, ::2])
    if np.issubdtype(images.dtype, np.floating):
        return np.stack(out)
    return np.clip(np.stack(out) + 0.5, 0, 255).astype(np.uint8)
