"""The artifact folder: where generated videos go, which names may be served, what is pruned."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

log = logging.getLogger(__name__)

#: a name the API may serve: one path component, no leading dot, a known extension
_SERVABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_MEDIA_TYPES = {".mp4": "video/mp4", ".json": "application/json"}
#: only files named like this were written by the server, so only these are ever pruned
_OWN_VIDEO = re.compile(r"cogvideo-[0-9a-f]{32}\.mp4")
PREFIX = "cogvideo-"


class ArtifactStore:
    """Names and finds files in one folder; nothing outside it is ever served or deleted."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(os.path.realpath(folder))

    def video_path(self, job_id: str) -> Path:
        return self.folder / f"{PREFIX}{job_id}.mp4"

    @staticmethod
    def sidecar_names(video_name: str) -> tuple[str, ...]:
        """The JSON sidecar names the generator may write beside a video."""
        return (f"{Path(video_name).stem}.json", f"{video_name}.json")

    def find(self, name: str) -> tuple[Path, os.stat_result, str] | None:
        """The regular file ``name`` directly inside the folder (path, lstat, media type), or
        None for anything else: other folders, traversal, absolute paths, symlinks, devices."""
        if not _SERVABLE.fullmatch(name) or ".." in name:
            return None
        media_type = _MEDIA_TYPES.get(Path(name).suffix.lower())
        if media_type is None:
            return None
        path = self.folder / name
        try:
            info = os.lstat(path)  # lstat: a symlink is refused, not followed
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or path.parent != self.folder:
            return None
        return path, info, media_type

    def prune(self, keep: int, protect: frozenset[str] = frozenset()) -> list[str]:
        """Delete the oldest server-written videos (and their sidecars) beyond the newest
        ``keep``; ``keep`` 0 keeps all. Returns the names of the videos deleted."""
        if keep <= 0:
            return []
        videos: list[tuple[float, str]] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if _OWN_VIDEO.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    try:
                        videos.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
                    except OSError:
                        continue
        videos.sort(reverse=True)
        deleted = []
        for _, name in videos[keep:]:
            if name in protect:
                continue
            for victim in (name, *self.sidecar_names(name)):
                try:
                    (self.folder / victim).unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("cannot prune %s: %s", victim, exc)
            deleted.append(name)
        return deleted
