"""Frame processors and the chain that drives them.

A processor is built once (by its registered factory, or by hand), told the incoming frame
format by ``configure`` (it answers with the format it emits), then handed batches. Its own
class attributes say what it needs, and the chain reads them there and nowhere else:
``layouts``, ``devices``, ``batch_size``, ``temporal``, ``accepts_av_frames``, and for
segmented runs ``temporal_context`` and ``segmentable``.

:class:`ProcessorChain` is the one way to drive processors, from the CLI or from Python: it
configures them, cuts the stream into each stage's batch size, checks every frame comes back
in order, applies the frame-error policy, flushes at the end of each stream and closes the
processors at the end. One chain can process many files (``run``): its processors, and the
models they loaded, live as long as the chain.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vt.errors import UsageError, VtError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import MAX_DIMENSION

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import av

    from vt.media.encode import EncoderConfig
    from vt.media.pipeline import PipelineOptions, PipelineReport, ProgressCallback
    from vt.media.source import Source

log = logging.getLogger("vt")

ERROR_POLICIES = ("abort", "pass")


class FrameProcessor:
    """Base class with the defaults of an identity, stateless, CPU, one-frame processor.

    Every frame that goes in must come out exactly once, with its PTS, in the order it went
    in (PTS increasing); anything else is an error naming the processor.
    """

    name: str = "processor"
    #: host layouts ``configure``/``process`` accept (``rgb24``, ``rgb48``); the pipeline
    #: decodes >8-bit video to ``rgb48`` only when every processor lists it
    layouts: tuple[str, ...] = ("rgb24",)
    #: device kinds it can run on (``cpu``, ``cuda``, ``mps``); without ``cpu``, configuring
    #: on a machine that has none of them is a one-line error instead of a crash mid-file
    devices: tuple[str, ...] = ("cpu",)
    #: frames per ``process`` call (read after ``configure``): the chain re-cuts the stream
    #: to this size for this stage (only a stream's last batch may be smaller), whatever the
    #: stages before emit
    batch_size: int = 1
    #: True when it keeps state from frame to frame and may hold frames back, returning them
    #: from a later ``process`` or from ``flush``. Every stage gets frames in PTS order and is
    #: flushed at the end of each stream (end of file, or ``--end``); a temporal processor is
    #: never run on decoded ``av.VideoFrame``s (that path has no flush)
    temporal: bool = False
    #: True when ``process_frame`` can work on decoded ``av.VideoFrame``s in their own pixel
    #: format (e.g. scaling YUV in libswscale): a chain of such processors skips RGB entirely
    accepts_av_frames: bool = False
    #: for segmented runs (``--resume``, ``--workers``): the frames each output frame depends
    #: on besides its own, as frames before it, or ``(before, after)``. A segment decodes and
    #: processes that many frames around it without writing them, so its frames equal one
    #: pass's. A ``temporal`` processor that leaves it 0 is run in one pass
    temporal_context: int | tuple[int, int] = 0
    #: False when no fixed context makes a segment equal one pass (state that reaches back
    #: to the start of the stream): segmented runs then run in one pass, with a note
    segmentable: bool = True

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        """Accept the input format; return the output format (size may change). Called again
        only when a later stream has another format: keep loaded models, rebuild per-size
        state."""
        return fmt

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        """Process one batch; return the frames ready now (None or empty when holding back).

        The batch may hold a host array or a device tensor: take the form you work in
        (``batch.images`` or ``batch.to_tensor(device)``) and return ``batch.from_tensor(t)``
        or ``batch.with_images(a)``; the other form is made only if a later consumer needs it.
        """
        raise NotImplementedError

    def process_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Process one decoded ``av.VideoFrame`` (only when ``accepts_av_frames``); keep PTS."""
        raise NotImplementedError

    def flush(self) -> list[FrameBatch]:
        """Frames still held at the end of a stream; afterwards the processor starts afresh."""
        return []

    def close(self) -> None:
        """Release resources (models, devices)."""

    def describe(self) -> str:
        return self.name


def processor_attribute(processor: Any, name: str) -> Any:
    """A processor's own attribute, or ``FrameProcessor``'s default for duck-typed ones."""
    if name == "layouts" and hasattr(processor, "pixel_formats"):
        # renamed in 0.2: silently falling back to rgb24-only would hide a plugin's rgb48 support
        raise TypeError(f"{type(processor).__name__}.pixel_formats is now called 'layouts'")
    return getattr(processor, name, getattr(FrameProcessor, name))


