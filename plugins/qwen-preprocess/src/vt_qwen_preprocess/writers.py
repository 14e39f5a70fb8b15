"""Streaming file writers: frames go to ``.npy``, ``.npz``, ``.safetensors`` or an image
folder as they are produced, so memory holds a few frames whatever the frame count.

Each format's header depends only on the frame count, shape and dtype, which the plan knows
before a pixel is decoded: the header is written first, then every frame with an ordinary
``write`` (a memory map would count its pages in RSS), then what only the end knows (the
``.npz`` members after the frames, an image folder's ``metadata.json``). The bytes are those
NumPy's ``np.save`` and the safetensors library write for the same arrays. Everything goes
through vt's atomic writes: a temporary name beside the target, renamed into place when
complete; on an error, Ctrl-C, SIGTERM or SIGHUP the temporary is removed and nothing appears
under the final name.

Use as a context manager: ``with open_writer(...) as w: w.write(frame) ...; w.finish(record)``.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self

import numpy as np

from vt.atomic import FRAMES_MARKER, AtomicWrite, atomic_file, atomic_folder, is_vt_folder
from vt.errors import OutputError, UsageError
from vt_qwen_preprocess.convert import file_dtype

if TYPE_CHECKING:
    from vt_qwen_preprocess.results import ProcessedVideo

#: file suffix -> writer kind; a path without a suffix is an image folder
STREAM_SUFFIXES = {".npy": "npy", ".npz": "npz", ".safetensors": "safetensors"}
#: --format values an array file can hold
ARRAY_FORMATS = (None, "numpy", "tensor")
#: output dtype -> safetensors dtype code
SAFETENSORS_DTYPES = {"uint8": "U8", "float16": "F16", "float32": "F32", "bfloat16": "BF16"}
#: the one ``__metadata__`` key of vt's safetensors files (the record as JSON)
SAFETENSORS_METADATA_KEY = "metadata"


def stream_kind(path: str | Path, fmt: str | None) -> str | None:
    """The streaming writer for ``path`` and ``--format fmt`` (``npy``, ``npz``,
    ``safetensors``, ``folder``), or None when that output needs the whole result in memory
    (``.pt``, ``.json``) or the pair is invalid (``save`` raises the usage error)."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "folder"
    kind = STREAM_SUFFIXES.get(suffix)
    if kind is None or fmt not in ARRAY_FORMATS:
        return None
    return kind


def check_array_format(suffix: str, fmt: str | None) -> None:
    if fmt not in ARRAY_FORMATS:
        raise UsageError(f"a {suffix} file holds arrays; --format {fmt} needs .json or a folder")


