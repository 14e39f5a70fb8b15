"""``vt cogvideo batch``: many generations from a jobs file, on the core's batch runner.

Each job is a mapping of ``generate``'s options (``image``, ``prompt``, ``output``, ``seed``,
``lora``…). The runner (``vt.batch.run_batch``) runs :func:`generate_job` in long-lived
worker processes; each worker keeps one :class:`Generator` per model, so the pipeline loads
once per worker and each LoRA once per pipeline. The runner records every job's status
(done/failed/skipped, error, timings, score) in the status table as it lands, a failing job
does not stop the others, and a rerun skips jobs whose output is complete with the same
settings (its done marker).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import UsageError
from vt_cogvideo.jobspec import load_entries, parse_entry

if TYPE_CHECKING:  # pragma: no cover
    from vt.batch import BatchReport
    from vt_cogvideo.config import Settings
    from vt_cogvideo.generation import Generator

JOB_FN = "vt_cogvideo.batch:generate_job"
#: this worker process's generators, by (model, device, dtype, compile): loaded once each
_GENERATORS: dict[tuple[Any, ...], Generator] = {}


def worker_generator(
    model: str, device: str, dtype: str | None, compile: bool, max_pipelines: int
) -> Generator:
    from vt_cogvideo.generation import Generator

    key = (model, device, dtype, compile, max_pipelines)
    gen = _GENERATORS.get(key)
    if gen is None:
        gen = _GENERATORS[key] = Generator(
            model, device, dtype=dtype, compile=compile, max_pipelines=max_pipelines
        )
    return gen


def _vt_sidecar(path: Path) -> bool:
    """Whether ``path`` is a sidecar vt-cogvideo wrote (so a rerun may replace it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("metadata") or {}).get("generator") == "vt-cogvideo"


def generate_job(input: str, output: str, **options: Any) -> dict[str, Any]:
    """One job in a worker: generate ``input`` (the image) into ``output`` (a temporary name
    the runner renames); returns the status table's report for the row."""
    from vt_cogvideo.generation import GenerationRequest

    engine = {**options.pop("_generator"), "model": options.pop("model")}
    sidecar = Path(options.pop("_sidecar"))
    final = options.pop("_output")
    gen = worker_generator(**engine)
    loads_before = gen.loads
    request = GenerationRequest(image=input, **options)
    overwrite_sidecar = sidecar.is_file() and _vt_sidecar(sidecar)
    if sidecar.exists() and not overwrite_sidecar:
        raise UsageError(f"sidecar exists and was not written by vt: {sidecar}")
    result = gen.generate(request, output, overwrite=True, sidecar=sidecar)
    # the sidecar names the final output, not the runner's temporary one
    data = json.loads(sidecar.read_text())
    data["output"] = final
    from vt.atomic import atomic_file

    with atomic_file(sidecar, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return {
        "output": final,
        "sidecar": str(sidecar),
        "seed": result.seed,
        "temporal_score": result.temporal_score,
        "frames": result.frames,
        "width": result.width,
        "height": result.height,
        "fps": result.fps,
        "timings": result.timings,
        "peak_memory_bytes": result.peak_memory_bytes,
        "mode": request.mode,
        "lora": result.metadata.get("lora"),
        "pipeline_loaded": gen.loads > loads_before,
        "pipeline_loads": gen.loads,
    }


@dataclass
class BatchJobs:
    """The jobs of a jobs file, ready for ``run_batch`` (each with its final output)."""

    jobs: list[Any]
    outputs: list[Path]


def _derived_name(image: str, fields: dict[str, Any]) -> str:
    """``<image stem>-<8 hex of the settings>.mp4``: one output per distinct job."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
    return f"{Path(image).stem}-{digest.hexdigest()[:8]}.mp4"


def build_jobs(
    jobs_file: Path,
    output_dir: Path,
    settings: Settings,
    *,
    mode: str | None,
    model: str | None,
    device: str | None,
) -> BatchJobs:
    """Jobs from ``jobs_file`` (JSON or YAML list): each entry's options over ``--mode`` and
    the inference config. Structural mistakes are usage errors naming the entry, before
    anything runs; a missing image or a bad LoRA fails that job only."""
    from vt.batch import Job

    entries = load_entries(jobs_file, "jobs file", "jobs")
    base = jobs_file.resolve().parent
    jobs, outputs = [], []
    for row, entry in enumerate(entries, 1):
        where = f"{jobs_file.name} job {row}"
        fields, extras = parse_entry(entry, where, base=base)
        if mode is not None and "mode" not in fields:
            fields["mode"] = mode
        image = str(fields.pop("image"))
        request_fields = settings.request_defaults(fields)
        name = extras.get("output") or _derived_name(image, request_fields)
        out = Path(str(name)).expanduser()
        out = out if out.is_absolute() else output_dir / out
        if out.suffix.lower() in ("", ".json"):
            raise UsageError(f"{where}: output must be a video file (.mp4, .mkv…), got {name}")
        m = settings.model
        engine = {
            "device": device or m.device,
            "dtype": m.dtype,
            "compile": m.compile,
            "max_pipelines": m.max_pipelines,
        }
        # "model" on top: the runner groups and places jobs by it (GPU hint, Ray pools)
        options = {
            **request_fields,
            "model": str(extras.get("model") or model or m.model),
            "_generator": engine,
            "_output": str(out.resolve()),
            "_sidecar": str(out.resolve().with_suffix(".json")),
        }
        jobs.append(Job(image, str(out), fn=JOB_FN, options=options, row=row))
        outputs.append(out)
    return BatchJobs(jobs, outputs)


def run_jobs(
    batch: BatchJobs,
    *,
    status: Path,
    workers: int,
    retries: int,
    overwrite: bool,
    progress: Any = None,
) -> BatchReport:
    from vt.batch import run_batch

    for out in batch.outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    return run_batch(
        batch.jobs,
        workers=workers,
        retries=retries,
        status=status,
        overwrite=overwrite,
        progress=progress,
        name="jobs file",
    )