def _order_key(pts: int | None, index: int) -> int:
    """What frame order is checked on: the PTS, or the source index for frames without one."""
    return index if pts is None else pts


@dataclass
class _Stage:
    """One processor and the chain's bookkeeping for it during a stream."""

    processor: Any
    batch_size: int = 1  # the processor's own, read when the chain is configured
    pending: list[FrameBatch] = field(default_factory=list)  # waiting for a full batch
    pending_frames: int = 0
    outstanding: deque[int] = field(default_factory=deque)  # given, not returned yet
    last_key: int | None = None  # the last frame returned
    passed: deque[FrameBatch] = field(default_factory=deque)  # passed through, held back

    @property
    def name(self) -> str:
        return str(getattr(self.processor, "name", type(self.processor).__name__))

    def reset(self) -> None:
        self.pending, self.pending_frames = [], 0
        self.outstanding.clear()
        self.passed.clear()
        self.last_key = None


class ProcessorChain:
    """Processors in order, driven as one, with the frame-error policy applied to each.

    From Python::

        with ProcessorChain([a, b]) as chain:        # closes a and b at the end
            chain.configure(FrameFormat(1280, 720))  # -> the format the chain emits
            for batch in batches:
                for out in chain.feed(batch):        # ready frames, in order
                    ...
            for out in chain.flush():                # what processors held; ends the stream
                ...

    or for files, one after another with the same loaded models::

        with ProcessorChain([vae]) as chain:
            for row in table:
                chain.run(row.input, row.output)

    ``error_policy`` ``abort`` raises a one-line ``VtError`` naming the processor and frames;
    ``pass`` passes the failing batch's input frames on instead (resized to the stage's output
    size), never ahead of frames a processor still holds. A processor that returns frames out
    of order, repeats one, or returns one it was not given is always an error.
    """

    def __init__(self, processors: Sequence[FrameProcessor], error_policy: str = "abort") -> None:
        if error_policy not in ERROR_POLICIES:
            raise UsageError(f"frame-error policy must be one of {', '.join(ERROR_POLICIES)}")
        self.processors = list(processors)
        self.policy = error_policy
        #: the input format, then each stage's output format (set by ``configure``)
        self.formats: list[FrameFormat] = []
        #: frames passed through under the ``pass`` policy, over the chain's life
        self.frame_errors = 0
        self._stages = [_Stage(p) for p in self.processors]
        self._devices_checked = False
        self._streaming = False  # between feed() and the end of flush()

    # -- set-up ------------------------------------------------------------------------------
    def configure(self, fmt: FrameFormat) -> FrameFormat:
        """Tell every processor its input format; return the format the chain emits. A format
        the chain is already configured for changes nothing (processors are not reconfigured)."""
        if self.formats and self.formats[0] == fmt:
            return self.formats[-1]
        self._check_devices()
        try:
            return self._configure_stages(fmt)
        except BaseException:
            self.formats = []  # half-configured: the next call starts over
            raise

    def _configure_stages(self, fmt: FrameFormat) -> FrameFormat:
        self.formats = [fmt]
        for stage in self._stages:
            p = stage.processor
            accepted = processor_attribute(p, "layouts")
            if fmt.layout not in accepted:
                raise UsageError(
                    f"processor {p.name} takes {'/'.join(accepted)} frames, not {fmt.layout}"
                )
            fmt = p.configure(fmt)
            if fmt.width <= 0 or fmt.height <= 0:
                raise UsageError(f"processor {p.name} would make {fmt.width}x{fmt.height} frames")
            if max(fmt.width, fmt.height) > MAX_DIMENSION:
                raise UsageError(
                    f"processor {p.name} would make {fmt.width}x{fmt.height} "
                    f"frames: at most {MAX_DIMENSION} pixels per side"
                )
            self.formats.append(fmt)
            # read after configure: a processor may pick its batch for the frame size
            stage.batch_size = max(int(processor_attribute(p, "batch_size")), 1)
        return fmt

    def _check_devices(self) -> None:
        """A processor that cannot run on the CPU needs one of its devices to be present."""
        if self._devices_checked:
            return
        for p in self.processors:
            devices = tuple(processor_attribute(p, "devices"))
            if "cpu" not in devices and not any(_device_available(d) for d in devices):
                raise VtError(
                    f"processor {p.name} runs on {'/'.join(devices)}, and none is available here"
                )
        self._devices_checked = True

    def layout_for(self, bit_depth: int) -> str:
        """``rgb48`` for >8-bit video when every processor takes it, else ``rgb24``."""
        deep = bit_depth > 8 and all(
            "rgb48" in processor_attribute(p, "layouts") for p in self.processors
        )
        return "rgb48" if deep else "rgb24"

    @property
    def batch_size(self) -> int:
        """The batch the first stage takes: what a decoder feeding the chain should yield."""
        return self._stages[0].batch_size if self._stages else 1

    @property
    def native(self) -> bool:
        """Whether every processor works on decoded frames directly (none needs RGB)."""
        return all(
            processor_attribute(p, "accepts_av_frames") and not processor_attribute(p, "temporal")
            for p in self.processors
        )

    # -- frames ------------------------------------------------------------------------------
    def feed(self, batch: FrameBatch) -> Iterator[FrameBatch]:
        """Give the chain the next frames of the stream; yields the frames that are ready, in
        order. A stream's first batch configures the chain for its format (nothing changes
        when it is the format already configured); later ones must keep that format."""
        if not self._streaming:
            self.configure(batch.format)
            self._streaming = True
        elif batch.format != self.formats[0]:
            raise VtError(
                f"frames changed from {self.formats[0].width}x"
                f"{self.formats[0].height} {self.formats[0].layout} to "
                f"{batch.width}x{batch.height} {batch.layout} mid-stream"
            )
        if len(batch):
            yield from self._push(0, batch)

    def flush(self) -> Iterator[FrameBatch]:
        """End the stream: every stage's last (short) batch, then what each processor held.
        The next ``feed`` starts a new stream (PTS may start again from zero)."""
        for i, stage in enumerate(self._stages):
            if stage.pending:
                tail = FrameBatch.concat(stage.pending)
                stage.pending, stage.pending_frames = [], 0
                for out in self._call(i, tail):
                    yield from self._push(i + 1, out)
            for out in self._returned(stage, self._flush_processor(stage)):
                yield from self._push(i + 1, out)
            while stage.passed:  # the processor dropped what it held: the count check says so
                yield from self._push(i + 1, stage.passed.popleft())
            stage.reset()
        self._streaming = False

    def reset(self) -> None:
        """Forget a stream that failed half-way: buffers cleared, and what processors held is
        flushed and dropped, so the next stream starts clean (used between files)."""
        for stage in self._stages:
            try:
                stage.processor.flush()
            except Exception as exc:  # the stream is being abandoned anyway
                log.debug("flushing %s after a failure: %s", stage.name, exc)
            stage.reset()
        self._streaming = False

    def _push(self, i: int, batch: FrameBatch) -> Iterator[FrameBatch]:
        """``batch`` into stage ``i`` (re-cut to its batch size), results on downstream."""
        if i == len(self._stages):
            yield batch
            return
        for ready in self._rebatch(self._stages[i], batch):
            for out in self._call(i, ready):
                yield from self._push(i + 1, out)

    @staticmethod
    def _rebatch(stage: _Stage, batch: FrameBatch) -> Iterator[FrameBatch]:
        size = stage.batch_size
        if not stage.pending and len(batch) == size:
            yield batch
            return
        stage.pending.append(batch)
        stage.pending_frames += len(batch)
        while stage.pending_frames >= size:
            joined = FrameBatch.concat(stage.pending)
            rest = joined[size:]
            stage.pending = [rest] if len(rest) else []
            stage.pending_frames = len(rest)
            yield joined[:size]

    def _call(self, i: int, batch: FrameBatch) -> list[FrameBatch]:
        """One ``process`` call with the error policy; the frames it releases, in order."""
        stage = self._stages[i]
        keys = [_order_key(p, x) for p, x in zip(batch.pts, batch.indices)]
        stage.outstanding.extend(keys)
        try:
            out = stage.processor.process(batch)
        except (KeyboardInterrupt, VtError):
            raise
        except Exception as exc:
            first, last = batch.indices[0], batch.indices[-1]
            where = f"frame {first}" if first == last else f"frames {first}-{last}"
            if self.policy == "abort":
                raise VtError(
                    f"{stage.name} failed on {where}: {type(exc).__name__}: {exc}"
                ) from exc
            self.frame_errors += len(batch)
            log.warning("%s failed on %s (%s): source frame passed through", stage.name, where, exc)
            for _ in keys:  # these will not come back from the processor
                stage.outstanding.pop()
            stage.passed.append(self._pass_through(batch, self.formats[i + 1]))
            out = None
        return self._returned(stage, [out] if out is not None else [])

    def _flush_processor(self, stage: _Stage) -> list[FrameBatch]:
        try:
            return [b for b in stage.processor.flush() if b is not None]
        except (KeyboardInterrupt, VtError):
            raise
        except Exception as exc:
            raise VtError(
                f"{stage.name} failed at the end of the stream: {type(exc).__name__}: {exc}"
            ) from exc

    def _returned(self, stage: _Stage, batches: list[FrameBatch]) -> list[FrameBatch]:
        """Check the order of what a processor returned and slot in passed-through frames:
        a passed frame goes out once nothing older is still held, and before anything newer."""
        ready: list[FrameBatch] = []
        for batch in batches:
            start = 0
            for j, (pts, index) in enumerate(zip(batch.pts, batch.indices)):
                key = _order_key(pts, index)
                self._check_returned(stage, key, pts is not None)
                if stage.passed and _first_key(stage.passed[0]) < key:
                    if j > start:
                        ready.append(batch[start:j])
                        start = j
                    while stage.passed and _first_key(stage.passed[0]) < key:
                        ready.append(stage.passed.popleft())
            if start < len(batch):
                ready.append(batch if start == 0 else batch[start:])
        while stage.passed and (
            not stage.outstanding or _first_key(stage.passed[0]) < stage.outstanding[0]
        ):
            ready.append(stage.passed.popleft())
        return ready

    @staticmethod
    def _check_returned(stage: _Stage, key: int, is_pts: bool) -> None:
        held = stage.outstanding
        try:
            position = held.index(key)
        except ValueError:
            what = "pts" if is_pts else "frame"
            last = stage.last_key
            if last is not None and key < last:
                problem = f"frames out of order ({what} {key} after {what} {last})"
            elif last is not None and key == last:
                problem = f"{what} {key} twice (PTS must increase)"
            else:
                problem = f"{what} {key}, which it was not given"
            raise VtError(
                f"processor {stage.name} returned {problem}: frames must come "
                "back once each, in the order they went in"
            ) from None
        for _ in range(position):  # skipped frames were dropped: the frame count says so
            held.popleft()
        held.popleft()
        stage.last_key = key

    def _pass_through(self, batch: FrameBatch, target: FrameFormat) -> FrameBatch:
        import numpy as np

        from vt.media.decode import resize_rgb

        images = [resize_rgb(im, target.size, "lanczos") for im in batch.images]
        return batch.with_images(np.stack(images))

    def process_frame(self, frame: Any) -> Iterator[Any]:
        """One decoded frame through native processors, with the error policy."""
        from vt.media.swscale import reformat

        for i, p in enumerate(self.processors):
            try:
                frame = p.process_frame(frame)
            except (KeyboardInterrupt, VtError):
                raise
            except Exception as exc:
                if self.policy == "abort":
                    raise VtError(
                        f"{p.name} failed on the frame at pts {frame.pts}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                self.frame_errors += 1
                log.warning(
                    "%s failed on the frame at pts %s (%s): source frame passed through",
                    p.name,
                    frame.pts,
                    exc,
                )
                target = self.formats[i + 1]
                frame = reformat(
                    frame, width=target.width, height=target.height, interpolation="LANCZOS"
                )
        yield frame

    # -- files -------------------------------------------------------------------------------
    def run(
        self,
        input: Source | str | Path | bytes,
        output: str | Path,
        *,
        config: EncoderConfig | None = None,
        options: PipelineOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> PipelineReport:
        """Process one file into ``output`` with these processors (``vt.media.pipeline.
        process_video``); the chain stays open for the next file. The chain's error policy
        applies."""
        from dataclasses import replace

        from vt.media.pipeline import PipelineOptions, process_video

        options = replace(options or PipelineOptions(), error_policy=self.policy)
        return process_video(input, output, self, config=config, options=options, progress=progress)

    # -- end ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every processor (releasing models and devices)."""
        for p in self.processors:
            try:
                p.close()
            except Exception as exc:  # pragma: no cover - cleanup must not mask results
                log.debug("closing %s failed: %s", p.name, exc)

    def __enter__(self) -> ProcessorChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_key(batch: FrameBatch) -> int:
    return _order_key(batch.pts[0], batch.indices[0])


def _device_available(device: str) -> bool:
    kind = device.split(":")[0]
    if kind == "cpu":
        return True
    try:
        import torch
    except ImportError:
        return False
    if kind == "cuda":
        return bool(torch.cuda.is_available())
    if kind == "mps":
        return bool(torch.backends.mps.is_available())
    return True  # a device kind we do not know: the processor checks it itself
