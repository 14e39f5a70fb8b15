"""What the user gave us to read: a file, an image sequence, or bytes in memory."""

from __future__ import annotations

import glob
import io
import math
import os
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from vt.errors import InputError, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")
_PATTERN = re.compile(r"%0?\d*d")


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


@dataclass(frozen=True)
class Source:
    """A video source and an optional time range (seconds)."""

    kind: str  # "file" | "frames" | "bytes"
    path: Path | None = None
    paths: tuple[Path, ...] = ()
    data: bytes | None = field(default=None, repr=False)
    fps: Fraction | None = None  # for image sequences
    start: float | None = None
    end: float | None = None

    @classmethod
    def parse(
        cls,
        value: str | os.PathLike[str] | bytes | Source,
        *,
        start: float | None = None,
        end: float | None = None,
        fps: float | Fraction | None = None,
    ) -> Source:
        """Classify and validate an input; raise ``InputError`` with a one-line reason."""
        if isinstance(value, Source):
            src = value
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if not data:
                raise InputError("input bytes are empty")
            src = cls("bytes", data=data)
        else:
            src = cls._from_path(str(value))
        if fps is not None:
            src = replace(src, fps=Fraction(fps).limit_denominator(1001000))
        if start is not None or end is not None:
            src = src.with_range(start, end)
        return src

    @classmethod
    def _from_path(cls, text: str) -> Source:
        if text.startswith("file://"):
            text = text[len("file://") :]
        path = Path(text).expanduser()
        if _PATTERN.search(path.name) or any(ch in path.name for ch in "*?["):
            pattern = _PATTERN.sub("*", str(path)) if _PATTERN.search(path.name) else str(path)
            files = sorted((Path(p) for p in glob.glob(pattern)), key=_natural_key)
            files = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
            if not files:
                raise InputError(f"no images match {text}")
            return cls("frames", paths=tuple(files))
        if not path.exists():
            raise InputError(f"input not found: {text}")
        if path.is_dir():
            files = sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                key=_natural_key,
            )
            if not files:
                raise InputError(f"input is a directory with no images: {text}")
            return cls("frames", path=path, paths=tuple(files))
        if not os.access(path, os.R_OK):
            raise InputError(f"input is not readable: {text}")
        if path.stat().st_size == 0:
            raise InputError(f"input is empty (0 bytes): {text}")
        return cls("file", path=path)

    def with_range(self, start: float | None, end: float | None) -> Source:
        for name, value in (("start", start), ("end", end)):
            if value is not None and not math.isfinite(value):
                raise UsageError(f"{name} time must be a number of seconds, got {value}")
        if start is not None and start < 0:
            raise UsageError(f"start time must be >= 0, got {start}")
        if end is not None and end <= 0:
            raise UsageError(f"end time must be > 0, got {end}")
        if end is not None and start is not None and end <= start:
            raise UsageError(f"end time ({end}) must be after start time ({start})")
        return replace(self, start=start, end=end)

    def open_binary(self) -> io.BufferedIOBase | str:
        """Something PyAV's ``av.open`` accepts."""
        if self.kind == "bytes":
            assert self.data is not None
            return io.BytesIO(self.data)
        if self.kind == "file":
            return str(self.path)
        raise InputError("image sequences are not a single stream")

    def describe(self) -> str:
        if self.kind == "bytes":
            return f"<{len(self.data or b'')} bytes>"
        if self.kind == "frames":
            return str(self.path or self.paths[0].parent)
        return str(self.path)
