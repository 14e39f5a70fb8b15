"""vt: a plugin-based command-line video toolkit for AI video work."""

from vt.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
