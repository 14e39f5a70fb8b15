"""Device resolution: 'auto' on a machine without a GPU needs no torch import."""

from __future__ import annotations

import sys

import pytest

from vt.models import devices


def test_no_gpu_device_node_means_no_cuda_without_importing_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(devices.glob, "glob", lambda pattern: [])
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # restored after the test
    assert devices.no_gpu_device_nodes()
    assert devices.cuda_available() is False
    assert devices.resolve_device("auto") == "cpu"
    assert "torch" not in sys.modules


def test_a_gpu_device_node_leaves_the_answer_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(
        devices.glob, "glob", lambda pattern: ["/dev/nvidiactl"] if "nvidiactl" in pattern else []
    )
    assert not devices.no_gpu_device_nodes()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.cuda_available() is True


# -- dtype "auto" ---------------------------------------------------------------------------
_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni
bogomips\t: 5192.24

processor\t: 1
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni
"""


def test_cpu_flags_come_from_the_first_flags_line() -> None:
    flags = devices.cpu_flags(_CPUINFO)
    assert {"avx2", "avx512_bf16", "avx512_vnni"} <= flags and "bogomips" not in flags
    assert devices.cpu_flags("processor\t: 0\n") == frozenset()


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        (_CPUINFO, True),
        (_CPUINFO.replace("avx512_bf16", "avx512bw"), False),
        ("flags\t\t: sse2 amx_bf16 amx_tile\n", True),
        (None, False),  # unreadable (not Linux, no /proc)
    ],
)
def test_native_bf16_is_read_from_proc_cpuinfo(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: str | None, native: bool
) -> None:
    import io

    def fake_open(path: str, *args: object, **kwargs: object) -> io.StringIO:
        assert path == "/proc/cpuinfo"
        if cpuinfo is None:
            raise FileNotFoundError(path)
        return io.StringIO(cpuinfo)

    monkeypatch.setattr(devices, "open", fake_open, raising=False)
    devices.cpu_has_native_bf16.cache_clear()
    try:
        assert devices.cpu_has_native_bf16() is native
    finally:
        monkeypatch.undo()
        devices.cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_is_bf16_only_on_a_native_cpu_for_a_backend_that_runs_it(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    both = ("fp32", "bf16")
    assert devices.resolve_dtype("auto", "cpu", both) == ("bf16" if native else "fp32")
    assert devices.resolve_dtype(None, "cpu", both) == ("bf16" if native else "fp32")
    assert devices.resolve_dtype(" AUTO ", "cpu", both) == ("bf16" if native else "fp32")
    assert devices.resolve_dtype("auto", "cpu", ("fp32", "fp16")) == "fp32"  # onnxruntime
    assert devices.resolve_dtype("auto", "cuda:0", both) == "fp32"  # GPUs: not decided here
    # what the caller names passes through (the model checks it)
    assert devices.resolve_dtype("fp32", "cpu", both) == "fp32"
    assert devices.resolve_dtype("fp16", "cpu", both) == "fp16"
