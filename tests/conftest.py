"""Fixtures for the core's tests: ``vt.testing`` (loaded by the root conftest) has them all."""
