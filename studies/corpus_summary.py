"""What is in the real-data corpus: counts, rows, features, categorical features and missing values.

Prints one row per source and task type (and totals per split), and writes
``studies/results/corpus_summary.csv`` (or ``--out DIR``). Also reports how long loading took.

    python studies/corpus_summary.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir, print_table, write_csv

HEADERS = [
    "group",
    "task_type",
    "tasks",
    "evaluation",
    "rows_median",
    "rows_min",
    "rows_max",
    "features_median",
    "features_max",
    "with_categorical",
    "with_missing",
    "classes_median",
]


def _row(group: str, task_type: str, tasks) -> list:
    rows = [t.n_rows for t in tasks]
    widths = [t.n_features for t in tasks]
    classes = [t.n_classes for t in tasks if t.n_classes is not None]
    return [
        group,
        task_type,
        len(tasks),
        sum(t.split == "evaluation" for t in tasks),
        int(np.median(rows)),
        min(rows),
        max(rows),
        float(np.median(widths)),
        max(widths),
        sum(bool(t.categorical_features) for t in tasks),
        sum(t.has_missing for t in tasks),
        float(np.median(classes)) if classes else "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for corpus_summary.csv (default: studies/results)")
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry with the other studies")
    args = parser.parse_args(argv)
    from automl_meta.corpus import SOURCES, corpus_manifest, load_corpus

    start = time.perf_counter()
    corpus = load_corpus()
    seconds = time.perf_counter() - start
    table = []
    for source in SOURCES:
        for task_type in ("classification", "regression"):
            tasks = [t for t in corpus if t.source == source and t.task_type == task_type]
            if tasks:
                table.append(_row(source, task_type, tasks))
    for split in ("meta-train", "evaluation", None):
        for task_type in ("classification", "regression", None):
            tasks = [t for t in corpus if split in (None, t.split) and task_type in (None, t.task_type)]
            table.append(_row(f"all ({split})" if split else "all", task_type or "both", tasks))
    print_table(HEADERS, table)
    manifest = corpus_manifest()
    print(
        f"\n{len(corpus)} tasks from {len(manifest['tasks']) + len(manifest['rejected'])} tables "
        f"({len(manifest['rejected'])} rejected, "
        f"{sum(r.startswith('near-duplicate') for r in manifest['rejected'].values())} of them as near-duplicates); "
        f"rules {manifest['rules_version']}; loaded in {seconds:.1f} s"
    )
    write_csv(output_dir(args.out, quick=False) / "corpus_summary.csv", HEADERS, table)


if __name__ == "__main__":
    main()
