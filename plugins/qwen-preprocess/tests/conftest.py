"""Fixtures for vt-qwen-preprocess tests: an isolated cache, and the reference's backend."""

from __future__ import annotations

import os

import pytest

from vt.media.decoders.optional_readers import torchcodec_available

# qwen-vl-utils reads this at import; its torchvision backend cannot run with torchvision 0.29
os.environ.setdefault(
    "FORCE_QWENVL_VIDEO_READER", "torchcodec" if torchcodec_available() is None else "decord"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    from vt_qwen_preprocess.pipeline import clear_memory_cache

    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("VT_CACHE_DIR", raising=False)  # else it would win over XDG_CACHE_HOME
    for var in [v for v in os.environ if v.startswith("VT_QWEN_")]:
        monkeypatch.delenv(var)
    clear_memory_cache()
    yield
    clear_memory_cache()
