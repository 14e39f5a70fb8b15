"""The working space every KizunaSR stage computes in, and the frame plumbing they share.

Frames travel between stages as ``FrameBatch``es of 16-bit RGB (``rgb48``, what ``normalize``
emits) or 8-bit RGB; each stage reads them as float32 RGB in [0, 1], full range, with the
source's transfer curve (not linear light: the stages are tuned on gamma-encoded values, as
the encoder expects them back). Conversions go through OpenCV in one pass, with rounding
and saturation, into buffers a stage keeps between frames: at 3840x2160 a fresh 100 MB array
per step costs more in page faults than the arithmetic.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any, TypeVar

import cv2
import numpy as np

from vt.errors import VtError
from vt.media.frames import LAYOUT_DTYPES, FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor

#: BT.709 luma weights: the stages edit luma and add the change to R, G and B alike (the
#: weights sum to 1, so the luma moves by exactly that change and chroma is untouched)
LUMA = np.array([[0.2126, 0.7152, 0.0722]], dtype=np.float32)
_CV_DEPTH = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U}
F = TypeVar("F", bound=Callable[..., Any])


def timed(method: F) -> F:
    """Add the call's wall time to ``self.seconds`` (the per-stage times of the report)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    return wrapper  # type: ignore[return-value]


class Scratch:
    """Named buffers reused from frame to frame (a stage's working memory), one set per
    thread, so strips of a frame can be processed at the same time."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def _buffers(self) -> dict[str, Any]:
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        return buffers

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        buffers = self._buffers
        buf = buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != np.dtype(dtype):
            buf = buffers[name] = np.empty(shape, dtype)
        return buf

    def cached(self, name: str, key: Any, factory: Callable[[], Any]) -> Any:
        """A value built once per ``key`` (and thread), e.g. coordinate grids for a size."""
        store = self._buffers
        entry = store.get("cached:" + name)
        if entry is None or entry[0] != key:
            entry = store["cached:" + name] = (key, factory())  # type: ignore[assignment]
        return entry[1]

    def clear(self) -> None:
        self._local = threading.local()


def default_threads() -> int:
    """Strips processed at once: the CPUs this process may use, at most 4."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    return max(1, min(count, 4))


