"""Fixtures for the core's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vt.plugins import PluginHost, set_host


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """A plugin host with the built-ins only (no installed plugins), made current."""
    h = PluginHost(load_entry_points=False).load()
    previous = set_host(h)
    yield h
    set_host(previous)
