"""The library's version, in a module of its own so that any part of the package can read it without importing
the package root (which imports every subpackage)."""

__version__ = "0.1.0"  # keep equal to [project] version in pyproject.toml (tests/test_version.py checks)
