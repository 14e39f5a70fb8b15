"""The plugin manager: loads built-in and installed plugins and builds the registries.

Built-ins are ordinary plugins (``DEFAULT_PLUGINS``). Installed plugins are found through the
``vt`` entry-point group (as the command index saved them while it is valid, else from
``importlib.metadata``) and loaded one by one, so a plugin that fails to import is recorded
and reported while every other command keeps working. ``VT_LOAD_PLUGINS`` (a comma list, or
empty for none) limits which installed plugins load.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pluggy

from vt import hookspecs
from vt.command_index import EntryPoint
from vt.registry import (
    CommandSpec,
    DecoderInfo,
    EncoderInfo,
    ModelAdapterInfo,
    ModelSpec,
    ProcessorInfo,
    Registry,
)

ENTRY_POINT_GROUP = "vt"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "vt.builtins.decoders",
    "vt.builtins.encoders",
    "vt.builtins.processors",
    "vt.builtins.models",
    "vt.builtins.commands",
)

log = logging.getLogger("vt")


@dataclass
class PluginRecord:
    """One plugin as ``vt plugins`` reports it."""

    name: str
    module: str
    version: str | None = None
    distribution: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> bool:
        return not any(e.startswith("load:") for e in self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "loaded": self.loaded,
            "hooks": sorted(self.hooks),
            "errors": list(self.errors),
        }


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _installed_entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        found.append(
            EntryPoint(
                name=ep.name,
                value=ep.value,
                version=dist.version if dist else None,
                distribution=dist.metadata["Name"] if dist else None,
            )
        )
    return found


def _load_entry_point(value: str) -> Any:
    """What ``importlib.metadata.EntryPoint.load`` does for ``module`` or ``module:attr``."""
    module_name, _, attrs = value.partition("[")[0].partition(":")
    found: Any = importlib.import_module(module_name.strip())
    for attr in filter(None, attrs.strip().split(".")):
        found = getattr(found, attr)
    return found


class PluginHost:
    """Owns the pluggy manager, the plugin records and the registries built from the hooks."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("vt")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._load_entry_points = load_entry_points
        self.entry_points: list[EntryPoint] = []  # the installed plugins' (for the index)
        self._loaded = False

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> PluginHost:
        """Load built-ins and installed plugins once; later calls do nothing."""
        if self._loaded:
            return self
        self._loaded = True
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.register(module, name=module_name, builtin=True)
        if self._load_entry_points:
            self._load_installed()
        return self

    def _load_installed(self) -> None:
        from vt import command_index

        wanted = os.environ.get("VT_LOAD_PLUGINS")
        allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        found = command_index.entry_points()
        self.entry_points = found if found is not None else _installed_entry_points()
        for ep in self.entry_points:
            if allowed is not None and ep.name not in allowed:
                continue
            record = PluginRecord(
                name=ep.name, module=ep.value, version=ep.version, distribution=ep.distribution
            )
            if ep.name in self.records:
                self._fail(record, "load", f"another plugin is already named {ep.name!r}")
                continue
            self.records[ep.name] = record
            try:
                module = _load_entry_point(ep.value)
            except BaseException as exc:  # a plugin must never take vt down
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._fail(record, "load", _short_error(exc), exc)
                continue
            self.register(module, name=ep.name, record=record)

    def register(
        self,
        plugin: object,
        name: str,
        builtin: bool = False,
        record: PluginRecord | None = None,
    ) -> PluginRecord | None:
        """Register a plugin object and validate its hook names (misspellings are errors)."""
        if record is None:
            record = PluginRecord(
                name=name, module=getattr(plugin, "__name__", repr(plugin)), builtin=builtin
            )
            self.records[name] = record
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(record, "load", _short_error(exc), exc)
            return record
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self._invalidate()
        return record

    def _fail(
        self, record: PluginRecord, stage: str, message: str, exc: BaseException | None = None
    ) -> None:
        record.errors.append(f"{stage}: {message}")
        self.records.setdefault(record.name, record)
        print(f"vt: plugin {record.name!r} failed ({stage}): {message}", file=sys.stderr)
        if exc is not None and os.environ.get("VT_DEBUG"):
            traceback.print_exception(exc, file=sys.stderr)

    # -- registries --------------------------------------------------------------------------
    def _invalidate(self) -> None:
        for attr in ("commands", "decoders", "processors", "encoders", "model_adapters", "models"):
            self.__dict__.pop(attr, None)

    def _collect(
        self, hook_name: str, registry: Registry[Any], only: str | None = None
    ) -> Registry[Any]:
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin_name = impl.plugin_name
            if only is not None and plugin_name != only:
                continue

            def register(item: Any, _plugin: str = plugin_name) -> None:
                registry.add(item, _plugin)

            try:
                impl.function(register=register)
            except Exception as exc:
                record = self.records.get(plugin_name) or PluginRecord(plugin_name, "?")
                self._fail(record, hook_name, _short_error(exc), exc)
        return registry

    @cached_property
    def commands(self) -> Registry[CommandSpec]:
        return self._collect("register_commands", Registry("command", CommandSpec))

    def commands_of(self, plugin: str) -> Registry[CommandSpec]:
        """The commands one plugin registers, calling that plugin's hook alone (so a lazily
        started command never imports the other plugins' command modules)."""
        if "commands" in self.__dict__:
            registry: Registry[CommandSpec] = Registry("command", CommandSpec)
            for entry in self.commands:
                if entry.plugin == plugin:
                    registry.add(entry.item, plugin)
            return registry
        return self._collect("register_commands", Registry("command", CommandSpec), only=plugin)

    @cached_property
    def decoders(self) -> Registry[DecoderInfo]:
        return self._collect("register_decoders", Registry("decoder", DecoderInfo))

    @cached_property
    def processors(self) -> Registry[ProcessorInfo]:
        return self._collect("register_processors", Registry("processor", ProcessorInfo))

    @cached_property
    def encoders(self) -> Registry[EncoderInfo]:
        return self._collect("register_encoders", Registry("encoder", EncoderInfo))

    @cached_property
    def model_adapters(self) -> Registry[ModelAdapterInfo]:
        return self._collect("register_model_adapters", Registry("model adapter", ModelAdapterInfo))

    @cached_property
    def models(self) -> Registry[ModelSpec]:
        return self._collect("register_models", Registry("model", ModelSpec))

    def registry(self, kind: str) -> Registry[Any]:
        """A registry by its ``vt list`` name: decoders, processors, encoders, adapters, models."""
        attr = {"adapters": "model_adapters", "model-adapters": "model_adapters"}.get(kind, kind)
        if attr not in (
            "commands",
            "decoders",
            "processors",
            "encoders",
            "model_adapters",
            "models",
        ):
            from vt.errors import UsageError

            raise UsageError(f"unknown registry {kind!r}")
        found: Registry[Any] = getattr(self, attr)
        return found

    def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a first-result ``choose_*`` hook."""
        return getattr(self.pm.hook, hook_name)(**kwargs)


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    if _host is None:
        _host = PluginHost().load()
    return _host


def set_host(host: PluginHost | None) -> PluginHost | None:
    """Swap the process-wide host (tests); returns the previous one."""
    global _host
    previous, _host = _host, host
    return previous
