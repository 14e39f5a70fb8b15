"""Pipeline behaviour: decoder fallback, bounded memory (only sampled frames, small batches,
bounded prefetch), and errors from the decode thread."""

from __future__ import annotations

import pytest

from vt.errors import InputError
from qwen_test_helpers import needs_decoder
from vt_qwen_preprocess import preprocess
from vt_qwen_preprocess.pipeline import prefetch


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


def test_prefetch_is_bounded_and_forwards_errors():
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for item in prefetch(source(), depth=2):
        seen.append(item)
        assert len(produced) - len(seen) <= 3  # queue depth + the item in hand
    assert seen == list(range(50))

    def failing():
        yield 1
        raise InputError("broken stream")

    with pytest.raises(InputError, match="broken stream"):
        list(prefetch(failing()))


def test_prefetch_stops_its_thread_when_abandoned():
    import threading

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    gen = prefetch(endless(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert not any(t.name == "vt-qwen-decode" and t.is_alive() for t in threading.enumerate())
