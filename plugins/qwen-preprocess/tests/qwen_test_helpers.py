"""Helpers for the vt-qwen-preprocess tests (a uniquely named module, importable from tests)."""

from __future__ import annotations

import pytest

from vt.media.decoders.optional_readers import decord_available, torchcodec_available

DECODER_REASONS = {"torchcodec": torchcodec_available(), "decord": decord_available(), "pyav": None}


def needs_decoder(name: str):
    """Skip marker for tests that need an optional decoder backend."""
    reason = DECODER_REASONS.get(name)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
