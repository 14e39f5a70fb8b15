"""The spec's data-preparation steps: MSR-VTT, VATEX and Panda-70M.

Each dataset ends as ``OUT/videos/`` (clips) and ``OUT/captions.json`` (its own caption
file, which ``prepare-metadata`` reads as it is). With ``--source DIR`` the clips and captions
come from a local copy; without it MSR-VTT's archive and VATEX's captions are downloaded with
the core's downloader (http(s) only, atomic, size- and time-limited), and a failure is one line
saying the network could not be reached and how to use ``--source``. VATEX and Panda-70M clips
are YouTube segments, which vt does not download: their guidance says how to get them.
Every file is written atomically; a file already in ``OUT`` with the same size is kept.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vt.errors import DownloadError, InputError, UsageError
from vt_cogvideo.training.metadata import VIDEO_EXTENSIONS, find_videos, read_captions

MSR_VTT_URL = "https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip"
VATEX_URL = "https://eric-xw.github.io/vatex-website/data/vatex_training_v1.0.json"
PANDA_70M_URL = "https://github.com/snap-research/Panda-70M"
MSR_VTT_MAX_BYTES = 12 << 30  # the archive is about 6.3 GB
VATEX_MAX_BYTES = 256 << 20
CAPTIONS_NAME = "captions.json"

PANDA_70M_GUIDANCE = f"""\
Panda-70M is not downloaded by vt: its clips are YouTube segments, listed (video id,
timestamps, captions) in CSV files that are released under the dataset's terms of use.
1. Read and accept the terms on {PANDA_70M_URL} (request access where the page asks for it;
   the splits are linked from there; use the training or a small test split first).
2. Download the clips you are allowed to with the project's video2dataset recipe
   (`pip install video2dataset`; its dataset_dataloader/ instructions), on a machine with
   network access; each clip comes with its caption.
