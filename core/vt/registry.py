"""What plugins register, and the registries that hold it.

Each registry records which plugin provided each entry. Two plugins may register the same
name: neither then owns the bare name, and looking it up is an error that names both; the
qualified ``plugin:name`` always works.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from vt.errors import RegistryError


def _always_available() -> str | None:
    return None


@dataclass(frozen=True)
class CommandSpec:
    """A CLI command: a function (becomes ``vt NAME``) or a ``typer.Typer`` (a command group)."""

    name: str
    target: Any
    help: str | None = None


@dataclass(frozen=True)
class DecoderInfo:
    """A decoder backend. ``open(source, options)`` returns a ``vt.media.decode.VideoReader``.

    ``available()`` returns None when usable, else a one-line reason (missing package…).
    ``priority`` orders the default fallback chain (lower is tried first).
    """

    name: str
    open: Callable[..., Any]
    description: str = ""
    sources: tuple[str, ...] = ("file",)
    layouts: tuple[str, ...] = ("rgb24",)
    devices: tuple[str, ...] = ("cpu",)
    priority: int = 50
    keeps_timestamps: bool = True
    available: Callable[[], str | None] = _always_available


_PROCESSOR_DEFAULTS = {
    "layouts": ("rgb24",),
    "devices": ("cpu",),
    "batch_size": 1,
    "temporal": False,
}


@dataclass(frozen=True)
class ProcessorInfo:
    """A frame processor. ``factory(**options)`` builds a ``vt.media.processing.FrameProcessor``.

    ``layouts`` are the frame layouts it accepts; ``devices`` where it can run;
    ``batch_size`` the batch it prefers; ``temporal`` whether it keeps state across frames.
    These are for listings (``vt processors``): the pipeline reads the built processor's own
    attributes. Left out, they are read from ``factory`` when it is a processor class.
    """

    name: str
    factory: Callable[..., Any]
    description: str = ""
    layouts: tuple[str, ...] = None  # type: ignore[assignment]
    devices: tuple[str, ...] = None  # type: ignore[assignment]
    batch_size: int = None  # type: ignore[assignment]
    temporal: bool = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for attr, default in _PROCESSOR_DEFAULTS.items():
            if getattr(self, attr) is None:
                value = (
                    getattr(self.factory, attr, default)
                    if isinstance(self.factory, type)
                    else default
                )
                object.__setattr__(self, attr, value)


@dataclass(frozen=True)
class OutputTarget:
    """Where output goes: a container file, or an image sequence (folder or ``%06d`` pattern)."""

    path: Path
    kind: str = "container"  # "container" | "images"

    @property
    def extension(self) -> str:
        return self.path.suffix.lower().lstrip(".")


@dataclass(frozen=True)
class EncoderInfo:
    """An encoder/writer. ``open(target, config, fmt, source, info, **options)`` returns a
    writer. ``info`` is the source's ``MediaInfo``, or None for generated video (then
    ``source`` is the audio file to mux in, or None); ``options`` include ``audio``,
    ``subtitles``, ``time_base``, ``rate``, ``colors`` and ``metadata``: accept unknown ones."""

    name: str
    open: Callable[..., Any]
    description: str = ""
    targets: tuple[str, ...] = ("container",)
    extensions: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()
    available: Callable[[], str | None] = _always_available

    def accepts(self, target: OutputTarget) -> bool:
        if target.kind not in self.targets:
            return False
        return (
            not self.extensions
            or target.kind != "container"
            or (target.extension in self.extensions)
        )


@dataclass(frozen=True)
class ModelRef:
    """A model resolved to something loadable: a file (``x.pth``, ``x.param``…) or a folder."""

    path: Path
    name: str | None = None
    source: str = "path"  # "path", "cache", "package:<dist>", "download", "huggingface"
    declared_format: str | None = None  # overrides what the path suggests
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> str:
        """What adapters match on: the declared format, else ``dir`` for a folder, else the
        file's suffix (``.pth``, ``.onnx``, ``.param``…)."""
        if self.declared_format:
            return self.declared_format
        return "dir" if self.path.is_dir() else self.path.suffix.lower()


@dataclass(frozen=True)
class ModelAdapterInfo:
    """A model loader. ``load(ref, **options)`` returns the adapter's loaded-model object.

    ``formats`` lists the ``ModelRef.format``s it loads: file suffixes (``.pth``, ``.onnx``,
    ``.param``) or ``dir``.
    """

    name: str
    load: Callable[..., Any]
    formats: tuple[str, ...]
    description: str = ""
    tasks: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("fp32",)
    available: Callable[[], str | None] = _always_available
    #: a cheap look inside (a folder's config, a file's header) when the suffix is not enough
    probe: Callable[[ModelRef], bool] | None = None

    def accepts(self, ref: ModelRef) -> bool:
        return ref.format in self.formats and (self.probe is None or self.probe(ref))


@dataclass(frozen=True)
class ModelSpec:
    """A named model. ``locate()`` finds its weights without downloading (None if absent);
    ``fetch()`` downloads them (raises ``ModelUnavailableError`` when it cannot)."""

    name: str
    task: str
    locate: Callable[[], ModelRef | None]
    description: str = ""
    sources: tuple[str, ...] = ()
    fetch: Callable[[], ModelRef] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    plugin: str
    item: T

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"


class Registry(Generic[T]):
    """Named items of one kind, with the plugin that provided each."""

    def __init__(self, kind: str, item_type: type) -> None:
        self.kind = kind
        self.item_type = item_type
        self._entries: dict[str, Entry[T]] = {}  # qualified name -> entry
        self._by_name: dict[str, list[Entry[T]]] = {}

    def add(self, item: T, plugin: str) -> None:
        if not isinstance(item, self.item_type):
            raise TypeError(
                f"register() for {self.kind} takes a {self.item_type.__name__}, "
                f"got {type(item).__name__}"
            )
        name = getattr(item, "name", "")
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")
        entry = Entry(name, plugin, item)
        if entry.qualified_name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice by plugin {plugin!r}")
        self._entries[entry.qualified_name] = entry
        self._by_name.setdefault(name, []).append(entry)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._by_name or name in self._entries)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def clashes(self) -> dict[str, list[str]]:
        """Names registered by more than one plugin, with those plugins."""
        return {n: [e.plugin for e in es] for n, es in self._by_name.items() if len(es) > 1}

    def entry(self, name: str) -> Entry[T]:
        if name in self._entries:
            return self._entries[name]
        entries = self._by_name.get(name)
        if not entries:
            hint = difflib.get_close_matches(name, list(self._by_name), n=1)
            known = ", ".join(sorted(self._by_name)) or "none"
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (known: {known})"
            raise RegistryError(f"unknown {self.kind} {name!r}{suggestion}")
        if len(entries) > 1:
            plugins = " and ".join(repr(e.plugin) for e in entries)
            options = " or ".join(e.qualified_name for e in entries)
            raise RegistryError(
                f"{self.kind} {name!r} is provided by plugins {plugins}: use {options}"
            )
        return entries[0]

    def get(self, name: str) -> T:
        return self.entry(name).item

    def items(self) -> list[T]:
        return [e.item for e in self._entries.values()]