def check_target(path: Path, overwrite: bool, folder: bool = False) -> None:
    """Refuse, before any work, a target that could not be written (the final rename checks
    again: another job may create it meanwhile)."""
    if folder:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder")
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise OutputError(f"folder {path} is not empty (use --overwrite)")
            if not is_vt_folder(path):
                raise OutputError(
                    f"folder {path} was not written by vt (no {FRAMES_MARKER} "
                    "marker): refusing to replace it; choose a new or empty folder"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if path.exists() and not overwrite and not path.is_dir():
        raise OutputError(f"{path} exists (use --overwrite)")
    if path.is_dir():
        raise OutputError(f"{path} is a folder, not a file")
    if not path.parent.exists():
        raise OutputError(f"folder {path.parent} does not exist")


def open_writer(
    kind: str,
    path: Path,
    result: ProcessedVideo,
    *,
    overwrite: bool = False,
    image_format: str = "png",
) -> StreamWriter:
    """The ``kind`` writer (``stream_kind``) for ``result``'s frames, checked against the
    target: enter it to start writing."""
    cfg = result.config
    count, frame_shape = result.plan.nframes, result.frames_shape[1:]
    check_target(path, overwrite, folder=kind == "folder")
    if kind == "npy":
        return NpyWriter(path, count, frame_shape, file_dtype(cfg, False), overwrite)
    if kind == "npz":
        return NpzWriter(path, count, frame_shape, file_dtype(cfg, False), overwrite)
    if kind == "safetensors":
        return SafetensorsWriter(
            path, count, frame_shape, cfg.dtype, result.file_metadata(), overwrite
        )
    if kind == "folder":
        return FolderWriter(path, count, image_format, overwrite)
    raise ValueError(f"no streaming writer for {kind!r}")


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The ``.npy`` header ``np.save`` writes for a C-ordered array of ``shape`` and ``dtype``
    (format 1.0, or 2.0 when the header does not fit)."""
    import io

    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def safetensors_header(
    name: str, code: str, shape: tuple[int, ...], nbytes: int, metadata: dict[str, str]
) -> bytes:
    """The header the safetensors library writes for one tensor: the little-endian u64
    length, then compact JSON (``__metadata__`` first) padded with spaces to 8 bytes."""
    body: dict[str, Any] = {}
    if metadata:
        body["__metadata__"] = metadata
    body[name] = {"dtype": code, "shape": [int(n) for n in shape], "data_offsets": [0, nbytes]}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


class StreamWriter:
    """Frames streamed into a temporary file or folder that becomes ``path`` on success."""

    #: True when the writer takes the resized uint8 RGB frames rather than converted ones
    wants_images = False

    def __init__(self, path: Path, count: int, overwrite: bool) -> None:
        self.path = path
        self.count = count
        self.overwrite = overwrite
        self.written = 0
        self.finished = False
        self._atomic: AtomicWrite | None = None

    def _start(self) -> AtomicWrite:
        return atomic_file(self.path, overwrite=self.overwrite)

    def _open(self, tmp: Path) -> None:
        raise NotImplementedError

    def _write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release open handles (also on failure)."""

    def write(self, frame: np.ndarray) -> None:
        if self.written >= self.count:
            raise OutputError(f"{self.path}: more than the planned {self.count} frames")
        try:
            self._write(frame)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        self.written += 1

    def finish(self, record: dict[str, Any]) -> None:
        """Write what follows the frames; the rename happens when the ``with`` block ends."""
        if self.written != self.count:
            raise OutputError(f"{self.path}: {self.written} of {self.count} frames written")
        try:
            self._finish(record)
            self._close()  # flushes: a full disk may only show here
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        self.finished = True

    def __enter__(self) -> Self:
        self._atomic = self._start()
        tmp = self._atomic.__enter__()  # SIGTERM/SIGHUP now raise, so cleanup runs
        try:
            self._open(tmp)
        except BaseException as exc:
            self._exit(exc)
            if isinstance(exc, OSError):
                raise _write_error(self.path, exc) from None
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure = exc
        if failure is None and not self.finished:
            failure = OutputError(f"{self.path}: writing stopped before the last frame")
        self._exit(failure)
        if failure is not exc:
            raise failure  # type: ignore[misc]

    def _exit(self, failure: BaseException | None) -> None:
        """Commit the temporary (no ``failure``) or remove it."""
        assert self._atomic is not None
        try:
            self._close()
        except OSError:
            pass  # only reached after a failure: finish() closed the successful ones
        if failure is None:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(type(failure), failure, failure.__traceback__)


def _write_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


class _FileWriter(StreamWriter):
    """A single file written through one buffered handle."""

    def __init__(self, path: Path, count: int, overwrite: bool) -> None:
        super().__init__(path, count, overwrite)
        self.fh: BinaryIO | None = None

    def _open(self, tmp: Path) -> None:
        self.fh = open(tmp, "wb")  # noqa: SIM115 - closed by _close
        self._header()

    def _header(self) -> None:
        raise NotImplementedError

    def _write(self, frame: np.ndarray) -> None:
        assert self.fh is not None
        self.fh.write(_frame_bytes(frame, self.frame_shape, self.dtype))

    def _close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()

    frame_shape: tuple[int, ...] = ()
    dtype: np.dtype = np.dtype(np.uint8)


def _frame_bytes(frame: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> memoryview:
    if tuple(frame.shape) != tuple(shape) or frame.dtype != dtype:
        raise OutputError(
            f"frame {frame.dtype} {tuple(frame.shape)} does not match the "
            f"header's {dtype} {tuple(shape)}"
        )
    return memoryview(np.ascontiguousarray(frame)).cast("B")


class NpyWriter(_FileWriter):
    """``.npy``: ``np.save``'s header for the whole (T, ...) array, then the frames."""

    def __init__(
        self,
        path: Path,
        count: int,
        frame_shape: tuple[int, ...],
        dtype: Any,
        overwrite: bool = False,
    ) -> None:
        super().__init__(path, count, overwrite)
        self.frame_shape, self.dtype = tuple(frame_shape), np.dtype(dtype)

    def _header(self) -> None:
        assert self.fh is not None
        self.fh.write(npy_header((self.count, *self.frame_shape), self.dtype))

    def _finish(self, record: dict[str, Any]) -> None:
        pass


class SafetensorsWriter(_FileWriter):
    """``.safetensors`` with one tensor, ``frames`` (T, ...), and the record as JSON in
    ``__metadata__["metadata"]`` (plan, sizes, tokens: everything known before decoding, no
    timing). ``dtype`` is the output dtype name; bfloat16 frames arrive as their raw bits
    (a uint16 view)."""

    def __init__(
        self,
        path: Path,
        count: int,
        frame_shape: tuple[int, ...],
        dtype: str,
        metadata: dict[str, Any],
        overwrite: bool = False,
    ) -> None:
        super().__init__(path, count, overwrite)
        if dtype not in SAFETENSORS_DTYPES:
            raise UsageError(f"cannot write {dtype} frames to safetensors")
        self.code = SAFETENSORS_DTYPES[dtype]
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)
        self.metadata = {SAFETENSORS_METADATA_KEY: json.dumps(metadata, default=str)}

    def _header(self) -> None:
        assert self.fh is not None
        nbytes = self.count * int(np.prod(self.frame_shape)) * self.dtype.itemsize
        self.fh.write(
            safetensors_header(
                "frames", self.code, (self.count, *self.frame_shape), nbytes, self.metadata
            )
        )

    def _finish(self, record: dict[str, Any]) -> None:
        pass


class NpzWriter(StreamWriter):
    """``.npz`` as ``np.savez`` lays it out: ``frames.npy`` (streamed into the zip member),
    then ``frame_indices.npy`` and ``metadata.npy`` (the record as JSON, timing included)."""

    def __init__(
        self,
        path: Path,
        count: int,
        frame_shape: tuple[int, ...],
        dtype: Any,
        overwrite: bool = False,
    ) -> None:
        super().__init__(path, count, overwrite)
        self.frame_shape, self.dtype = tuple(frame_shape), np.dtype(dtype)
        self.zip: zipfile.ZipFile | None = None
        self.member: BinaryIO | None = None

    def _open(self, tmp: Path) -> None:
        self.zip = zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.member = self.zip.open("frames.npy", "w", force_zip64=True)  # type: ignore[assignment]
        assert self.member is not None
        self.member.write(npy_header((self.count, *self.frame_shape), self.dtype))

    def _write(self, frame: np.ndarray) -> None:
        assert self.member is not None
        self.member.write(_frame_bytes(frame, self.frame_shape, self.dtype))

    def _finish(self, record: dict[str, Any]) -> None:
        assert self.zip is not None and self.member is not None
        self.member.close()
        extras = {
            "frame_indices": np.asarray(record["frame_indices"], dtype=np.int64),
            "metadata": np.asarray(json.dumps(record, default=str)),
        }
        for name, value in extras.items():
            with self.zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, value, allow_pickle=False)

    def _close(self) -> None:
        try:
            if self.member is not None and not self.member.closed:
                self.member.close()
        finally:
            if self.zip is not None:
                self.zip.close()
                self.zip = None


class FolderWriter(StreamWriter):
    """A folder of ``frame_NNNNNN.<ext>`` images (the resized uint8 RGB frames themselves)
    plus ``metadata.json``, carrying vt's ``.vt-frames`` marker."""

    wants_images = True

    def __init__(
        self, path: Path, count: int, image_format: str = "png", overwrite: bool = False
    ) -> None:
        super().__init__(path, count, overwrite)
        self.ext = "jpg" if image_format in ("jpg", "jpeg") else image_format
        self.tmp: Path | None = None

    def _start(self) -> AtomicWrite:
        return atomic_folder(self.path, overwrite=self.overwrite)

    def _open(self, tmp: Path) -> None:
        self.tmp = tmp

    def _write(self, frame: np.ndarray) -> None:
        from vt_qwen_preprocess.outputs import encode_image

        assert self.tmp is not None
        data = encode_image(np.ascontiguousarray(frame), "jpeg" if self.ext == "jpg" else self.ext)
        (self.tmp / f"frame_{self.written:06d}.{self.ext}").write_bytes(data)

    def _finish(self, record: dict[str, Any]) -> None:
        assert self.tmp is not None
        (self.tmp / "metadata.json").write_text(json.dumps(record, indent=2, default=str))
