"""``vt cogvideo check``: is this machine ready to generate? (the spec's ``test_setup``)

torch, CUDA, the GPU's name and memory, dtype support, whether model CPU offload is possible,
and whether the pipeline loads from the given model. Each check is a line; a failed one makes
the command exit 1 with its reason.
"""

from __future__ import annotations

import importlib.util
import platform
import time
from dataclasses import dataclass, field
from typing import Any

from vt.errors import VtError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def environment_checks() -> list[Check]:
    checks = [Check("python", True, platform.python_version())]
    for package in ("torch", "diffusers", "transformers", "accelerate", "peft"):
        v = _version(package)
        required = package in ("torch", "diffusers", "transformers")
        checks.append(
            Check(
                package,
                v is not None or not required,
                v or ("not installed" + (" (LoRA needs it)" if package == "peft" else "")),
                {"version": v},
            )
        )
    if _version("torch") is None:
        return checks
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        gib = props.total_memory / 2**30
        checks.append(
            Check(
                "cuda",
                True,
                f"{torch.version.cuda}, {torch.cuda.device_count()} device(s)",
                {"version": torch.version.cuda, "devices": torch.cuda.device_count()},
            )
        )
        checks.append(
            Check(
                "gpu",
                True,
                f"{props.name}, {gib:.1f} GiB",
                {"name": props.name, "memory_bytes": int(props.total_memory)},
            )
        )
        bf16 = bool(torch.cuda.is_bf16_supported())
        checks.append(
            Check(
                "dtypes",
                True,
                f"fp32, fp16, bf16 {'yes' if bf16 else 'no'}",
                {"bf16": bf16, "fp16": True},
            )
        )
    else:
        checks.append(
            Check(
                "cuda",
                True,
                "not available: generation runs on the CPU in fp32 "
                "(minutes per step for the 5B model)",
                {"version": None},
            )
        )
        checks.append(
            Check(
                "dtypes",
                True,
                "fp32 (bf16 exists on the CPU but is slow)",
                {"bf16": False, "fp16": False},
            )
        )
    accelerate = importlib.util.find_spec("accelerate") is not None
    offload = cuda and accelerate
    reason = (
        "model CPU offload possible"
        if offload
        else "model CPU offload needs CUDA"
        if not cuda
        else "model CPU offload needs accelerate"
    )
    checks.append(Check("offload", True, reason, {"possible": offload}))
    return checks


def model_checks(
    settings: Any, *, model: str | None, device: str | None, mode: str, load: bool
) -> list[Check]:
    """Read the model's configs; then load the pipeline in ``mode`` unless ``load`` is off."""
    checks = []
    try:
        gen = settings.generator(model=model, device=device)
        spec = gen.spec
    except VtError as exc:
        return [Check("model", False, str(exc).splitlines()[0])]
    checks.append(
        Check(
            "model",
            True,
            f"{spec.name}: {spec.width}x{spec.height}, "
            f"{spec.frames} frames"
            + (" (fixed by learned positional embeddings)" if spec.learned_positions else ""),
            spec.as_dict(),
        )
    )
    if not load:
        return checks
    started = time.perf_counter()
    try:
        loaded, _ = gen.pipeline(mode)
    except VtError as exc:
        checks.append(Check("pipeline", False, str(exc).splitlines()[0]))
        return checks
    seconds = time.perf_counter() - started
    info = loaded.describe()
    checks.append(
        Check(
            "pipeline",
            True,
            f"loads in {seconds:.1f} s ({mode}: {info['dtype']} "
            f"on {info['device']}, offload {info['offload']})",
            info,
        )
    )
    for note in gen.notes:
        checks.append(Check("note", True, note))
    gen.close()
    return checks
