"""Writing a study's results: a printed table, CSV rows, headline JSON, and where they go."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def output_dir(out: str | None, quick: bool) -> Path:
    """``--out`` if given; otherwise ``studies/results`` (full runs) or ``studies/results/quick`` (quick runs)."""
    path = Path(out) if out else (RESULTS / "quick" if quick else RESULTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal 95% confidence interval."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print rows as an aligned plain-text table and return it."""
    cells = [[str(h) for h in headers]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def print_comparisons(heading: str, tests: Sequence[dict[str, Any]]) -> str:
    """Print paired comparisons (records with criterion, space, tasks, mean_difference, ci95 and verdict), one
    row each under ``heading``, and return the table."""
    rows = [[t["criterion"], t["space"], t["tasks"], t["mean_difference"], *t["ci95"], t["verdict"]] for t in tests]
    return print_table([heading, "space", "tasks", "mean diff", "ci95 low", "ci95 high", "verdict"], rows)


def write_csv(path: Path, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def parser(doc: str, quick_help: str):
    """The argument parser every study starts from: ``--quick`` and ``--out``."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", help="output folder (default studies/results, or studies/results/quick)")
    return p


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Lay out, write and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
