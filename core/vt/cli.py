"""The ``vt`` command line: built by ``create_app()`` from the loaded plugins.

Nothing is attached at import time; every call of ``create_app`` builds a fresh Typer app
from the plugin host, so tests can swap plugins in and out without reloading modules.
"""


import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from vt import __version__
from vt.errors import UsageError, VtError
from vt.plugins import PluginHost, get_host
from vt.registry import CommandSpec

LIST_KINDS = ("decoders", "processors", "encoders", "models", "commands")


def _debug_enabled(args: Sequence[str] | None) -> bool:
    return bool(os.environ.get("VT_DEBUG")) or "--debug" in (args or sys.argv[1:])


class VtGroup(TyperGroup):
    """Maps errors to one line and an exit code: 1 runtime, 2 usage, 130 interrupted."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             *pargs: Any, **kwargs: Any) -> Any:
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


def _setup_logging(debug: bool, quiet: bool) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("vt")
    logger.handlers[:] = [RichHandler(console=Console(stderr=True), show_time=False,
                                      show_path=False, markup=False)]
    logger.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False


def create_app(host: PluginHost | None = None) -> typer.Typer:
    """Build the CLI: core commands plus every command the loaded plugins register."""
    host = host or get_host()
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
        version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                              is_eager=True, help="Show the version.")] = False,
        debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
        = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
        = False,
    ) -> None:
        _setup_logging(debug or bool(os.environ.get("VT_DEBUG")), quiet)

    _add_meta_commands(app, host)
    _mount_plugin_commands(app, host)
    return app


def _mount(app: typer.Typer, name: str, spec: CommandSpec) -> None:
    if isinstance(spec.target, typer.Typer):
        app.add_typer(spec.target, name=name, help=spec.help)
    elif callable(spec.target):
        app.command(name, help=spec.help)(spec.target)
    else:
        raise TypeError(f"command {spec.name!r} must be a function or a typer.Typer")


def _mount_plugin_commands(app: typer.Typer, host: PluginHost) -> None:
    reserved = {"plugins", "list", "install", "uninstall", *LIST_KINDS[:-1]}
    registry = host.commands
    clashes = registry.clashes()
    for entry in registry:
        name = entry.name
        if name in reserved:
            print(f"vt: plugin {entry.plugin!r} tried to replace the core command {name!r}; "
                  f"it is available as {entry.qualified_name}", file=sys.stderr)
            name = entry.qualified_name
        elif name in clashes:
            name = entry.qualified_name
        try:
            _mount(app, name, entry.item)
        except Exception as exc:
            print(f"vt: plugin {entry.plugin!r}: command {name!r} not mounted: {exc}",
                  file=sys.stderr)
    for name, plugins in clashes.items():
        message = (f"command {name!r} is provided by plugins {' and '.join(map(repr, plugins))}"
                   f": use {' or '.join(f'vt {p}:{name}' for p in plugins)}")

        def ambiguous(_message: str = message) -> None:
            raise UsageError(_message)

        app.command(name, help=f"(ambiguous) {message}", context_settings={
            "ignore_unknown_options": True, "allow_extra_args": True})(ambiguous)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _add_meta_commands(app: typer.Typer, host: PluginHost) -> None:
    @app.command("plugins")
    def plugins(
        all_: Annotated[bool, typer.Option("--all", help="Include built-in plugins.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Installed plugins: version, hooks they implement, and load errors."""
        records = [r for r in host.records.values() if all_ or not r.builtin]
        # make sure registration errors are known before reporting
        for kind in ("commands", "decoders", "processors", "encoders", "model_adapters",
                     "models"):
            getattr(host, kind)
        if as_json:
            _print_json([r.as_dict() for r in records])
            return
        if not records:
            typer.echo("No plugins installed (try: vt install vt-upscale).")
            return
        table = Table("plugin", "version", "hooks", "status")
        for r in records:
            status = "[red]" + "; ".join(r.errors) + "[/red]" if r.errors else "ok"
            table.add_row(r.name, r.version or "-", ", ".join(r.hooks) or "-", status)
        Console().print(table)

    def show(kind: str, as_json: bool) -> None:
        registry = host.registry(kind)
        rows = []
        for entry in registry:
            item = entry.item
            row: dict[str, Any] = {"name": entry.name, "plugin": entry.plugin,
                                   "description": getattr(item, "description", "") or
                                   getattr(item, "help", "") or ""}
            available = getattr(item, "available", None)
            if callable(available):
                reason = available()
                row["available"] = reason is None
                if reason:
                    row["reason"] = reason
            for attr in ("sources", "formats", "devices", "pixel_formats", "targets", "task"):
                if hasattr(item, attr):
                    row[attr] = getattr(item, attr)
            if kind == "models":
                ref = item.locate()
                row["available"] = ref is not None
                row["path"] = str(ref.path) if ref else None
                row["source"] = ref.source if ref else None
                row["sources"] = list(item.sources)
            rows.append(row)
        adapters = []
        if kind == "models":
            adapters = [{"name": e.name, "plugin": e.plugin, "formats": e.item.formats,
                         "devices": e.item.devices, "dtypes": e.item.dtypes,
                         "available": e.item.available() is None,
                         "description": e.item.description} for e in host.model_adapters]
        if as_json:
            _print_json({"models": rows, "adapters": adapters} if kind == "models" else rows)
            return
        console = Console()
        if kind == "models":
            table = Table("adapter", "plugin", "formats", "devices", "available",
                          title="Model adapters")
            for a in adapters:
                table.add_row(a["name"], a["plugin"], " ".join(a["formats"]),
                              " ".join(a["devices"]), "yes" if a["available"] else "no")
            console.print(table)
            title = "Named models"
        else:
            title = kind.capitalize()
        columns = ("name", "plugin", "available", "source", "details") if kind == "models" \
            else ("name", "plugin", "available", "details")
        table = Table(*columns, title=title)
        for row in rows:
            avail = row.get("available")
            cells = [row["name"], row["plugin"],
                     "-" if avail is None else ("yes" if avail else "no")]
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
        def alias(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
                  _kind: str = kind) -> None:
            show(_kind, as_json)

        alias.__doc__ = f"Same as 'vt list {kind}'."
        app.command(kind)(alias)

    pip_settings = {"ignore_unknown_options": True, "allow_extra_args": True}

    @app.command("install", context_settings=pip_settings)
    def install(ctx: typer.Context,
                names: Annotated[list[str], typer.Argument(help="Packages (pip syntax).")]
                ) -> None:
        """Install plugins with pip inside vt's own interpreter."""
        _pip(["install", *names, *ctx.args])

    @app.command("uninstall", context_settings=pip_settings)
    def uninstall(ctx: typer.Context,
                  names: Annotated[list[str], typer.Argument(help="Packages to remove.")]
                  ) -> None:
        """Uninstall plugins with pip inside vt's own interpreter."""
        _pip(["uninstall", "-y", *names, *ctx.args])


def _pip(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args])
    if result.returncode:
        raise VtError(f"pip {args[0]} failed (exit {result.returncode})")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    app = create_app()
    app(args=list(argv) if argv is not None else None, prog_name="vt")
