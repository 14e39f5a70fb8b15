"""``vt cogvideo validate``: generate each scenario (with a LoRA), score temporal
consistency, write a CSV and a Markdown report; scenarios below the threshold fail."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vt.errors import UsageError, VtError
from vt_cogvideo.config import Settings
from vt_cogvideo.jobspec import load_entries, parse_entry

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
REPORT_COLUMNS = (
    "name",
    "status",
    "temporal_score",
    "threshold",
    "seed",
    "lora",
    "generate_s",
    "total_s",
    "output",
    "error",
)


@dataclass
class Scenario:
    name: str
    image: str
    fields: dict[str, Any]


@dataclass
class ScenarioResult:
    name: str
    status: str  # pass | fail (below the threshold) | error (could not generate)
    temporal_score: float | None
    threshold: float
    seed: int | None
    lora: str | None
    generate_s: float | None
    total_s: float | None
    output: str | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_scenarios(path: Path) -> list[Scenario]:
    entries = load_entries(path, "scenarios file", "scenarios")
    base = path.resolve().parent
    scenarios, names = [], set()
    for n, entry in enumerate(entries, 1):
        where = f"{path.name} scenario {n}"
        fields, extras = parse_entry(entry, where, base=base)
        name = str(extras.get("name") or "").strip()
        if not name:
            raise UsageError(f"{where}: no name")
        if not _NAME.match(name):
            raise UsageError(
                f"{where}: name {name!r} must be letters, digits, . _ - (it names the clip)"
            )
        if name in names:
            raise UsageError(f"{where}: name {name!r} used twice")
        names.add(name)
        if extras.get("output") or extras.get("model"):
            raise UsageError(
                f"{where}: output and model are set for the whole run, not per scenario"
            )
        scenarios.append(Scenario(name, str(fields.pop("image")), fields))
    return scenarios


def run_validation(
    scenarios: list[Scenario],
    settings: Settings,
    generator: Any,
    *,
    lora: str | None,
    lora_scale: float | None,
    threshold: float,
    output_dir: Path,
    overwrite: bool,
    on_result: Callable[[ScenarioResult, int, int], None] | None = None,
) -> list[ScenarioResult]:
    """Generate every scenario; one that cannot be generated is an ``error`` row, the others
    go on."""
    from vt_cogvideo.generation import GenerationRequest, sidecar_path

    outputs = [output_dir / f"{s.name}.mp4" for s in scenarios]
    if not overwrite:  # refuse before minutes of generation, not after
        reports = [output_dir / f"validation_report.{ext}" for ext in ("csv", "md")]
        for path in [p for out in outputs for p in (out, sidecar_path(out))] + reports:
            if path.exists():
                raise UsageError(f"output exists: {path} (use --overwrite to replace it)")
    results = []
    for i, (scenario, out) in enumerate(zip(scenarios, outputs), 1):
        given = dict(scenario.fields)
        if lora is not None and "lora" not in given:
            given["lora"] = lora
        if lora_scale is not None and "lora_scale" not in given:
            given["lora_scale"] = lora_scale
        started = time.perf_counter()
        used_lora = given.get("lora")
        try:
            request = GenerationRequest(
                image=scenario.image, prompt=given.pop("prompt"), **settings.request_defaults(given)
            )
            r = generator.generate(request, out, overwrite=overwrite)
            status = "pass" if r.temporal_score >= threshold else "fail"
            row = ScenarioResult(
                scenario.name,
                status,
                r.temporal_score,
                threshold,
                r.seed,
                r.metadata.get("lora"),
                r.timings["generate_s"],
                r.timings["total_s"],
                str(r.output),
            )
        except VtError as exc:
            row = ScenarioResult(
                scenario.name,
                "error",
                None,
                threshold,
                given.get("seed"),
                str(used_lora) if used_lora else None,
                None,
                round(time.perf_counter() - started, 3),
                None,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
        results.append(row)
        if on_result is not None:
            on_result(row, i, len(scenarios))
    return results


def csv_text(results: list[ScenarioResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if v is None else v) for k, v in r.as_dict().items()})
    return buffer.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_text(
    results: list[ScenarioResult], *, threshold: float, lora: str | None, model: str
) -> str:
    passed = sum(r.status == "pass" for r in results)
    lines = [
        "# CogVideoX validation report",
        "",
        f"- model: `{model}`",
        f"- LoRA: `{lora}`" if lora else "- LoRA: none",
        f"- threshold: temporal consistency >= {threshold}",
        f"- result: {passed} of {len(results)} scenarios passed",
        "",
        "| scenario | result | temporal score | seed | generate (s) | output | error |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    r.name,
                    r.status.upper(),
                    r.temporal_score,
                    r.seed,
                    r.generate_s,
                    Path(r.output).name if r.output else None,
                    r.error,
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_reports(
    results: list[ScenarioResult],
    output_dir: Path,
    *,
    threshold: float,
    lora: str | None,
    model: str,
    overwrite: bool,
) -> tuple[Path, Path]:
    from vt.atomic import atomic_file

    csv_path = output_dir / "validation_report.csv"
    md_path = output_dir / "validation_report.md"
    for path, text in (
        (csv_path, csv_text(results)),
        (md_path, markdown_text(results, threshold=threshold, lora=lora, model=model)),
    ):
        with atomic_file(path, overwrite=overwrite) as tmp:
            tmp.write_text(text)
    return csv_path, md_path
