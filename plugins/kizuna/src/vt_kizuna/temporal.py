"""Stage 5, temporal (optional): removes the flicker the per-frame stages add.

Each stage works on one frame, so the detail it adds (sharpened texture, cleaned noise,
interpolated edges) can differ a little from frame to frame even where the source does not
move: that reads as flicker. This stage blends, per pixel, the *difference* between the
processed frame and its source (upscaled with bicubic) with the same difference in the
neighbouring frames, motion-compensated:

    D_k = P_k - up(S_k)
    out_t = P_t + strength * sum_n w_n (warp_n(D_n) - D_t) / (1 + sum_n w_n)

over the neighbours ``n`` within ``radius`` frames. The source's own content (its motion,
its real changes) is never blended, only what processing added. Flow comes from the source
frames (``vt.metrics.flow``, DIS), so processing artefacts cannot steer it; neighbours'
pixels are skipped where the flow is not trusted (``vt.metrics.occlusion_mask``: forward-
backward mismatch, motion boundaries, leaving the frame), where the motion is large, or
where the warped source does not match; a scene cut (the source changes wholesale) resets
the window, so nothing is blended across it.

The window is finite and not recursive: frame ``t`` depends on frames ``t-radius`` to
``t+radius`` only (``context_frames``). The stage holds ``radius`` frames back, returns
them later or from ``flush()``, every frame exactly once with its PTS; a segmented run that
feeds ``radius`` frames of context on each side gets the frames of one pass, bit for bit.

The source frames reach this stage through a :class:`SourceTap` placed first in the chain
(``TemporalStabilizer.tap()``). Used on its own, without a tap, the stage stabilizes the
detail layer of its input instead (the frame minus its x2 low-pass), flow from the input.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction

import cv2
import numpy as np

from vt.errors import UsageError
from vt.media.frames import LAYOUT_DTYPES, FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt.metrics import flow as optical_flow
from vt.metrics import occlusion_mask, warp
from vt_kizuna.working import from_float, timed, to_float

log = logging.getLogger("vt")


class SourceTap(FrameProcessor):
    """Identity processor at the head of a chain: lends each source frame, by index, to the
    temporal stage at the end of the same chain (which takes it back: memory stays bounded
    by the frames in flight)."""

    name = "kizuna-source"
    layouts = ("rgb24", "rgb48")

    def __init__(self) -> None:
        self.frames: dict[int, np.ndarray] = {}
        self._ended = False

    def process(self, batch: FrameBatch) -> FrameBatch:
        if self._ended:  # a new stream: what a failed one left behind is stale
            self.frames.clear()
            self._ended = False
        for index, image in zip(batch.indices, batch.images):
            self.frames[index] = image
        return batch

    def flush(self) -> list[FrameBatch]:
        # frames still in later stages need their sources until the chain's flush is over
        self._ended = True
        return []

    def pop(self, index: int) -> np.ndarray | None:
        return self.frames.pop(index, None)

    def close(self) -> None:
        self.frames.clear()


@dataclass
class _Frame:
    index: int
    pts: int | None
    image: np.ndarray  # processed, uint8/uint16 at the output size
    source: np.ndarray | None  # uint8/uint16 at the source size (None: no tap)
    gray: np.ndarray = field(default=None)  # type: ignore[assignment]  # uint8, flow size
    cut_before: bool = False  # a scene cut between the previous frame and this one
    emitted: bool = False
    detail: np.ndarray | None = None  # D = P - up(S), float32, output size (lazy)


class TemporalStabilizer(FrameProcessor):
    """Motion-compensated blending of the processing-added detail (module docstring).

    ``strength`` 0-1 (0 passes frames through); ``radius`` neighbours each side;
    ``scene_threshold`` mean absolute grey change (0-1) that marks a cut; ``max_motion``
    flow length, as a fraction of the frame width, beyond which pixels are not blended;
    ``match_threshold`` grey error (0-1) of the warped source beyond which they are not
    either; ``flow_width`` the width flow is computed at (smaller: faster).
    """

    name = "kizuna-temporal"
    layouts = ("rgb24", "rgb48")
    temporal = True
    seconds: float = 0.0

    def __init__(
        self,
        strength: float = 0.5,
        radius: int = 1,
        scene_threshold: float = 0.12,
        max_motion: float = 0.08,
        match_threshold: float = 0.06,
        flow_width: int = 640,
        tap: SourceTap | None = None,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise UsageError(f"temporal strength must be between 0 and 1, got {strength}")
        if radius < 1 or radius > 4:
            raise UsageError(f"temporal radius must be between 1 and 4, got {radius}")
        if not 0 < scene_threshold <= 1 or not 0 < max_motion <= 1 or not 0 < match_threshold <= 1:
            raise UsageError("scene_threshold, max_motion and match_threshold must be in (0, 1]")
        if flow_width < 16:
            raise UsageError(f"flow_width must be at least 16, got {flow_width}")
        self.strength = strength
        self.radius = radius
        self.scene_threshold = scene_threshold
        self.max_motion = max_motion
        self.match_threshold = match_threshold
        self.flow_width = flow_width
        self.source_tap = tap
        #: frames of context needed before and after a frame for its exact output
        self.context_frames = (radius, radius)
        self.temporal_context = self.context_frames  # segmented runs feed this much context
        self.batch_size = 1
        self._window: deque[_Frame] = deque()
        self._flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._fmt: FrameFormat | None = None
        self._time_base = Fraction(1, 1)
        self._layout = "rgb24"
        #: frames blended / frames that fell back to their unblended self (errors)
        self.stats = {"frames": 0, "cuts": 0, "fallbacks": 0}

    def tap(self) -> SourceTap:
        """The processor to put first in the chain so this stage sees the source frames."""
        if self.source_tap is None:
            self.source_tap = SourceTap()
        return self.source_tap

    # -- FrameProcessor ------------------------------------------------------------------------
    def configure(self, fmt: FrameFormat) -> FrameFormat:
        if fmt.layout not in self.layouts:
            raise UsageError(f"{self.name} takes rgb24 or rgb48 frames, not {fmt.layout}")
        self._fmt = fmt
        return fmt

    @timed
    def process(self, batch: FrameBatch) -> FrameBatch | None:
        self._time_base, self._layout = batch.time_base, batch.layout
        for index, pts, image in zip(batch.indices, batch.pts, batch.images):
            source = self.source_tap.pop(index) if self.source_tap is not None else None
            self._add(_Frame(index, pts, image, source))
        return self._emit(final=False)

    @timed
    def flush(self) -> list[FrameBatch]:
        out = self._emit(final=True)
        self._window.clear()
        self._flows.clear()
        return [out] if out is not None else []

    def close(self) -> None:
        self._window.clear()
        self._flows.clear()
        if self.source_tap is not None:
            self.source_tap.close()

    # -- window ----------------------------------------------------------------------------
    def _add(self, frame: _Frame) -> None:
        reference = frame.source if frame.source is not None else frame.image
        frame.gray = self._gray(reference)
        if self._window:
            prev = self._window[-1].gray
            if prev.shape != frame.gray.shape:
                frame.cut_before = True
            else:
                change = float(np.mean(cv2.absdiff(prev, frame.gray))) / 255.0
                frame.cut_before = change > self.scene_threshold
            self.stats["cuts"] += int(frame.cut_before)
        self._window.append(frame)

    def _gray(self, image: np.ndarray) -> np.ndarray:
        """8-bit grey at the flow width (area filter when shrinking)."""
        h, w = image.shape[:2]
        gray = cv2.cvtColor(to_float(image), cv2.COLOR_RGB2GRAY)
        if w > self.flow_width:
            size = (self.flow_width, max(1, round(h * self.flow_width / w)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return np.clip(gray * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def _emit(self, final: bool) -> FrameBatch | None:
        ready: list[_Frame] = []
        images: list[np.ndarray] = []
        window = list(self._window)
        for pos, frame in enumerate(window):
            if frame.emitted:
                continue
            if not final and len(window) - 1 - pos < self.radius:
                break  # its later neighbours have not arrived yet
            images.append(self._stabilized(window, pos))
            frame.emitted = True
            ready.append(frame)
        # keep the emitted frames later frames still need as context, drop the rest
        while (
            self._window
            and self._window[0].emitted
            and (sum(1 for f in self._window if f.emitted) > self.radius)
        ):
            gone = self._window.popleft()
            self._flows = {k: v for k, v in self._flows.items() if gone.index not in k}
        if not ready:
            return None
        return FrameBatch(
            np.stack(images),
            [f.pts for f in ready],
            self._time_base,
            [f.index for f in ready],
            self._layout,
        )

    def _neighbours(self, window: list[_Frame], pos: int) -> list[int]:
        """Positions within ``radius`` of ``pos`` with no scene cut in between."""
        found = []
        for step in (-1, 1):
            p = pos
            for _ in range(self.radius):
                q = p + step
                if q < 0 or q >= len(window):
                    break
                if (window[q] if step > 0 else window[p]).cut_before:
                    break
                found.append(q)
                p = q
        return sorted(found)

    # -- the blend ---------------------------------------------------------------------------
    def _stabilized(self, window: list[_Frame], pos: int) -> np.ndarray:
        frame = window[pos]
        neighbours = self._neighbours(window, pos)
        self.stats["frames"] += 1
        if self.strength == 0 or not neighbours:
            return frame.image
        try:
            return self._blend(window, pos, neighbours)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - never lose a frame: stabilizing is optional
            self.stats["fallbacks"] += 1
            log.warning(
                "temporal stage skipped frame %d (%s: %s)", frame.index, type(exc).__name__, exc
            )
            return frame.image

    def _detail(self, frame: _Frame) -> np.ndarray:
        if frame.detail is None:
            processed = to_float(frame.image)
            h, w = processed.shape[:2]
            if frame.source is not None:
                base = cv2.resize(to_float(frame.source), (w, h), interpolation=cv2.INTER_CUBIC)
            else:  # no tap: the frame's own x2 low-pass stands in for the source
                half = cv2.resize(
                    processed, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA
                )
                base = cv2.resize(half, (w, h), interpolation=cv2.INTER_CUBIC)
            frame.detail = cv2.subtract(processed, base)
        return frame.detail

    def _flow(self, a: _Frame, b: _Frame) -> np.ndarray:
        """Flow from ``a`` to ``b`` at the flow size: a(x) ≈ b(x + flow(x)) (cached)."""
        key = (a.index, b.index)
        if key not in self._flows:
            self._flows[key] = optical_flow(a.gray, b.gray)
        return self._flows[key]

    def _weight(self, frame: _Frame, other: _Frame) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow t->n, blend weight) at the flow size, or None when nothing can be used."""
        fwd = self._flow(frame, other)
        bwd = self._flow(other, frame)
        bad = occlusion_mask(fwd, bwd)
        width = frame.gray.shape[1]
        bad |= cv2.magnitude(fwd[..., 0], fwd[..., 1]) > self.max_motion * width
        matched = warp(other.gray, fwd).astype(np.float32)
        mismatch = np.abs(matched - frame.gray.astype(np.float32)) > self.match_threshold * 255
        bad |= mismatch
        weight = (~bad).astype(np.float32)
        if weight.mean() < 0.05:
            return None
        # soft edges between blended and skipped areas (no seams)
        weight = cv2.GaussianBlur(weight, (0, 0), 1.0)
        return fwd, weight

    def _blend(self, window: list[_Frame], pos: int, neighbours: list[int]) -> np.ndarray:
        frame = window[pos]
        d_t = self._detail(frame)
        h, w = d_t.shape[:2]
        acc = np.zeros_like(d_t)
        total = np.ones((h, w), np.float32)
        grid_x = grid_y = None
        for q in neighbours:
            other = window[q]
            found = self._weight(frame, other)
            if found is None:
                continue
            fwd, weight = found
            fh, fw = fwd.shape[:2]
            if grid_x is None:
                grid_x, grid_y = np.meshgrid(
                    np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
                )
            # flow and weight to the output size (flow vectors scaled with it)
            up = cv2.resize(fwd, (w, h), interpolation=cv2.INTER_LINEAR)
            map_x = up[..., 0] * np.float32(w / fw)
            map_x += grid_x
            map_y = up[..., 1] * np.float32(h / fh)
            map_y += grid_y
            moved = cv2.remap(
                self._detail(other), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            weight_up = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.subtract(moved, d_t, dst=moved)
            acc += moved * weight_up[..., None]
            total += weight_up
        out = to_float(frame.image)
        cv2.divide(acc, cv2.merge((total, total, total)), dst=acc)
        cv2.scaleAdd(acc, self.strength, out, dst=out)
        result = np.empty(frame.image.shape, LAYOUT_DTYPES[self._layout])
        return from_float(out, result)
