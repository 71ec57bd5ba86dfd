"""Meta-knowledge shipped with the package: scikit-learn's estimators tuned on a corpus of real datasets.

The bundled knowledge file (``automl_meta/knowledge/bundled/knowledge-<version>.json`` and ``.npz``)
holds, for every search space of :mod:`automl_meta.spaces` and every meta-training task of
:mod:`automl_meta.corpus`, a tuning run: the space's shared design (scikit-learn's defaults and random
configurations, the same on every task) and TPE trials after it, each scored by 3-fold
cross-validation of the estimator in the Pipeline a user would write
(:func:`automl_meta.corpus.make_preprocessor`), and a cross-evaluation run: a few configurations that
are good on many tasks, measured on every task. Tasks are described by their meta-features
(:func:`automl_meta.metafeatures.describe`), so that a new dataset finds its neighbours.
:class:`automl_meta.integrations.optuna.MetaLearnedSampler` reads it by default. The evaluation tasks of
the corpus are never in it. ``studies/build_knowledge.py`` builds it again (resumable, ``--jobs``).

Examples
--------
>>> from automl_meta import knowledge
>>> kb = knowledge.load()
>>> block = kb.block("ridge", "classification")
>>> sorted(block.distributions), len(kb.tasks) > 0
(['alpha'], True)
"""

from __future__ import annotations

from pathlib import Path

from ._file import KnowledgeBase, SpaceKnowledge, read

__all__ = ["KnowledgeBase", "SpaceKnowledge", "load", "bundled_path", "BUNDLED_VERSION"]

#: Version of the knowledge file shipped in this release.
BUNDLED_VERSION = "2"


def bundled_path() -> Path:
    """The manifest of the bundled knowledge file."""
    return Path(__file__).parent / "bundled" / f"knowledge-{BUNDLED_VERSION}.json"


def load(path: str | Path | None = None) -> KnowledgeBase:
    """Read a knowledge file (the bundled one by default) from its manifest.

    Raises
    ------
    automl_meta.exceptions.KnowledgeError
        When the file is missing, damaged (its checksum does not match) or of another format.
    """
    return read(bundled_path() if path is None else path)
