"""The version the package reports is the one it was installed with."""

from __future__ import annotations

import importlib.metadata

import automl_meta
from automl_meta._version import __version__


def test_package_version_matches_the_installed_distribution():
    assert automl_meta.__version__ == __version__ == importlib.metadata.version("automl-meta")


def test_artifacts_record_the_library_version():
    from automl_meta.artifacts.artifact import library_versions

    assert library_versions()["automl_meta"] == __version__
