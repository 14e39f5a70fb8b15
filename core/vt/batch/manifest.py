"""Manifests: tables of jobs in JSON, JSON Lines, YAML, CSV, Arrow or Parquet, or a folder.

Every row has ``command`` (any vt command that reads an input and writes an output),
``input``, ``output`` and any of that command's options as further keys or columns, spelt as
the option (``pix-fmt``, ``pix_fmt`` and ``--pix-fmt`` are the same key). Relative paths are
relative to the manifest's folder. Everything is validated before the first job runs:
:class:`CommandTable` checks each row against the command's own parameters.

yaml and pyarrow are imported only when a manifest of that kind is read.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vt.batch.jobs import Job, derived_output, job_key, resolve_callable
from vt.errors import UsageError

FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".csv": "csv",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".parquet": "parquet",
    ".pq": "parquet",
}
EXTRAS = {
    "yaml": ("yaml", "pyyaml", "yaml"),
    "arrow": ("pyarrow", "pyarrow", "arrow"),
    "parquet": ("pyarrow", "pyarrow", "arrow"),
}
#: keys every row may carry besides the command's options
RESERVED = ("command", "input", "output")
#: commands that are not jobs: they manage vt itself
NOT_JOBS = frozenset(
    {
        "batch",
        "plugins",
        "list",
        "install",
        "uninstall",
        "decoders",
        "processors",
        "encoders",
        "models",
    }
)
#: what a folder of videos is made of (the containers vt reads)
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".ts",
        ".m2ts",
        ".mts",
        ".flv",
        ".nut",
        ".mxf",
        ".ogv",
        ".3gp",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".y4m",
    }
)
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def manifest_format(path: str | os.PathLike[str]) -> str:
    """``json``, ``jsonl``, ``yaml``, ``csv``, ``arrow`` or ``parquet``, from the suffix."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise UsageError(f"{Path(path).name}: not a manifest ({known}) or a folder") from None


def need(kind: str) -> Any:
    """Import the optional module a format needs, or say how to install it (exit 2)."""
    module, package, extra = EXTRAS[kind]
    try:
        return __import__(module)
    except ImportError:
        raise UsageError(f"{kind} manifests need {package}: pip install 'vt[{extra}]'") from None


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The manifest's rows as dicts; empty cells and nulls are left out (absent keys)."""
    path = Path(path)
    fmt = manifest_format(path)
    try:
        rows = _READERS[fmt](path)
    except UsageError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read manifest {path}: {exc}") from None
    except Exception as exc:  # a parser's own error: one line naming the file
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path.name}: not a valid {fmt} manifest: {text}") from None
    out = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise UsageError(f"{path.name} row {n}: not an object with command, input, output")
        out.append({str(k): v for k, v in row.items() if v is not None and v != ""})
    return out