3. Write a CSV with the columns video,caption (video = the clip's file name) and run
   vt cogvideo prepare-metadata --videos CLIPS_DIR --captions captions.csv -o training_metadata.json
Mind YouTube's terms and the content owners' rights before training on the clips."""


@dataclass
class DatasetReport:
    dataset: str
    output_dir: Path
    videos: list[Path] = field(default_factory=list)
    copied: int = 0
    kept: int = 0
    captions: Path | None = None
    missing_videos: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "output_dir": str(self.output_dir),
            "videos": len(self.videos),
            "copied": self.copied,
            "kept": self.kept,
            "captions": str(self.captions) if self.captions else None,
            "missing_videos": self.missing_videos,
            "notes": self.notes,
        }


def _network_error(dataset: str, url: str, exc: DownloadError) -> DownloadError:
    reason = str(exc).splitlines()[0].removesuffix(f" ({url})").removesuffix(f": {url}")
    reason = reason.removeprefix("download failed: ")
    return DownloadError(
        f"cannot download {dataset} from {url} ({reason}): is the network "
        "reachable? Download it where it is and pass --source DIR"
    )


def _copy(src: Path, dest: Path) -> bool:
    """Copy ``src`` to ``dest`` atomically; False when ``dest`` already holds a file of the
    same size (a previous run's copy)."""
    from vt.atomic import atomic_file

    if dest.is_file() and dest.stat().st_size == src.stat().st_size:
        return False
    if dest.exists() and not dest.is_file():
        raise UsageError(f"{dest} exists and is not a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dest, overwrite=dest.is_file()) as tmp:  # a partial earlier copy
        shutil.copyfile(src, tmp)
    return True


def _find_captions(source: Path, accept: Callable[[Path], bool]) -> Path:
    candidates = sorted(p for p in source.rglob("*.json") if p.is_file() and accept(p))
    if not candidates:
        raise InputError(f"no caption file in {source} (a .json with the dataset's captions)")
    return candidates[0]


def _is_msr_vtt(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (
        isinstance(data.get("sentences"), list) or isinstance(data.get("annotations"), list)
    )


def _is_vatex(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "videoID" in data[0]
    )


def _copy_local(
    dataset: str, source: Path, output_dir: Path, limit: int | None, accept: Callable[[Path], bool]
) -> DatasetReport:
    if not source.is_dir():
        raise UsageError(f"--source {source} is not a folder")
    captions_src = _find_captions(source, accept)
    captions = read_captions(captions_src)  # checks the layout before anything is copied
    report = DatasetReport(dataset, output_dir)
    videos = [v for v in find_videos(source) if v.stem in captions or v.name in captions]
    report.missing_videos = max(len(captions) - len(videos), 0)
    for video in videos[:limit]:
        dest = output_dir / "videos" / video.name
        if _copy(video, dest):
            report.copied += 1
        else:
            report.kept += 1
        report.videos.append(dest)
    report.captions = output_dir / CAPTIONS_NAME
    _copy(captions_src, report.captions)
    if not report.videos:
        raise InputError(
            f"no {dataset} clip in {source} matches its captions ({captions_src.name})"
        )
    return report


def download_msr_vtt(
    output_dir: str | Path,
    *,
    source: str | Path | None = None,
    limit: int | None = None,
    url: str = MSR_VTT_URL,
    timeout: float = 6 * 3600,
) -> DatasetReport:
    """MSR-VTT's clips (the first ``limit`` by name) and captions into ``output_dir``."""
    output_dir = Path(output_dir).expanduser()
    _check_limit(limit)
    if source is not None:
        return _copy_local("MSR-VTT", Path(source).expanduser(), output_dir, limit, _is_msr_vtt)
    from vt.cachedirs import cache_dir
    from vt.download import download

    archive = cache_dir("downloads") / "msr-vtt" / "MSRVTT.zip"
    if not archive.is_file():
        try:
            download(url, archive, max_bytes=MSR_VTT_MAX_BYTES, timeout=timeout)
        except DownloadError as exc:
            raise _network_error("MSR-VTT", url, exc) from None
    return _extract_msr_vtt(archive, output_dir, limit)


def _extract_msr_vtt(archive: Path, output_dir: Path, limit: int | None) -> DatasetReport:
    from vt.atomic import atomic_file

    report = DatasetReport("MSR-VTT", output_dir)
    try:
        with zipfile.ZipFile(archive) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/"))
            jsons = [n for n in names if n.lower().endswith(".json")]
            preferred = [n for n in jsons if "msr_vtt" in n.lower() or "videodatainfo" in n.lower()]
            caption_member = (preferred or jsons or [None])[0]
            if caption_member is None:
                raise InputError(f"{archive.name} holds no caption file (.json)")
            members = [n for n in names if Path(n).suffix.lower() in VIDEO_EXTENSIONS]
            for member in members[:limit]:
                dest = output_dir / "videos" / Path(member).name
                info = zf.getinfo(member)
                if dest.is_file() and dest.stat().st_size == info.file_size:
                    report.kept += 1
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with (
                        zf.open(member) as src,
                        atomic_file(dest, overwrite=dest.is_file()) as tmp,
                        open(tmp, "wb") as out,
                    ):
                        shutil.copyfileobj(src, out, 1 << 20)
                    report.copied += 1
                report.videos.append(dest)
            report.captions = output_dir / CAPTIONS_NAME
            output_dir.mkdir(parents=True, exist_ok=True)
            with (
                zf.open(caption_member) as src,
                atomic_file(report.captions, overwrite=report.captions.is_file()) as tmp,
                open(tmp, "wb") as out,
            ):
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile:
        raise InputError(
            f"{archive} is not a zip archive (a damaged download? remove it and run again)"
        ) from None
    read_captions(report.captions)  # the layout must be one prepare-metadata reads
    if not report.videos:
        raise InputError(f"{archive.name} holds no video clip")
    return report


def download_vatex(
    output_dir: str | Path,
    *,
    source: str | Path | None = None,
    limit: int | None = None,
    url: str = VATEX_URL,
    timeout: float = 600,
) -> DatasetReport:
    """VATEX's captions (and, from ``source``, its clips) into ``output_dir``."""
    output_dir = Path(output_dir).expanduser()
    _check_limit(limit)
    if source is not None:
        return _copy_local("VATEX", Path(source).expanduser(), output_dir, limit, _is_vatex)
    from vt.download import download

    report = DatasetReport("VATEX", output_dir)
    report.captions = output_dir / CAPTIONS_NAME
    try:
        download(url, report.captions, max_bytes=VATEX_MAX_BYTES, timeout=timeout)
    except DownloadError as exc:
        raise _network_error("VATEX captions", url, exc) from None
    report.missing_videos = len(read_captions(report.captions))
    report.notes.append(
        "VATEX clips are YouTube segments (videoID = <youtube id>_<start>_<end>); vt does not "
        "download them. Fetch them where you may (e.g. video2dataset), name each "
        "<videoID>.mp4, then run download-vatex --source THAT_DIR or prepare-metadata directly"
    )
    return report


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
