"""Training metadata: clips + captions -> ``training_metadata.json``, every entry checked.

``prepare_metadata`` pairs each video under a folder with its caption (MSR-VTT JSON, VATEX
JSON, a JSON list of ``{"video", "caption"}`` or a CSV with ``video,caption`` columns),
checks it (caption present, decodable, long enough for ``num_frames`` at ``fps``), extracts
its first frame with the core's decoder chain and writes the metadata. A clip that fails a
check is a reject with its reason; the run goes on. ``load_metadata`` reads the file back for
training (paths are stored relative to the metadata file's folder).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vt.errors import InputError, UsageError, VtError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
REJECTS_SUFFIX = ".rejects.json"


@dataclass
class MetadataEntry:
    """One training clip (paths relative to the metadata file's folder when written)."""

    id: str
    video_path: str
    image_path: str
    prompt: str
    num_frames: int  # frames in the whole video
    fps: float
    width: int
    height: int
    duration: float


@dataclass
class Reject:
    video: str
    reason: str


@dataclass
class MetadataReport:
    output: Path
    entries: list[MetadataEntry]
    rejects: list[Reject]
    captions_without_video: int
    rejects_file: Path | None = None
    frames_folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "accepted": len(self.entries),
            "rejected": [asdict(r) for r in self.rejects],
            "captions_without_video": self.captions_without_video,
            "rejects_file": str(self.rejects_file) if self.rejects_file else None,
            "frames_folder": str(self.frames_folder) if self.frames_folder else None,
        }


