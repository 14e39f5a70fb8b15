"""Hugging Face ids (``org/name[@revision]``) resolved through the Hugging Face cache.

One place for every diffusers/transformers plugin: the cache is read directly (no network,
no import of ``huggingface_hub``); only a miss downloads, with ``huggingface_hub``, unless
``HF_HUB_OFFLINE=1``. Downloads take configs, tokenizers and safetensors weights only: never
pickles or code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vt.errors import ModelUnavailableError
from vt.registry import ModelRef

_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: what a download fetches: configs, tokenizers and safetensors weights
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.yaml"]


def looks_like_hub_id(text: str) -> bool:
    repo, _, _ = text.partition("@")
    return (
        bool(_ID.match(repo))
        and ".." not in repo
        and Path(repo).suffix.lower()
        not in (".pth", ".pt", ".ckpt", ".safetensors", ".onnx", ".param", ".bin")
    )


def hub_cache() -> Path:
    """Where the Hugging Face hub keeps its cache (``HF_HUB_CACHE``, ``HF_HOME/hub``…)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` in the cache, or None."""
    folder = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    commit = revision if _COMMIT.match(revision) else None
    if commit is None:
        ref = folder / "refs" / revision
        try:
            commit = ref.read_text().strip()
        except OSError:
            return None
        if not _COMMIT.match(commit):
            return None
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def resolve_hub_id(text: str, *, download: bool = True) -> ModelRef:
    """``org/name[@revision]`` -> its snapshot folder; downloads on a cache miss if allowed."""
    repo_id, _, revision = text.partition("@")
    revision = revision or "main"
    snapshot = cached_snapshot(repo_id, revision)
    metadata = {"repo_id": repo_id, "revision": revision}
    if snapshot is not None:
        return ModelRef(snapshot, name=repo_id, source="huggingface-cache", metadata=metadata)
    where = f"not in the Hugging Face cache ({hub_cache()})"
    if offline() or not download:
        reason = "HF_HUB_OFFLINE=1" if offline() else "downloads are off"
        raise ModelUnavailableError(
            f"model {text} is {where} and {reason}: download it on a "
            "machine with internet, or pass a local folder"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelUnavailableError(
            f"model {text} is {where}; downloading needs "
            "huggingface_hub (pip install 'vt[diffusers]')"
        ) from None
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(hub_cache()),
            allow_patterns=ALLOW_PATTERNS,
            etag_timeout=10,
        )
    except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: one line each
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(
            f"model {text} is {where} and the hub is unreachable "
            f"({type(exc).__name__}: {first[:200]})"
        ) from None
    return ModelRef(Path(path), name=repo_id, source="huggingface", metadata=metadata)