def to_float(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8/uint16 RGB as float32 in [0, 1] (one OpenCV pass, into ``out`` when given)."""
    scale = 1.0 / (65535.0 if image.dtype == np.uint16 else 255.0)
    if out is None:
        return cv2.addWeighted(image, scale, image, 0.0, 0.0, dtype=cv2.CV_32F)
    return cv2.addWeighted(image, scale, image, 0.0, 0.0, dst=out, dtype=cv2.CV_32F)


def from_float(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] into ``out`` (uint8/uint16): rounded to nearest, clipped."""
    peak = 65535.0 if out.dtype == np.uint16 else 255.0
    cv2.addWeighted(x, peak, x, 0.0, 0.0, dst=out, dtype=_CV_DEPTH[out.dtype])
    return out


def luma(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """BT.709 luma of float RGB, (H, W) float32."""
    y = cv2.transform(x, LUMA) if out is None else cv2.transform(x, LUMA, dst=out)
    return y.reshape(x.shape[:2])


def add_luma(
    x: np.ndarray, delta: np.ndarray, out: np.ndarray, spare: np.ndarray | None = None
) -> np.ndarray:
    """``x + delta`` on each channel: RGB moved by a luma change (chroma kept). ``spare`` is
    a buffer shaped like ``x`` to use (OpenCV's merge + add is 2x NumPy's broadcasting)."""
    spare = cv2.merge((delta, delta, delta), dst=spare)
    return cv2.add(x, spare, dst=out)


class FloatStage(FrameProcessor):
    """A stage that works frame by frame on float RGB: subclasses implement ``apply``.

    Accepts rgb24 and rgb48 and emits the same layout (``output_layout`` overrides),
    at ``output_size``. Stateless across frames, so any batch size gives the same frames.

    Frames are cut into horizontal strips processed by ``threads`` threads (OpenCV releases
    the GIL). Each strip is read with ``halo`` extra rows above and below, at least the
    reach of every filter in ``apply``, so the rows it keeps are bit-identical to a
    whole-frame run: the output does not depend on the thread count. Values measured on the
    whole frame (noise level, blockiness) come from ``measure`` and reach every strip.
    """

    layouts = ("rgb24", "rgb48")
    output_layout: str | None = None
    #: wall seconds spent in ``process`` so far
    seconds: float = 0.0
    #: input rows of context a strip needs on each side (0: never cut into strips)
    halo: int = 0
    #: strip boundaries fall on multiples of this many input rows (codec block grids)
    align: int = 1

    def __init__(self, threads: int | None = None) -> None:
        self.scratch = Scratch()
        self.fmt_in: FrameFormat | None = None
        self.fmt_out: FrameFormat | None = None
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        if fmt.layout not in self.layouts:
            raise VtError(f"{self.name} takes {' or '.join(self.layouts)} frames, not {fmt.layout}")
        self.fmt_in = fmt
        width, height = self.output_size(fmt.width, fmt.height)
        self.fmt_out = FrameFormat(width, height, self.output_layout or fmt.layout)
        return self.fmt_out

    def measure(self, image: np.ndarray) -> Any:
        """Whole-frame values ``apply`` needs (given to every strip); None by default."""
        return None

    def apply(self, x: np.ndarray, context: Any = None) -> np.ndarray:
        """One frame or strip, float32 (H, W, 3) in [0, 1] -> float32 RGB at the output size
        (may be ``x`` itself or a buffer reused on the next call)."""
        raise NotImplementedError

    @timed
    def process(self, batch: FrameBatch) -> FrameBatch:
        return self.convert(batch)

    def convert(self, batch: FrameBatch) -> FrameBatch:
        """Every frame of ``batch`` through ``apply``, in the output layout."""
        fmt = self.fmt_out
        if fmt is None or batch.format.size != self.fmt_in.size:  # type: ignore[union-attr]
            fmt = self.configure(batch.format)
        out = np.empty((len(batch), fmt.height, fmt.width, 3), LAYOUT_DTYPES[fmt.layout])
        for i, image in enumerate(batch.images):
            self._frame(image, out[i])
        return batch.with_images(out, fmt.layout)

    def _strips(self, height: int) -> list[tuple[int, int]]:
        n = self.threads
        if self.halo <= 0 or n <= 1 or height < n * max(64, 4 * self.halo):
            return [(0, height)]
        cuts = [round(height * k / n) // self.align * self.align for k in range(n + 1)]
        cuts[-1] = height
        return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]

    def _frame(self, image: np.ndarray, out: np.ndarray) -> None:
        context = self.measure(image)
        strips = self._strips(image.shape[0])
        if len(strips) == 1:
            x = to_float(image, self.scratch.get("in", image.shape))
            from_float(self.apply(x, context), out)
            return
        scale = out.shape[0] // image.shape[0]

        def strip(bounds: tuple[int, int]) -> None:
            a, b = bounds
            lo = max(0, a - self.halo) // self.align * self.align
            hi = min(image.shape[0], b + self.halo)
            part = image[lo:hi]
            x = to_float(part, self.scratch.get("in", part.shape))
            y = self.apply(x, context)
            from_float(y[(a - lo) * scale : (b - lo) * scale], out[a * scale : b * scale])

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=f"vt-{self.name}")
        for future in [self._pool.submit(strip, bounds) for bounds in strips]:
            future.result()

    def run(self, image: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8/uint16 frame through this stage, outside any pipeline."""
        fmt = "rgb48" if image.dtype == np.uint16 else "rgb24"
        self.configure(FrameFormat(image.shape[1], image.shape[0], fmt))
        batch = FrameBatch(image[None], [0], Fraction(1, 1), [0], fmt)
        return self.process(batch).images[0]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.scratch.clear()
