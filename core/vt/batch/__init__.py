"""``vt.batch``: one batch runner for every command and plugin, on this machine or on Ray.

Jobs (a vt command or a Python callable, an input, an output, options) go in; one result per
job comes out (``done``, ``failed`` or ``skipped``, the error, timings, the job's own
report). Plugins reuse it for their own tables::

    from vt.batch import Job, jobs_from_rows, run_batch

    report = run_batch(jobs_from_rows(rows, base=folder, command="upscale"), workers=2)
    report = run_batch([Job("a.mp4", "a.npz", fn="my_plugin.jobs:extract")], retries=2)

Names load on first use (``vt --help`` imports only the command's signature), and nothing
imports Ray, pyarrow or yaml until a run or a manifest needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DONE": "jobs",
    "FAILED": "jobs",
    "PENDING": "jobs",
    "SKIPPED": "jobs",
    "Job": "jobs",
    "JobResult": "jobs",
    "jobs_from_folder": "manifest",
    "jobs_from_rows": "manifest",
    "read_manifest": "manifest",
    "read_rows": "manifest",
    "BatchReport": "runner",
    "Counts": "runner",
    "JobProgressFn": "runner",
    "ProgressFn": "runner",
    "parse_shard": "runner",
    "run_batch": "runner",
    "read_status": "status",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401 - re-exported names, loaded lazily below
    from vt.batch.jobs import DONE, FAILED, PENDING, SKIPPED, Job, JobResult
    from vt.batch.manifest import jobs_from_folder, jobs_from_rows, read_manifest, read_rows
    from vt.batch.runner import (
        BatchReport,
        Counts,
        JobProgressFn,
        ProgressFn,
        parse_shard,
        run_batch,
    )
    from vt.batch.status import read_status


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vt.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vt.batch.{module}"), name)
    globals()[name] = value
    return value
