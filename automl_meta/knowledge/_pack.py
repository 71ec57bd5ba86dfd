"""Packing a build's runs into a knowledge file (:mod:`._file`), with its provenance."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..metafeatures import as_vector
from ..spaces import SPACES
from ._build import records_of, runs_path
from ._cross import cross_path
from ._deepen import more_path
from ._file import KnowledgeBase, SpaceKnowledge
from ._objective import ESTIMATORS, FOLDS, SVM_MAX_ITER


def _block(space: str, task_type: str, records: list[dict[str, Any]], index: dict[str, int]) -> SpaceKnowledge:
    """One block: the distinct configurations of the space's runs and every (task, configuration, loss)."""
    dists = SPACES[space].distributions()
    rows: dict[tuple, int] = {}
    triples, seen = [], set()
    for record in records:
        if record["task"] not in index:
            continue
        for config, loss in zip(record["configs"], record["losses"]):
            # None marks an inactive parameter: it compares equal to itself, unlike NaN.
            row = tuple(dists[n].to_internal_repr(config[n]) if n in config else None for n in dists)
            i = rows.setdefault(row, len(rows))
            if (record["task"], i) not in seen:  # a cross-evaluated configuration the task's own run had tried
                seen.add((record["task"], i))
                triples.append((index[record["task"]], i, np.nan if loss is None else float(loss)))
    configs = np.array([[np.nan if v is None else float(v) for v in k] for k in rows], dtype=np.float64)
    t = np.array(triples, dtype=np.float64).reshape(-1, 3)
    return SpaceKnowledge(
        space,
        task_type,
        dists,
        configs.reshape(len(rows), len(dists)),
        t[:, 0].astype(np.int32),
        t[:, 1].astype(np.int32),
        t[:, 2],
    )


def pack(out: Path, folder: Path, version: str, *, deepened: bool = True) -> tuple[Path, Path]:
    """Write the knowledge file of the build in ``out`` into ``folder`` (tasks that have meta-features only);
    ``deepened=False`` leaves the deepening round's runs out."""
    import optuna
    import sklearn

    from ._file import write

    settings = json.loads((out / "settings.json").read_text())
    described = {r["task"]: r["metafeatures"] for r in records_of(out / "metafeatures.jsonl")}
    records = {(tt, s): records_of(runs_path(out, tt, s)) for tt in ESTIMATORS for s in ESTIMATORS[tt]}
    ran = {r["task"]: (tt, r) for (tt, _), rs in records.items() for r in rs}
    # The cross-evaluation round's runs join their block: the same configurations measured on every task.
    cross = {key: records_of(cross_path(out, *key)) for key in records}
    n_cross = json.loads((out / "cross.json").read_text())["n"] if (out / "cross.json").exists() else 0
    names = sorted(n for n in described if n in ran)
    index = {n: i for i, n in enumerate(names)}
    tasks = [
        {"name": n, "task_type": ran[n][0], "fingerprint": ran[n][1]["fingerprint"], "rows": ran[n][1]["rows"]}
        for n in names
    ]
    used = [(tt, s) for (tt, s), rs in records.items() if any(r["task"] in index for r in rs)]
    # ... and so do the deepening round's, unless left out: more configurations of each task's own.
    more = {key: records_of(more_path(out, *key)) if deepened else [] for key in records}
    n_more = json.loads((out / "more.json").read_text())["n"] if deepened and (out / "more.json").exists() else 0
    blocks = [_block(s, tt, records[tt, s] + cross[tt, s] + more[tt, s], index) for tt, s in used]
    from ..corpus._load import cache_key

    manifest = {
        "created": datetime.date.today().isoformat(),
        "settings": {**settings, "folds": FOLDS, "n_cross": n_cross, "n_more": n_more},
        "objective": "1 - mean 3-fold cross-validated accuracy (classification) or R^2 (regression, target "
        "standardised) of make_pipeline(automl_meta.corpus.make_preprocessor(), estimator); SVC and SVR "
        f"stop at max_iter={SVM_MAX_ITER}, and a fit stopped there counts as failed (null)",
        "estimators": ESTIMATORS,
        "versions": {"scikit-learn": sklearn.__version__, "optuna": optuna.__version__, "numpy": np.__version__},
        "corpus": cache_key(),
        "runs": sum(len(rs) for rs in records.values()),
        "cross_runs": sum(len(rs) for rs in cross.values()),
        "more_runs": sum(len(rs) for rs in more.values()),
    }
    metafeatures = np.stack([as_vector(described[n]) for n in names]) if names else np.zeros((0, 23))
    return write(KnowledgeBase(manifest, tasks, metafeatures, blocks), folder, version)
