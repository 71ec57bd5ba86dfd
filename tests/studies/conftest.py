"""Running a study script's quick mode in a subprocess, as a user would; loading a study's module for tests
of its functions."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def study_module(name: str) -> ModuleType:
    """``studies/<name>.py`` loaded as a module (a fresh one each call), to test its functions directly."""
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_study(out: Path, name: str, *args: str, timeout: int = 600) -> str:
    """Runs ``studies/name.py --quick --out out *args`` in a subprocess, as a user would; returns its output."""
    done = subprocess.run(
        [sys.executable, str(STUDIES / f"{name}.py"), "--quick", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def shared_quick_run(name: str):
    """A module-scoped fixture: one quick run of ``studies/name.py`` (its folder and output) that several tests
    of a module read, and none changes."""

    @pytest.fixture(scope="module")
    def quick_run(tmp_path_factory) -> tuple[Path, str]:
        out = tmp_path_factory.mktemp(name)
        return out, quick_study(out, name)

    return quick_run


@pytest.fixture
def run_quick_study(tmp_path):
    """``run_quick_study("name", *args)`` runs ``studies/name.py --quick --out tmp_path *args``; returns tmp_path."""

    def run(name: str, *args: str, timeout: int = 600) -> Path:
        run.stdout = quick_study(tmp_path, name, *args, timeout=timeout)
        return tmp_path

    return run


def marked_copy(cache: Path, kept: Path) -> Path:
    """A copy of a study's cache folder at ``kept`` whose every run carries a marker (its file's name), to
    tell runs reused from it from runs trained again."""
    shutil.copytree(cache, kept)
    for path in kept.glob("*.json"):
        entry = json.loads(path.read_text())
        for run in entry["runs"].values():
            run["marker"] = path.name
        path.write_text(json.dumps(entry))
    return kept


def assert_reused_all_but(cache: Path, trained: str | tuple[str, ...]) -> None:
    """Every run in ``cache`` came marked from :func:`marked_copy`, but ``trained`` (one or several), which
    were trained again."""
    for path in cache.glob("*.json"):
        runs = json.loads(path.read_text())["runs"]
        for label in (trained,) if isinstance(trained, str) else trained:
            assert "marker" not in runs.pop(label)
        assert runs and all(run["marker"] == path.name for run in runs.values())
