"""Running a study script's quick mode in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.fixture
def run_quick_study(tmp_path):
    """``run_quick_study("name", *args)`` runs ``studies/name.py --quick --out tmp_path *args``; returns tmp_path."""

    def run(name: str, *args: str, timeout: int = 600) -> Path:
        done = subprocess.run(
            [sys.executable, str(STUDIES / f"{name}.py"), "--quick", "--out", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr
        run.stdout = done.stdout
        return tmp_path

    return run