def _json(path: Path) -> list[Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        data = data["jobs"]
    if not isinstance(data, list):
        raise UsageError(f'{path.name}: a manifest is a list of objects (or {{"jobs": [...]}})')
    return data


def _jsonl(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _yaml(path: Path) -> list[Any]:
    yaml = need("yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        data = data["jobs"]
    if not isinstance(data, list):
        raise UsageError(f"{path.name}: a manifest is a list of mappings (or jobs: [...])")
    return data


def _csv(path: Path) -> list[Any]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [dict(row) for row in csv.DictReader(f)]


def _arrow(path: Path) -> list[Any]:
    need("arrow")
    import pyarrow as pa
    import pyarrow.ipc

    try:
        with pa.memory_map(str(path)) as source:
            rows: list[Any] = pa.ipc.open_file(source).read_all().to_pylist()
    except pa.ArrowInvalid:  # the streaming flavour of the IPC format
        with pa.memory_map(str(path)) as source:
            rows = pa.ipc.open_stream(source).read_all().to_pylist()
    return rows


def _parquet(path: Path) -> list[Any]:
    need("parquet")
    import pyarrow.parquet as pq

    rows: list[Any] = pq.read_table(str(path)).to_pylist()
    return rows


_READERS = {
    "json": _json,
    "jsonl": _jsonl,
    "yaml": _yaml,
    "csv": _csv,
    "arrow": _arrow,
    "parquet": _parquet,
}


def _resolve(value: Any, base: str) -> str:
    # plain string operations: pathlib costs seconds on a 100k-row manifest
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if "://" in text or text.startswith("data:"):
        return text  # URLs stay as they are
    text = os.path.expanduser(text)
    path = os.path.normpath(text if os.path.isabs(text) else os.path.join(base, text))
    return path + os.sep if text.endswith(os.sep) else path  # "out/" means a folder of images


def jobs_from_rows(
    rows: Iterable[Mapping[str, Any]],
    base: str | os.PathLike[str] | None = None,
    *,
    command: str | None = None,
    name: str = "manifest",
) -> list[Job]:
    """Jobs from manifest rows (what a plugin passes for its own table).

    ``base`` is the folder relative paths are relative to (default: the current folder);
    ``command`` is used for rows without one. Output may be missing when the runner gets an
    ``output_dir``.
    """
    folder = os.path.abspath(base if base is not None else os.getcwd())
    jobs = []
    for n, row in enumerate(rows, 1):
        row = dict(row)
        cmd = row.pop("command", None) or command
        if not cmd:
            raise UsageError(f"{name} row {n}: no command (add a 'command' key or pass --command)")
        if "input" not in row:
            raise UsageError(f"{name} row {n}: missing the 'input' key")
        input_ = _resolve(row.pop("input"), folder)
        output = row.pop("output", None)
        jobs.append(
            Job(
                input=input_,
                output=_resolve(output, folder) if output is not None else None,
                command=str(cmd),
                options=row,
                row=n,
            )
        )
    return jobs


def read_manifest(path: str | os.PathLike[str], *, command: str | None = None) -> list[Job]:
    """Jobs from a manifest file; paths relative to its folder."""
    path = Path(path)
    return jobs_from_rows(read_rows(path), path.resolve().parent, command=command, name=path.name)


def jobs_from_folder(
    folder: str | os.PathLike[str],
    command: str,
    options: Mapping[str, Any] | None = None,
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> list[Job]:
    """One job per video under ``folder`` (recursively, sorted; hidden files skipped, and
    nothing under ``exclude``: an output folder inside the input folder is not input).

    Outputs are left to the runner's ``output_dir`` (named from input and key)."""
    root = Path(folder).resolve()
    skip = [Path(e).resolve() for e in exclude]
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and not any(p.is_relative_to(s) for s in skip)
    )
    if not files:
        raise UsageError(f"no videos in {folder} ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    return [
        Job(input=str(p), command=command, options=dict(options or {}), row=n)
        for n, p in enumerate(files, 1)
    ]


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs (later ones win; a repeated list option accumulates)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes key=value, got {pair!r}")
        key = key.strip()
        if key in out:
            prev = out[key]
            out[key] = [*(prev if isinstance(prev, list) else [prev]), value]
        else:
            out[key] = value
    return out


# -- validation against the commands -------------------------------------------------------------
def _norm(key: str) -> str:
    return key.lstrip("-").replace("-", "_")


class CommandInfo:
    """One command's parameters as a batch sees them: where input and output go, and how
    each option key becomes command-line text."""

    INPUT_NAMES = ("input", "inputs", "video", "videos", "file", "files", "source", "src")
    OUTPUT_NAMES = ("output", "out", "output_path", "dest")

    def __init__(self, name: str, command: Any) -> None:
        self.name, self.command = name, command
        params = list(command.params)
        self.arguments = [p for p in params if p.param_type_name == "argument"]
        by_name = {p.name: p for p in params}
        # click parameters, or None: problem() refuses such a command before any other use
        self.input: Any = next((by_name[n] for n in self.INPUT_NAMES if n in by_name), None) or (
            self.arguments[0] if self.arguments else None
        )
        self.output: Any = next((by_name[n] for n in self.OUTPUT_NAMES if n in by_name), None)
        self.keys: dict[str, Any] = {}
        for p in params:
            if p.param_type_name != "option" or p is self.output:
                continue
            self.keys[_norm(p.name)] = p
            for opt in p.opts:
                self.keys.setdefault(_norm(opt), p)
        self.json_flag = self._flag("--json")
        self.overwrite_flag = self._flag("--overwrite")
        self.single_thread_flag = self._flag("--single-thread")

    def _flag(self, opt: str) -> str | None:
        for p in self.command.params:
            if opt in getattr(p, "opts", ()) and getattr(p, "is_flag", False):
                return opt
        return None

    def problem(self) -> str | None:
        """Why this command cannot be a batch job, or None."""
        if self.input is None:
            return f"command {self.name!r} takes no input"
        if self.output is None:
            return f"command {self.name!r} writes no output file: it cannot run in a batch"
        others = [p.name for p in self.arguments if p is not self.input and p is not self.output]
        if others:
            return (
                f"command {self.name!r} takes arguments besides its input and output "
                f"({', '.join(others)}): it cannot run in a batch"
            )
        return None

    def option_args(self, options: Mapping[str, Any], where: str) -> tuple[str, ...]:
        """Options as command-line text, in a canonical order (sorted by parameter)."""
        chosen: dict[str, tuple[Any, Any]] = {}
        io_keys = {
            _norm(self.input.name),
            _norm(self.output.name),
            *(_norm(o) for o in getattr(self.output, "opts", ())),
        }
        for key, value in options.items():
            norm = _norm(key)
            param = self.keys.get(norm)
            if param is None:
                if norm in io_keys:
                    raise UsageError(
                        f"{where}: {key!r} is the job's input or output: use the "
                        "'input' and 'output' keys"
                    )
                close = difflib.get_close_matches(norm, list(self.keys), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(f"{where}: unknown option {key!r} for {self.name}{hint}")
            if param.name in chosen:
                raise UsageError(f"{where}: option {key!r} given twice")
            chosen[param.name] = (param, value)
        args: list[str] = []
        for name in sorted(chosen):
            param, value = chosen[name]
            args.extend(self._option(param, value, where))
        return tuple(args)

    def _option(self, param: Any, value: Any, where: str) -> list[str]:
        opt = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            flag = _bool(value, f"{where}: option {opt}")
            if flag:
                return [opt]
            secondary = getattr(param, "secondary_opts", None)
            if secondary:
                return [secondary[0]]
            if param.default in (None, False):
                return []
            raise UsageError(f"{where}: option {opt} cannot be turned off")
        if getattr(param, "multiple", False):
            return [text for item in _values(value) for text in (opt, item)]
        if isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: option {opt} takes one value, got a list")
        return [opt, _text(value)]

    def argv(
        self,
        input: str,
        output: str,
        args: Sequence[str],
        overwrite: bool,
        single_thread: bool = False,
    ) -> list[str]:
        """The whole command line after ``vt``: the command, its options, ``--``, then the
        positionals (so an input named ``-x.mp4`` is not read as an option).
        ``single_thread`` adds the command's ``--single-thread`` unless the job's own options
        already say (an execution choice, like ``--json``: not part of the job's key)."""
        options = list(args)
        if self.json_flag:
            options.append(self.json_flag)
        if overwrite and self.overwrite_flag:
            options.append(self.overwrite_flag)
        if single_thread and self.single_thread_flag and self.single_thread_flag not in args:
            options.append(self.single_thread_flag)
        positional = []
        for p in self.arguments:
            positional.append(input if p is self.input else output)
        if self.output.param_type_name == "option":
            opt = next((o for o in self.output.opts if o.startswith("--")), self.output.opts[0])
            options += [opt, output]
        return [self.name, *options, "--", *positional]

    def check(self, args: Sequence[str], where: str) -> None:
        """Let the command parse a job's options (types, choices, required values)."""
        argv = self.argv("input.mp4", "output.mp4", args, overwrite=False)[1:]
        try:
            self.command.make_context(self.name, argv, resilient_parsing=False)
        except Exception as exc:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise UsageError(f"{where}: {message}") from None


def _values(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:  # a list in a CSV cell, as JSON
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [_text(v) for v in parsed]
    return [_text(value)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"{what} takes true or false, got {value!r}")


class CommandTable:
    """The batchable commands of a vt CLI (built once; :meth:`validate` checks jobs)."""

    def __init__(self, group: Any | None = None) -> None:
        if group is None:
            import typer

            from vt.cli import create_app
            from vt.plugins import get_host

            group = typer.main.get_command(create_app(get_host()))  # every command built
        self.group: Any = group  # a click Group
        self._infos: dict[str, CommandInfo] = {}
        self._checked: set[tuple[str, tuple[str, ...]]] = set()

    def info(self, name: str, where: str) -> CommandInfo:
        if name in self._infos:
            return self._infos[name]
        command = self.group.commands.get(name) if name not in NOT_JOBS else None
        if command is None:
            names = [n for n in self.group.commands if n not in NOT_JOBS]
            close = difflib.get_close_matches(name, names, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (batch commands: {', '.join(sorted(names))})"
            )
            raise UsageError(f"{where}: unknown command {name!r}{hint}")
        info = CommandInfo(name, command)
        problem = info.problem()
        if problem:
            raise UsageError(f"{where}: {problem}")
        self._infos[name] = info
        return info

    def validate(self, job: Job, where: str, defaults: Mapping[str, Any] | None = None) -> None:
        """Check ``job`` and fill in ``job.args`` (its options as command-line text)."""
        info = self.info(str(job.command), where)
        options = {
            **{_norm(k): v for k, v in (defaults or {}).items()},
            **{_norm(k): v for k, v in job.options.items()},
        }
        job.args = info.option_args(options, where)
        signature = (info.name, job.args)
        if signature not in self._checked:  # rows usually share options: parse each set once
            info.check(job.args, where)
            self._checked.add(signature)


def prepare(
    jobs: list[Job],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    output_ext: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    base: Path | None = None,
    table: CommandTable | None = None,
    name: str = "manifest",
) -> list[Job]:
    """Validate every job, compute its key, derive missing outputs, refuse shared outputs.

    Raises ``UsageError`` (exit 2) with one line naming the first bad row.
    """
    import pickle

    out_dir = Path(output_dir).resolve() if output_dir is not None else None
    folder = os.fspath(base) if base is not None else os.getcwd()
    seen: dict[str, int] = {}
    resolved: set[str] = set()
    for n, job in enumerate(jobs, 1):
        job.row = job.row or n
        where = f"{name} row {job.row}"
        if job.command is not None and job.fn is not None:
            raise UsageError(f"{where}: give a command or a callable, not both")
        if job.command is not None:
            if table is None:
                table = CommandTable()
            table.validate(job, where, defaults)
            options_for_key = None
        elif job.fn is not None:
            if defaults:
                job.options = {**defaults, **job.options}
            if isinstance(job.fn, str):
                if job.fn not in resolved:
                    try:
                        resolve_callable(job.fn)
                    except Exception as exc:  # noqa: BLE001 - any import problem, one line
                        raise UsageError(f"{where}: cannot load {job.fn!r}: {exc}") from None
                    resolved.add(job.fn)
            else:
                try:  # workers are other processes: the callable must travel by reference
                    pickle.dumps(job.fn)
                except Exception:
                    raise UsageError(
                        f"{where}: the callable must be a module-level function "
                        "(or 'module:function')"
                    ) from None
            options_for_key = job.options
        else:
            raise UsageError(f"{where}: no command")
        job.input = _resolve(job.input, folder)  # workers may run elsewhere: absolute paths
        job.key = job_key(job.target, job.input, job.args, options_for_key, base)
        if job.output is None:
            if out_dir is None:
                raise UsageError(f"{where}: no output (add an 'output' key or pass --output-dir)")
            job.output = derived_output(str(job.input), job.key, out_dir, output_ext)
        output = _resolve(job.output, folder)
        job.output = output
        if output in seen:
            raise UsageError(
                f"{name} rows {seen[output]} and {job.row} write the same output {output}"
            )
        seen[output] = job.row
    return jobs
