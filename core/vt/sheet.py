"""Contact sheets: a grid of evenly spaced frames with their timestamps, as one PNG.

For checking a clip (or a generated one) at a glance. Only the chosen frames are decoded
(the decoder's random access), each scaled down as it is read, so memory is the sheet.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vt.errors import UsageError
from vt.media.decode import open_video

LABEL = 18  # pixels of the caption strip under each tile


@dataclass
class Sheet:
    path: Path
    width: int
    height: int
    columns: int
    rows: int
    indices: list[int] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "size": [self.width, self.height],
            "grid": [self.columns, self.rows],
            "frames": self.indices,
            "times": self.times,
        }


def spaced_indices(total: int, count: int) -> list[int]:
    """``count`` indices spread over ``total`` frames, first and last included."""
    if total <= 0:
        raise UsageError("the video has no frames")
    count = max(1, min(count, total))
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, count)})


def _stamp(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


def contact_sheet(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    frames: int = 12,
    tile_width: int = 320,
    columns: int | None = None,
    overwrite: bool = True,
) -> Sheet:
    """Write a PNG grid of ``frames`` evenly spaced frames of ``source``; return what it holds."""
    import cv2

    if frames < 1:
        raise UsageError(f"--frames must be 1 or more, got {frames}")
    target = Path(output)
    if target.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"a contact sheet is an image: give a .png path, got {target.name}")
    if target.exists() and not overwrite:
        raise UsageError(f"sheet exists: {target} (use --overwrite to replace it)")
    with open_video(source) as reader:
        video = reader.info.video
        total, _ = reader.native_timing()
        indices = spaced_indices(int(total or 0), frames)
        sar = float(video.sample_aspect_ratio or 1)  # tiles keep the shown aspect ratio
        w, h = max(1, round(video.width * sar)), video.height
        tile_w = min(tile_width, w)
        tile_h = max(1, round(h * tile_w / w))
        cols = columns or min(
            len(indices), max(1, math.ceil(math.sqrt(len(indices) * 16 / 9 * tile_h / tile_w)))
        )
        rows = math.ceil(len(indices) / cols)
        sheet = np.full((rows * (tile_h + LABEL), cols * tile_w, 3), 24, np.uint8)
        times: list[float | None] = []
        got: list[int] = []
        for batch in reader.frames_at(indices, size=(tile_w, tile_h)):
            for k, index in enumerate(batch.indices):
                n = len(got)
                r, c = divmod(n, cols)
                y, x = r * (tile_h + LABEL), c * tile_w
                image = batch.images[k]
                sheet[y : y + tile_h, x : x + tile_w] = (
                    (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image
                )
                time = batch.times[k]
                cv2.putText(
                    sheet,
                    f"{_stamp(time)}  #{index}",
                    (x + 4, y + tile_h + 13),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.4,
                    (235, 235, 235),
                    1,
                    cv2.LINE_AA,
                )
                times.append(time)
                got.append(index)
    from vt.atomic import atomic_file

    ok, data = cv2.imencode(target.suffix.lower(), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise UsageError(f"cannot encode {target.suffix} images")
    with atomic_file(target, overwrite=overwrite, suffix=target.suffix) as tmp:
        tmp.write_bytes(data.tobytes())
    return Sheet(target, sheet.shape[1], sheet.shape[0], cols, rows, got, times)
