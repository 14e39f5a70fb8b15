"""vt: a plugin-based command-line video toolkit for AI video work."""

from vt.cachedirs import cache_dir
from vt.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "cache_dir", "hookimpl"]
