"""The ``vt`` command line: built by ``create_app()`` from the loaded plugins.

Nothing is attached at import time; every call of ``create_app`` builds a fresh Typer app.
With an explicit host (tests) every command is mounted at once. Without one (the ``vt``
program) the plugin commands come from the command index (``vt.command_index``): listed
without importing any plugin, and each built only when it runs.
"""

import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from vt import __version__
from vt.command_index import IndexEntry
from vt.errors import UsageError, VtError
from vt.registry import CommandSpec

if TYPE_CHECKING:  # pragma: no cover
    from vt.plugins import PluginHost

LIST_KINDS = ("decoders", "processors", "encoders", "models", "commands")


def _debug_enabled(args: Sequence[str] | None) -> bool:
    return bool(os.environ.get("VT_DEBUG")) or "--debug" in (args or sys.argv[1:])


class VtGroup(TyperGroup):
    """Maps errors to one line and an exit code: 1 runtime, 2 usage, 130 interrupted.

    Commands in ``lazy`` are listed from the command index and built when they run.
    """

    lazy: dict[str, IndexEntry]

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [n for n in getattr(self, "lazy", {}) if n not in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        entry = getattr(self, "lazy", {}).get(cmd_name)
        if command is None and entry is not None:  # listing help: name and help line only
            return TyperCommand(name=cmd_name, help=entry.help, short_help=entry.help)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # the command line after ``vt``: segment workers re-run it (vt.media.segments)
        ctx.meta.setdefault("vt.argv", list(args))
        name = args[0] if args else None
        entry = getattr(self, "lazy", {}).get(name or "")
        if entry is not None and name not in self.commands:
            self.commands[name] = _build_command(entry)  # type: ignore[index]
        return super().resolve_command(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        *pargs: Any,
        **kwargs: Any,
    ) -> Any:
        try:
            return super().main(args, prog_name, *pargs, **kwargs)
        except VtError as exc:
            if _debug_enabled(args):
                traceback.print_exc()
            typer.echo(f"vt: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # an unexpected failure: still one line unless --debug
            if _debug_enabled(args):
                traceback.print_exc()
            else:
                typer.echo(
                    f"vt: error: {type(exc).__name__}: {exc} (run with --debug for details)",
                    err=True,
                )
            sys.exit(1)


class _RichLogHandler(logging.Handler):
    """Rich's log handler, imported on the first message (most runs log nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._inner is None:
            from rich.console import Console
            from rich.logging import RichHandler

            self._inner = RichHandler(
                console=Console(stderr=True), show_time=False, show_path=False, markup=False
            )
        self._inner.handle(record)


def _setup_logging(debug: bool, quiet: bool) -> None:
    logger = logging.getLogger("vt")
    logger.handlers[:] = [_RichLogHandler()]
    logger.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False


def create_app(host: "PluginHost | None" = None) -> typer.Typer:
    """Build the CLI: core commands plus every command the loaded plugins register (mounted
    at once with ``host``; from the command index, lazily, without)."""
    app = typer.Typer(
        cls=VtGroup,
        name="vt",
        help="vt: a plugin-based video toolkit for AI video work.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def version_callback(value: bool) -> None:
        if value:
            typer.echo(f"vt {__version__}")
            raise typer.Exit()

    @app.callback()
    def main(
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=version_callback, is_eager=True, help="Show the version."
            ),
        ] = False,
        debug: Annotated[
            bool, typer.Option("--debug", help="Show tracebacks and debug logs.")
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")
        ] = False,
    ) -> None:
        _setup_logging(debug or bool(os.environ.get("VT_DEBUG")), quiet)

    _add_meta_commands(app, host)
    if host is not None:
        _mount_plugin_commands(app, host)
        return app
    from vt import command_index

    entries = command_index.load()
    if entries is None:
        from vt.plugins import get_host

        host = get_host()
        entries = _mount_plugin_commands(app, host)
        if not any(r.errors for r in host.records.values()):
            distributions = ["vt"] + [
                r.distribution for r in host.records.values() if r.distribution
            ]
            editable = command_index.editable_projects(distributions)
            command_index.save(entries, editable, host.entry_points)
        return app
    # the group class carries the index: Typer builds the click group from it when run
    app.info.cls = type("VtLazyGroup", (VtGroup,), {"lazy": {e.name: e for e in entries}})
    return app


def _build_command(entry: IndexEntry) -> Any:
    """The real click command behind an index entry (imports only its plugin's commands)."""
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @sub.callback()
    def _group() -> None:  # a callback makes ``sub`` a group, so the command keeps its name
        pass

    if entry.ambiguous:
        _mount_ambiguous(sub, entry.name, entry.ambiguous)
    else:
        from vt.plugins import get_host

        registry = get_host().commands_of(entry.plugin)
        _mount(sub, entry.name, registry.get(entry.spec))
    group = typer.main.get_command(sub)
    return group.commands[entry.name]  # type: ignore[attr-defined]


def _help_line(spec: CommandSpec) -> str:
    text = spec.help
    if not text:
        target = spec.target
        text = (
            target.info.help
            if isinstance(target, typer.Typer)
            else getattr(target, "__doc__", None)
        ) or ""
    return " ".join(str(text).strip().split("\n\n")[0].split())


def _mount(app: typer.Typer, name: str, spec: CommandSpec) -> None:
    if isinstance(spec.target, typer.Typer):
        app.add_typer(spec.target, name=name, help=spec.help)
    elif callable(spec.target):
        app.command(name, help=spec.help)(spec.target)
    else:
        raise TypeError(f"command {spec.name!r} must be a function or a typer.Typer")


def _mount_plugin_commands(app: typer.Typer, host: "PluginHost") -> list[IndexEntry]:
    """Mount every registered command; return what was mounted (the command index)."""
    reserved = {"plugins", "list", "install", "uninstall", *LIST_KINDS[:-1]}
    registry = host.commands
    clashes = registry.clashes()
    mounted: list[IndexEntry] = []
    for entry in registry:
        name = entry.name
        if name in reserved:
            print(
                f"vt: plugin {entry.plugin!r} tried to replace the core command {name!r}; "
                f"it is available as {entry.qualified_name}",
                file=sys.stderr,
            )
            name = entry.qualified_name
        elif name in clashes:
            name = entry.qualified_name
        try:
            _mount(app, name, entry.item)
        except Exception as exc:
            print(
                f"vt: plugin {entry.plugin!r}: command {name!r} not mounted: {exc}", file=sys.stderr
            )
            continue
        mounted.append(IndexEntry(name, _help_line(entry.item), entry.plugin, entry.name))
    for name, plugins in clashes.items():
        message = (
            f"command {name!r} is provided by plugins {' and '.join(map(repr, plugins))}"
            f": use {' or '.join(f'vt {p}:{name}' for p in plugins)}"
        )
        _mount_ambiguous(app, name, message)
        mounted.append(IndexEntry(name, f"(ambiguous) {message}", "", name, message))
    return mounted


def _mount_ambiguous(app: typer.Typer, name: str, message: str) -> None:
    def ambiguous(_message: str = message) -> None:
        raise UsageError(_message)

    app.command(
        name,
        help=f"(ambiguous) {message}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(ambiguous)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _add_meta_commands(app: typer.Typer, given: "PluginHost | None") -> None:
    def current() -> "PluginHost":
        from vt.plugins import get_host

        return given or get_host()

    @app.command("plugins")
    def plugins(
        all_: Annotated[bool, typer.Option("--all", help="Include built-in plugins.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Installed plugins: version, hooks they implement, and load errors."""
        host = current()
        records = [r for r in host.records.values() if all_ or not r.builtin]
        # make sure registration errors are known before reporting
        for kind in ("commands", "decoders", "processors", "encoders", "model_adapters", "models"):
            getattr(host, kind)
        if as_json:
            _print_json([r.as_dict() for r in records])
            return
        if not records:
            typer.echo("No plugins installed (try: vt install vt-upscale).")
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("plugin", "version", "hooks", "status")
        for r in records:
            status = "[red]" + "; ".join(r.errors) + "[/red]" if r.errors else "ok"
            table.add_row(r.name, r.version or "-", ", ".join(r.hooks) or "-", status)
        Console().print(table)

    def show(kind: str, as_json: bool) -> None:
        host = current()
        registry = host.registry(kind)
        rows = []
        for entry in registry:
            item = entry.item
            row: dict[str, Any] = {
                "name": entry.name,
                "plugin": entry.plugin,
                "description": getattr(item, "description", "") or getattr(item, "help", "") or "",
            }
            available = getattr(item, "available", None)
            if callable(available):
                reason = available()
                row["available"] = reason is None
                if reason:
                    row["reason"] = reason
            for attr in ("sources", "formats", "devices", "layouts", "targets", "task"):
                if hasattr(item, attr):
                    row[attr] = getattr(item, attr)
            if kind == "models":
                ref = item.locate()
                row["available"] = ref is not None
                row["path"] = str(ref.path) if ref else None
                row["source"] = ref.source if ref else None
                row["sources"] = list(item.sources)
            rows.append(row)
        adapters: list[dict[str, Any]] = []
        if kind == "models":
            adapters = [
                {
                    "name": e.name,
                    "plugin": e.plugin,
                    "formats": e.item.formats,
                    "devices": e.item.devices,
                    "dtypes": e.item.dtypes,
                    "available": e.item.available() is None,
                    "description": e.item.description,
                }
                for e in host.model_adapters
            ]
        if as_json:
            _print_json({"models": rows, "adapters": adapters} if kind == "models" else rows)
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        if kind == "models":
            table = Table(
                "adapter", "plugin", "formats", "devices", "available", title="Model adapters"
            )
            for a in adapters:
                table.add_row(
                    str(a["name"]),
                    str(a["plugin"]),
                    " ".join(a["formats"]),
                    " ".join(a["devices"]),
                    "yes" if a["available"] else "no",
                )
            console.print(table)
            title = "Named models"
        else:
            title = kind.capitalize()
        columns = (
            ("name", "plugin", "available", "source", "details")
            if kind == "models"
            else ("name", "plugin", "available", "details")
        )
        table = Table(*columns, title=title)
        for row in rows:
            avail = row.get("available")
            cells = [
                row["name"],
                row["plugin"],
                "-" if avail is None else ("yes" if avail else "no"),
            ]
            if kind == "models":
                cells.append(row["source"] or "-")
                cells.append(row["path"] or ("not found; looked in: " + ", ".join(row["sources"])))
            else:
                cells.append(row.get("reason") or row["description"])
            table.add_row(*cells)
        console.print(table)
        if not rows:
            console.print(f"No {kind} registered.")

    @app.command("list")
    def list_(
        kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(LIST_KINDS)}.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """What a registry holds and which plugin provides each entry."""
        if kind not in LIST_KINDS:
            raise UsageError(f"unknown kind {kind!r}: use one of {', '.join(LIST_KINDS)}")
        show(kind, as_json)

    for kind in LIST_KINDS[:-1]:

        def alias(
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
            _kind: str = kind,
        ) -> None:
            show(_kind, as_json)

        alias.__doc__ = f"Same as 'vt list {kind}'."
        app.command(kind)(alias)

    pip_settings = {"ignore_unknown_options": True, "allow_extra_args": True}

    @app.command("install", context_settings=pip_settings)
    def install(
        ctx: typer.Context,
        names: Annotated[list[str], typer.Argument(help="Packages (pip syntax).")],
    ) -> None:
        """Install plugins with pip inside vt's own interpreter."""
        _pip(["install", *names, *ctx.args])

    @app.command("uninstall", context_settings=pip_settings)
    def uninstall(
        ctx: typer.Context, names: Annotated[list[str], typer.Argument(help="Packages to remove.")]
    ) -> None:
        """Uninstall plugins with pip inside vt's own interpreter."""
        _pip(["uninstall", "-y", *names, *ctx.args])


def _pip(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args])
    if result.returncode:
        raise VtError(f"pip {args[0]} failed (exit {result.returncode})")
