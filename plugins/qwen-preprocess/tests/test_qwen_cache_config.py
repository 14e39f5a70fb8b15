"""Caches (memory and disk: hits, invalidation, limits), YAML config, env overrides, profiles,
token/memory accounting and the context-window check."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from vt.errors import UsageError
from vt_qwen_preprocess import load_config, plan, preprocess
from vt_qwen_preprocess.cache import DiskCache, MemoryCache
from vt_qwen_preprocess.pipeline import clear_memory_cache
from vt_qwen_preprocess.profiles import BUILTIN_PROFILES
from vt_qwen_preprocess.tokens import count_tokens


@pytest.fixture
def clip(tmp_path, bikes):
    path = tmp_path / "clip.mp4"
    shutil.copy(bikes, path)
    return path


def test_disk_and_memory_cache_hits(clip, tmp_path):
    cache_dir = tmp_path / "cache"
    first = preprocess(clip, nframes=4, cache_dir=str(cache_dir))
    assert first.cache_hit is None
    assert len(list(cache_dir.glob("*.npy"))) == 1
    again = preprocess(clip, nframes=4, cache_dir=str(cache_dir))
    assert again.cache_hit == "memory"
    clear_memory_cache()
    disk = preprocess(clip, nframes=4, cache_dir=str(cache_dir))
    assert disk.cache_hit == "disk"
    assert torch.equal(disk.frames, first.frames)
    # a different output dtype reuses the disk entry (same frames)
    half = preprocess(clip, nframes=4, cache_dir=str(cache_dir), dtype="float16")
    assert half.cache_hit == "disk" and torch.equal(half.frames.float(), first.frames)


def test_cache_invalidation_on_params_and_content(clip, tmp_path, bikes):
    cache_dir = str(tmp_path / "cache")
    preprocess(clip, nframes=4, cache_dir=cache_dir)
    assert preprocess(clip, nframes=6, cache_dir=cache_dir).cache_hit is None
    assert preprocess(clip, nframes=4, max_pixels=110000, cache_dir=cache_dir).cache_hit is None
    assert preprocess(clip, nframes=4, resize="swscale", cache_dir=cache_dir).cache_hit is None
    # new content at the same path (size and mtime change) is a miss
    from vt.testing import make_video

    make_video(clip, frames=30, width=64, height=48)
    os.utime(clip, (1, 1))
    fresh = preprocess(clip, nframes=4, cache_dir=cache_dir)
    assert fresh.cache_hit is None and fresh.frames.shape[-1] != 644


def test_no_cache_writes_nothing(clip, tmp_path):
    cache_dir = tmp_path / "cache"
    preprocess(clip, nframes=4, cache=False, cache_dir=str(cache_dir))
    assert not cache_dir.exists()
    assert preprocess(clip, nframes=4, cache=False).cache_hit is None


def test_disk_cache_is_trimmed_to_its_limit(clip, tmp_path):
    cache_dir = tmp_path / "cache"
    one = 4 * 280 * 644 * 3
    for n in (4, 6, 8):
        preprocess(clip, nframes=n, cache_dir=str(cache_dir), cache_max_bytes=int(one * 2.6))
    cache = DiskCache(cache_dir, int(one * 2.6))
    assert cache.size() <= one * 2.6
    assert len(cache.entries()) < 3


def test_memory_cache_lru_limits():
    cache = MemoryCache(max_entries=2, max_bytes=100)
    cache.put("a", 1, 10)
    cache.put("b", 2, 10)
    assert cache.get("a") == 1
    cache.put("c", 3, 10)  # evicts b (least recently used)
    assert cache.get("b") is None and cache.get("a") == 1
    cache.put("big", 4, 1000)  # larger than the whole cache: not kept
    assert cache.get("big") is None


def test_yaml_config_and_user_profiles(tmp_path, bikes):
    cfg_file = tmp_path / "vt.yaml"
    cfg_file.write_text(
        "video_processing:\n"
        "  profile: small-qwen\n"
        "  default_fps: 1.0\n"
        "  decoder_priority: [pyav, torchvision]\n"
        "  max_video_duration: 600\n"
        "models:\n"
        "  small-qwen:\n"
        "    base: qwen2.5-vl\n"
        "    max_context_tokens: 32768\n"
        "    min_tokens: 16\n"
        "    max_tokens: 64\n"
    )
    cfg = load_config(cfg_file, env={})
    assert cfg.fps == 1.0 and cfg.decoders == ("pyav",) and cfg.profile == "small-qwen"
    p = plan(bikes, cfg)
    assert p.nframes == 10 and p.tokens.max_context_tokens == 32768
    assert p.resized_height * p.resized_width <= 64 * 28 * 28
    # explicit arguments beat the file; nframes replaces the file's fps
    assert load_config(cfg_file, env={}, nframes=6).fps is None
    with pytest.raises(UsageError, match="unknown video_processing option"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("video_processing:\n  colour: blue\n")
        load_config(bad, env={})
    with pytest.raises(UsageError, match="invalid YAML"):
        broken = tmp_path / "broken.yaml"
        broken.write_text("video_processing: [unclosed\n")
        load_config(broken, env={})


def test_env_overrides(tmp_path):
    env = {
        "VT_QWEN_PROFILE": "qwen3-vl",
        "VT_QWEN_FPS": "0.5",
        "VT_QWEN_TOTAL_PIXELS": "1000000",
        "VT_QWEN_DECODERS": "decord,pyav",
        "VT_QWEN_NO_CACHE": "1",
        "VT_QWEN_MAX_DOWNLOAD": "10MB",
    }
    cfg = load_config(env=env)
    assert (cfg.profile, cfg.fps, cfg.total_pixels) == ("qwen3-vl", 0.5, 1000000.0)
    assert cfg.decoders == ("decord", "pyav") and cfg.cache is False
    assert cfg.max_download_bytes == 10 * 1024**2
    assert load_config(env=env, fps=3.0).fps == 3.0
    with pytest.raises(UsageError, match="VT_QWEN_FPS"):
        load_config(env={"VT_QWEN_FPS": "fast"})


def test_profiles_geometry():
    assert BUILTIN_PROFILES["qwen2.5-vl"].factor == 28
    assert BUILTIN_PROFILES["qwen3-vl"].factor == 32
    assert BUILTIN_PROFILES["llava"].max_context_tokens == 4096
    with pytest.raises(UsageError, match="unknown profile"):
        load_config(env={}, profile="gpt-9").get_profile()


def test_tokens_and_memory_estimates():
    r = count_tokens(BUILTIN_PROFILES["qwen2.5-vl"], 120, 560, 1008)
    assert r.grid_thw == (60, 40, 72) and r.total_tokens == 43200  # the anchors' example
    assert r.memory_bytes["fp32"] == 120 * 3 * 560 * 1008 * 4
    assert r.memory_bytes["bf16"] == r.memory_bytes["fp32"] // 2
    assert r.memory_bytes["int4"] == r.memory_bytes["int8"] // 2
    r3 = count_tokens(BUILTIN_PROFILES["qwen3-vl"], 10, 640, 1152)
    assert r3.grid_thw == (5, 40, 72) and r3.total_tokens == 3600


def test_context_limit_error_suggests_a_fitting_setting(bikes):
    with pytest.raises(UsageError, match=r"4096-token context: try --nframes \d+ or --max-pixels"):
        plan(bikes, profile="llava", nframes=64)
    p = plan(bikes, profile="llava")  # the profile's default (8 frames) fits
    assert p.nframes == 8 and p.tokens.total_tokens <= 4096
    assert plan(bikes, profile="llava", nframes=64, check_context=False).nframes == 64


def test_spec_yaml_keys_image_factor_and_total_pixels_ratio(tmp_path, bikes):
    cfg_file = tmp_path / "spec.yaml"
    cfg_file.write_text(
        "video_processing:\n"
        "  image_factor: 28\n"
        "  total_pixels_ratio: 0.9\n"
        "  min_pixels: 3584\n"
        "  max_pixels: 602112\n"
        "  batch_size: 32\n"
    )
    cfg = load_config(cfg_file, env={})
    assert cfg.factor == 28 and cfg.total_pixels_ratio == 0.9
    assert plan(bikes, cfg).resized_width == plan(bikes, min_pixels=3584).resized_width
    small = load_config(cfg_file, env={}, total_pixels_ratio=0.0001, min_pixels=3584)
    assert plan(bikes, small).resized_width < 644


def test_context_limit_in_fps_mode_suggests_an_fps(bikes):
    with pytest.raises(UsageError, match=r"try --fps [\d.]+ or --max-pixels \d+"):
        plan(bikes, profile="llava", fps=10.0, max_frames=200)


def test_suggested_settings_really_fit(bikes):
    import re

    with pytest.raises(UsageError) as info:
        plan(bikes, profile="llava", nframes=64)
    message = str(info.value)
    n = int(re.search(r"--nframes (\d+)", message).group(1))
    max_pixels = int(re.search(r"--max-pixels (\d+)", message).group(1))
    assert plan(bikes, profile="llava", nframes=n).tokens.total_tokens <= 4096
    assert (
        plan(bikes, profile="llava", nframes=n + 2, check_context=False).tokens.total_tokens > 4096
    )  # the largest that fits
    assert (
        plan(bikes, profile="llava", nframes=64, max_pixels=max_pixels).tokens.total_tokens <= 4096
    )


def test_bytes_inputs_are_cached_by_content(bikes, tmp_path):
    from pathlib import Path

    data = Path(bikes).read_bytes()
    cache_dir = str(tmp_path / "cache")
    assert preprocess(data, nframes=4, cache_dir=cache_dir).cache_hit is None
    clear_memory_cache()
    assert preprocess(data, nframes=4, cache_dir=cache_dir).cache_hit == "disk"


def test_suggestion_with_a_pixel_floor_fits_too(bikes, tmp_path):
    import re

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("models:\n  tiny-ctx: {base: qwen2.5-vl, max_context_tokens: 1000}\n")
    with pytest.raises(UsageError) as info:
        plan(bikes, load_config(cfg, env={}, profile="tiny-ctx", fps=2.0))
    message = str(info.value)
    pixels = re.search(r"--max-pixels (\d+)(?: --min-pixels (\d+))?", message)
    max_pixels, min_pixels = int(pixels.group(1)), pixels.group(2)
    overrides = {"max_pixels": max_pixels}
    if min_pixels:
        overrides["min_pixels"] = int(min_pixels)
    fitted = plan(bikes, load_config(cfg, env={}, profile="tiny-ctx", fps=2.0, **overrides))
    assert fitted.tokens.total_tokens <= 1000
    fps = float(re.search(r"--fps ([\d.]+)", message).group(1))
    assert (
        plan(bikes, load_config(cfg, env={}, profile="tiny-ctx", fps=fps)).tokens.total_tokens
        <= 1000
    )
