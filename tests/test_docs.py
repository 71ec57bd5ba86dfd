"""Every Python example in the README and the user docs runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.chdir(tmp_path)  # examples write runs/ and .ameta files
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks:  # blocks of a page build on each other, like a reader's session
        exec(compile(block, f"{page.name}", "exec"), namespace)
