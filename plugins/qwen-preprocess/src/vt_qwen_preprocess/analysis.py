"""Content analysis for the sampling strategies that look at the video: change scores
between consecutive frames (the scene strategy). Keyframes come from the reader itself
(``VideoReader.keyframes()``)."""

from __future__ import annotations

from typing import Any

import numpy as np

DECODE_BATCH = 4  # frames per decoder call (torchcodec/decord); bounded memory


def change_scores(reader: Any, first: int, last: int) -> np.ndarray:
    """Mean absolute luma change between consecutive frames (tiny thumbnails)."""
    from vt.media.decode import resize_rgb  # PyAV and OpenCV: loaded when first needed

    prev = None
    scores = np.zeros(last - first + 1, dtype=np.float64)
    for batch in reader.frames_at(range(first, last + 1), batch_size=DECODE_BATCH):
        for image, index in zip(batch.images, batch.indices, strict=True):
            small = resize_rgb(image, (32, 18), "area").astype(np.float32).mean(axis=2)
            if prev is not None:
                scores[index - first] = float(np.abs(small - prev).mean())
            prev = small
    return scores