# -- captions --------------------------------------------------------------------------------
def read_captions(path: Path) -> dict[str, str]:
    """video reference -> caption (the first one given for a video). The reference is what
    the file names the video by: an id (``video12``), a file name or a relative path."""
    if not path.is_file():
        raise UsageError(f"captions file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _csv_captions(path)
        if suffix in (".json", ".jsonl"):
            return _json_captions(path)
    except UnicodeDecodeError:
        raise InputError(f"captions file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read captions file {path}: {exc.strerror or exc}") from None
    raise UsageError(
        f"captions file {path}: use a .json (MSR-VTT, VATEX or a list of "
        "{video, caption}) or a .csv with video,caption columns"
    )


def _csv_captions(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "video" not in columns or "caption" not in columns:
            raise UsageError(
                f"captions file {path}: needs the columns video,caption (has "
                f"{','.join(columns) or 'none'})"
            )
        captions: dict[str, str] = {}
        for row in reader:
            row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
            video = row["video"].strip()
            if video:
                captions.setdefault(video, row["caption"].strip())
        return captions


def _json_captions(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"captions file {path}: not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    captions: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("sentences"), list):  # MSR-VTT
        for item in data["sentences"]:
            if isinstance(item, dict) and item.get("video_id") is not None:
                captions.setdefault(str(item["video_id"]), str(item.get("caption") or "").strip())
        return captions
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):  # MSR-VTT, COCO
        for item in data["annotations"]:  # layout (frozen-in-time's MSR_VTT.json)
            if isinstance(item, dict) and item.get("image_id") is not None:
                captions.setdefault(str(item["image_id"]), str(item.get("caption") or "").strip())
        return captions
    if isinstance(data, list):
        for item in data:
            if not isinstance(item, dict):
                continue
            if "videoID" in item:  # VATEX: enCap is a list of English captions
                caps = item.get("enCap") or []
                first = caps[0] if isinstance(caps, list) and caps else caps
                captions.setdefault(str(item["videoID"]), str(first or "").strip())
            elif "video" in item:
                captions.setdefault(str(item["video"]), str(item.get("caption") or "").strip())
        if captions or not data:
            return captions
    raise UsageError(
        f"captions file {path}: unrecognised layout (expected MSR-VTT "
        '{"sentences": [{"video_id", "caption"}]}, VATEX [{"videoID", "enCap"}] or '
        '[{"video", "caption"}])'
    )


# -- videos ----------------------------------------------------------------------------------
def find_videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` (recursively), sorted by relative path."""
    if not folder.is_dir():
        raise UsageError(f"videos folder not found: {folder}")
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _match_caption(video: Path, folder: Path, captions: dict[str, str]) -> str | None:
    rel = video.relative_to(folder).as_posix()
    for key in (rel, video.name, video.stem, str(video)):
        if key in captions:
            return key
    return None


def clip_indices(frame_count: int, source_fps: float, fps: float, num_frames: int) -> list[int]:
    """Source frame indices of a ``num_frames`` clip sampled at ``fps`` from the start
    (consecutive frames when the source is slower than ``fps``)."""
    stride = max(source_fps / fps, 1.0)
    return [math.floor(i * stride + 1e-6) for i in range(num_frames)]


def frames_needed(source_fps: float, fps: float, num_frames: int) -> int:
    return clip_indices(0, source_fps, fps, num_frames)[-1] + 1


@dataclass
class _Probe:
    frame_count: int
    fps: float
    width: int
    height: int
    duration: float
    first_frame: Any  # (H, W, 3) uint8


def _check_video(path: Path, num_frames: int, fps: float) -> _Probe:
    """Decode what a training clip needs (first and last sampled frames); InputError with
    the reason when the clip cannot serve."""
    from vt.media.decode import with_fallback

    def work(reader: Any) -> _Probe:
        video = reader.info.video
        if not video.fps:
            raise InputError("frame rate unknown")
        count = video.frame_count
        if not count:
            raise InputError("no frames")
        source_fps = float(video.fps)
        needed = frames_needed(source_fps, fps, num_frames)
        if count < needed:
            raise _TooShort(
                f"too short: {count} frames at {source_fps:.3g} fps "
                f"({count / source_fps:.2f} s); {num_frames} frames at {fps:g} fps "
                f"need {needed} ({(needed - 1) / source_fps:.2f} s)"
            )
        first = None
        for batch in reader.frames_at([0, needed - 1]):
            if first is None:
                first = batch.images[0]
        if first is None:
            raise InputError("no frame decoded")
        return _Probe(
            count, source_fps, int(first.shape[1]), int(first.shape[0]), count / source_fps, first
        )

    return with_fallback(path, work)


class _TooShort(VtError):
    """Not a decoding failure: no other decoder is tried."""


def _image_name(rel: str) -> str:
    stem = rel.rsplit(".", 1)[0]
    return stem.replace("/", "__").replace("\\", "__") + ".png"


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def prepare_metadata(
    videos: str | Path,
    captions: str | Path,
    output: str | Path,
    *,
    num_frames: int = 49,
    fps: float = 8,
    limit: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MetadataReport:
    """Write ``output`` (a JSON list of ``MetadataEntry``), the first frames into
    ``<output stem>_frames/`` beside it, and ``<output>.rejects.json`` when a clip was
    rejected. ``limit`` stops after that many accepted clips."""
    from PIL import Image

    from vt.atomic import atomic_file, atomic_folder

    folder = Path(videos).expanduser()
    output = Path(output).expanduser()
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if num_frames < 1 or fps <= 0:
        raise UsageError("--num-frames and --fps must be positive")
    caption_map = read_captions(Path(captions).expanduser())
    found = find_videos(folder)
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists: use --overwrite to replace it")
    if output.is_dir():
        raise UsageError(f"{output} is a folder")
    frames_folder = output.with_name(output.stem + "_frames")
    if (
        frames_folder.exists()
        and not overwrite
        and (not frames_folder.is_dir() or any(frames_folder.iterdir()))
    ):
        raise UsageError(f"{frames_folder} exists: use --overwrite to replace it")
    base = output.parent.resolve()
    base.mkdir(parents=True, exist_ok=True)
    entries: list[MetadataEntry] = []
    rejects: list[Reject] = []
    used: set[str] = set()
    with atomic_folder(frames_folder, overwrite=overwrite) as staging:
        for done, video in enumerate(found):
            if limit is not None and len(entries) >= limit:
                break
            if progress is not None:
                progress(done, len(found))
            rel = video.relative_to(folder).as_posix()
            key = _match_caption(video, folder, caption_map)
            if key is not None:
                used.add(key)
            caption = caption_map.get(key, "") if key is not None else None
            if caption is None:
                rejects.append(Reject(rel, "no caption for this video in the captions file"))
                continue
            if not caption:
                rejects.append(Reject(rel, "caption is empty"))
                continue
            try:
                probe = _check_video(video, num_frames, fps)
            except VtError as exc:
                rejects.append(Reject(rel, str(exc).splitlines()[0]))
                continue
            name = _image_name(rel)
            Image.fromarray(probe.first_frame).save(staging / name)
            entries.append(
                MetadataEntry(
                    id=key or rel,
                    video_path=_relative(video, base),
                    image_path=_relative(frames_folder / name, base),
                    prompt=caption,
                    num_frames=probe.frame_count,
                    fps=round(probe.fps, 6),
                    width=probe.width,
                    height=probe.height,
                    duration=round(probe.duration, 6),
                )
            )
        if not entries:
            reasons = "; ".join(f"{r.video}: {r.reason}" for r in rejects[:3])
            raise InputError(
                f"no usable clip in {folder} ({len(found)} videos"
                f"{'; ' + reasons if reasons else ''})"
            )
    with atomic_file(output, overwrite=overwrite) as tmp:
        tmp.write_text(
            json.dumps([asdict(e) for e in entries], indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    rejects_file = output.with_name(output.name + REJECTS_SUFFIX)
    if rejects:
        with atomic_file(rejects_file, overwrite=True) as tmp:
            tmp.write_text(
                json.dumps([asdict(r) for r in rejects], indent=1, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
    return MetadataReport(
        output,
        entries,
        rejects,
        captions_without_video=len(set(caption_map) - used),
        rejects_file=rejects_file if rejects else None,
        frames_folder=frames_folder,
    )


# -- reading it back -------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingClip:
    """A metadata entry with absolute paths, as training uses it."""

    id: str
    video: Path
    image: Path
    prompt: str
    frame_count: int
    fps: float


def load_metadata(path: str | Path) -> list[TrainingClip]:
    """The clips of a metadata file (relative paths resolved against its folder); a missing
    key, an empty prompt or a missing video is a usage error naming the entry."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"metadata file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"metadata file {path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        data = data["entries"]
    if not isinstance(data, list) or not data:
        raise UsageError(f"metadata file {path}: expected a non-empty JSON list of entries")
    clips: list[TrainingClip] = []
    for i, item in enumerate(data):
        where = f"metadata file {path}, entry {i}"
        if not isinstance(item, dict):
            raise UsageError(f"{where}: not an object")
        for key in ("video_path", "image_path", "prompt", "num_frames", "fps"):
            if key not in item:
                raise UsageError(f"{where}: missing key {key}")
        prompt = str(item["prompt"]).strip()
        if not prompt:
            raise UsageError(f"{where}: empty prompt")
        video = _absolute(item["video_path"], path.parent)
        image = _absolute(item["image_path"], path.parent)
        for what, p in (("video_path", video), ("image_path", image)):
            if not p.is_file():
                raise UsageError(f"{where}: {what} {p} not found")
        clips.append(
            TrainingClip(
                str(item.get("id") or item["video_path"]),
                video,
                image,
                prompt,
                int(item["num_frames"]),
                float(item["fps"]),
            )
        )
    return clips


def _absolute(value: Any, base: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def iter_rejects(report: MetadataReport, limit: int = 20) -> Iterator[str]:
    for reject in report.rejects[:limit]:
        yield f"rejected {reject.video}: {reject.reason}"
    if len(report.rejects) > limit:
        yield f"… and {len(report.rejects) - limit} more (all in {report.rejects_file})"
