"""What the docs teach and the package declares never unpickles arbitrary objects with ``torch.load``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the package depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# The pages tests/test_docs.py runs, and the sources whose docstrings and scripts users copy from.
TEXTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(p for d in ("automl_meta", "integrations", "studies") for p in (ROOT / d).rglob("*.py")),
]
# torch.load's default became weights_only=True in torch 2.6; before it, the default unpickles anything.
SAFE_DEFAULT = (2, 6)


def _load_calls(text: str) -> list[str]:
    """The argument text of every ``torch.load(...)`` call in ``text`` (parentheses balanced)."""
    calls = []
    for match in re.finditer(r"torch\.load\(", text):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        calls.append(text[match.end() : end - 1])
    return calls


def test_the_call_finder_sees_what_it_must():
    assert _load_calls("x = torch.load(f(a), map_location='cpu')\ny = torch.load(b, weights_only=True)") == [
        "f(a), map_location='cpu'",
        "b, weights_only=True",
    ]


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_torch_load_passes_weights_only(path):
    unsafe = [args for args in _load_calls(path.read_text()) if not re.search(r"weights_only\s*=\s*True", args)]
    assert not unsafe, f"torch.load without weights_only=True in {path.name}: {unsafe}"


def test_the_torch_floor_loads_weights_only_by_default():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [torch] = [d for d in dependencies if re.match(r"torch\b", d)]
    floor = re.search(r">=\s*(\d+)\.(\d+)", torch)
    assert floor, f"the torch requirement {torch!r} states no floor"
    assert tuple(map(int, floor.groups())) >= SAFE_DEFAULT, torch
