"""Shared pytest setup for the core's and the plugins' tests."""

pytest_plugins = ["vt.testing"]
