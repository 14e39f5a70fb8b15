"""``vt batch MANIFEST``: run a manifest (or a folder of videos) through any vt command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vt.errors import UsageError, VtError

ENGINE_PANEL = "Engine"


def batch(
    source: Annotated[
        str,
        typer.Argument(
            help="A manifest (.json, .jsonl, .yaml, .csv, .arrow, .parquet) with command, input, "
            "output and option keys per row; or a folder of videos (with --command and "
            "--output-dir)."
        ),
    ],
    command: Annotated[
        str | None,
        typer.Option("--command", help="The command for rows without one (and for a folder)."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-O",
            help="Where rows without an output write: "
            "DIR/<input stem>-<key><ext>, the key made from input and parameters.",
        ),
    ] = None,
    output_ext: Annotated[
        str | None,
        typer.Option("--output-ext", help="Extension of derived outputs (default: the input's)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="An option for every job, as key=value (repeatable; a row's own "
            "value wins), e.g. --set preset=ultrafast --set encoder_option=threads=1.",
        ),
    ] = None,
    status: Annotated[
        Path | None,
        typer.Option(
            "--status",
            help="Status table (default: <manifest>.status.<ext> beside the "
            "manifest; format from the suffix).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            help="Jobs at once (default: one per GPU, else 1; Ray: as many "
            "as the cluster's CPUs allow).",
        ),
    ] = None,
    single_thread: Annotated[
        bool | None,
        typer.Option(
            "--single-thread/--no-single-thread",
            help="Run each job on one core (one decoder "
            "and encoder thread). Default: yes when the jobs running at once are at least as "
            "many as the cores (on Ray: when a job asks for at most one CPU), else no.",
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries of a failing job before it is marked failed.")
    ] = 1,
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="Run shard i of n (i/n, 0 <= i < n): rows i+1, i+1+n, …"),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            "-y",
            help="Replace outputs that vt batch did not write (outputs it "
            "did write are replaced when their parameters change).",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="local (worker processes here) or ray.", rich_help_panel=ENGINE_PANEL
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray).",
            rich_help_panel=ENGINE_PANEL,
        ),
    ] = None,
    cpus_per_job: Annotated[
        float,
        typer.Option(
            "--cpus-per-job", help="Ray: CPUs each actor asks for.", rich_help_panel=ENGINE_PANEL
        ),
    ] = 1.0,
    gpus_per_job: Annotated[
        float | None,
        typer.Option(
            "--gpus-per-job",
            help="Ray: GPUs each actor asks for (default: 1 for jobs with a "
            "model, --ai or a CUDA device when the cluster has GPUs, else 0).",
            rich_help_panel=ENGINE_PANEL,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and say what would run; run nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Run many jobs (any vt command over a table of inputs) on worker processes or Ray.

    Finished jobs are skipped on a rerun; a failing job is retried, then recorded as failed.
    The status table is rewritten after every job. Exit 1 when any job failed.
    """
    from vt.batch.manifest import jobs_from_folder, manifest_format, parse_settings, read_manifest
    from vt.batch.runner import parse_shard, run_batch
    from vt.batch.status import default_status_path

    path = Path(source).expanduser()
    shard_ = parse_shard(shard)
    defaults = parse_settings(settings or [])
    if path.is_dir():
        if not command or output_dir is None:
            raise UsageError("a folder of videos needs --command and --output-dir")
        jobs = jobs_from_folder(path, command, exclude=[output_dir])
        base, fmt, name = path.resolve(), "csv", path.name
        part = f".shard-{shard_[0]}-of-{shard_[1]}" if shard_ else ""
        default_status = output_dir / f"{path.resolve().name}.status{part}.csv"
        output_dir.mkdir(parents=True, exist_ok=True)
    elif path.exists():
        fmt = manifest_format(path)
        jobs = read_manifest(path, command=command)
        base, name = path.resolve().parent, path.name
        default_status = default_status_path(path, fmt, shard_)
    else:
        raise UsageError(f"manifest not found: {source}")
    status_path = status or default_status
    try:
        status_fmt = manifest_format(status_path) if status else fmt
    except UsageError:
        raise UsageError(
            f"--status {status}: use .json, .jsonl, .yaml, .csv, .arrow or .parquet"
        ) from None
    progress, bar = _progress(quiet or as_json)
    try:
        with bar:
            report = run_batch(
                jobs,
                workers=workers,
                retries=retries,
                engine=engine,
                address=address,
                status=status_path,
                status_format=status_fmt,
                shard=shard_,
                overwrite=overwrite,
                output_dir=output_dir,
                output_ext=output_ext,
                defaults=defaults,
                base=base,
                progress=progress,
                cpus_per_job=cpus_per_job,
                gpus_per_job=gpus_per_job,
                dry_run=dry_run,
                name=name,
                single_thread=single_thread,
            )
    except KeyboardInterrupt:
        typer.echo(
            f"vt: interrupted; finished jobs are recorded in {status_path} and are "
            "skipped when you run the batch again",
            err=True,
        )
        raise typer.Exit(130) from None
    if dry_run:
        _dry_run(report, as_json)
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    elif not quiet:
        typer.echo(f"{report.summary()}; status: {status_path}")
    if report.failed:
        failures = [r for r in report.results if r.status == "failed"]
        if not as_json:
            for r in failures[:10]:
                typer.echo(f"vt: row {r.row} ({r.input}): {r.error}", err=True)
            if len(failures) > 10:
                typer.echo(f"vt: … and {len(failures) - 10} more (see {status_path})", err=True)
        raise VtError(
            f"{report.failed} of {report.counts.total} jobs failed (status: {status_path})"
        )


def _dry_run(report: Any, as_json: bool) -> None:
    to_run = report.pending
    data = {
        "jobs": report.counts.total,
        "to_run": to_run,
        "skipped": report.skipped,
        "refused": report.failed,
        "status": str(report.status_path),
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(
        f"{data['jobs']} jobs: {to_run} to run, {report.skipped} finished before, "
        f"{report.failed} refused (outputs vt did not write)"
    )
    for r in report.results:
        if r.status == "failed":
            typer.echo(f"vt: row {r.row}: {r.error}", err=True)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(silent: bool) -> tuple[Any, Any]:
    """A Rich progress bar over jobs on a terminal (stderr), else nothing."""
    import sys

    if silent or not sys.stderr.isatty():
        return None, _NoBar()  # before importing rich: a pipe or a log shows no bar
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        return None, _NoBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "[green]{task.fields[done]} done[/] [red]{task.fields[failed]} "
            "failed[/] {task.fields[skipped]} skipped"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task("batch", total=None, done=0, failed=0, skipped=0)

    def update(result: Any, counts: Any) -> None:
        bar.update(
            task,
            total=counts.total,
            completed=counts.finished,
            done=counts.done,
            failed=counts.failed,
            skipped=counts.skipped,
        )
        if result.status == "failed":
            from rich.markup import escape

            bar.console.print(
                f"[red]row {result.row}[/] ({escape(result.input)}): {escape(str(result.error))}",
                highlight=False,
            )

    return update, bar
