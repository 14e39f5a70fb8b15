"""How many threads the model, the decoder and the encoder get, chosen together.

On the CPU an AI model is nearly all of a job's work (carphone x4 with animevideov3: ~190 ms
of model per frame against ~12 ms of x264 veryfast and ~1 ms of decoding), so the rule is:

- The model gets every core. A backend that takes calls from several threads at once
  (ncnn, onnxruntime, torch on the CPU: their calls release the GIL) runs ``cores`` frames
  side by side on one thread each: no barrier after every layer and no threads spinning
  while they wait, so two frames on one thread each finish sooner than two frames one after
  the other on two threads (measured here, 2 cores: the same frames in 20-45% less CPU time,
  much less again when other jobs share the cores).
  Frames of more than :data:`LARGE_FRAME` input pixels run one at a time on every core
  instead: each frame in flight holds the model's activations (animevideov3 through ncnn:
  ~70 MB at 176x144, ~650 MB at 640x360, 9x that at 1080p). Torch's intra-op thread count is
  process-wide: the upscaler sets it for the job and puts it back when it closes.
- The decoder and the encoder get one thread each. They run in the gaps the model leaves;
  more threads would only contend with the model for the same cores (and make x264 hold
  frames back for its frame threads).
- A model on a GPU leaves the CPU to the decoder and encoder: their own choice (0 = auto).
- ``--single-thread`` (one core per job, for jobs run side by side) is ``cores = 1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: input pixels above which frames run one at a time over every core (memory, see above)
LARGE_FRAME = 640 * 480


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPlan:
    """Threads for one upscaling job; 0 means the component's own choice."""

    workers: int  # frames the model runs at once
    model_threads: int  # threads inside each model call
    decoder_threads: int
    encoder_threads: int


def plan_threads(
    cores: int, *, on_cpu: bool, concurrent: bool, frame_pixels: int | None = None
) -> ThreadPlan:
    """The rule in the module docstring. ``concurrent``: the backend runs calls from several
    threads in parallel; ``frame_pixels``: input width x height, when known."""
    cores = max(int(cores), 1)
    if not on_cpu:
        return ThreadPlan(workers=1, model_threads=0, decoder_threads=0, encoder_threads=0)
    large = frame_pixels is not None and frame_pixels > LARGE_FRAME
    if concurrent and not large:
        workers, model_threads = cores, 1
    else:
        workers, model_threads = 1, cores
    return ThreadPlan(
        workers=workers, model_threads=model_threads, decoder_threads=1, encoder_threads=1
    )
