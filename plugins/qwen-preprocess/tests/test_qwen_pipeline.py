"""Pipeline behaviour: decoder fallback, bounded memory (only sampled frames, small batches),
and a decode thread that ends with the run."""

from __future__ import annotations

import pytest
from qwen_test_helpers import needs_decoder

from vt.errors import InputError
from vt_qwen_preprocess import preprocess


@needs_decoder("torchcodec")
def test_falls_back_to_the_next_decoder_when_one_fails_mid_decode(bikes, monkeypatch):
    from vt.media.decoders import optional_readers

    def broken(self, indices):
        raise RuntimeError("simulated decoder crash")

    monkeypatch.setattr(optional_readers.TorchcodecReader, "_get", broken)
    result = preprocess(bikes, nframes=4, cache=False, decoders=("torchcodec", "pyav"))
    assert result.decoder == "pyav" and result.frames.shape[0] == 4
    with pytest.raises(InputError, match="simulated decoder crash"):
        preprocess(bikes, nframes=4, cache=False, decoders=("torchcodec",))


def test_only_sampled_frames_are_requested_in_small_batches(bikes, monkeypatch):
    from vt.media.decoders.pyav_reader import PyAVReader

    calls = []
    original = PyAVReader.frames_at

    def spy(self, indices, **kw):
        indices = list(indices)
        calls.append((indices, kw.get("batch_size", 1), kw.get("size")))
        for batch in original(self, indices, **kw):
            assert len(batch) <= 4
            yield batch

    monkeypatch.setattr(PyAVReader, "frames_at", spy)
    result = preprocess(bikes, fps=2.0, cache=False, decoders=("pyav",))
    assert len(calls) == 1
    indices, batch_size, _ = calls[0]
    assert indices == result.plan.indices and batch_size <= 4


def _decode_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "vt-qwen-decode" and t.is_alive()]


def test_the_decode_thread_ends_with_the_run(bikes, monkeypatch):
    # the prefetch itself is the core's (tests/test_media_helpers.py); here: qwen stops it
    from vt_qwen_preprocess import pipeline

    preprocess(bikes, nframes=8, cache=False, decoders=("pyav",))
    assert _decode_threads() == []
    real = pipeline.make_resizer

    def failing_resizer(*args):
        resize, calls = real(*args), []

        def resize_or_fail(frame):
            calls.append(1)
            if len(calls) == 3:
                raise InputError("resize failed mid-stream")
            return resize(frame)

        return resize_or_fail

    monkeypatch.setattr(pipeline, "make_resizer", failing_resizer)
    with pytest.raises(InputError, match="resize failed mid-stream"):
        preprocess(bikes, nframes=8, cache=False, decoders=("pyav",))
    assert _decode_threads() == []
