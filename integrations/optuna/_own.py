"""The study's own results as the transfer phase reads them, at a cost per trial that hardly grows with the study.

Two things would otherwise grow with every trial: encoding each of the study's trials again (some 20
microseconds a trial, so 20 ms a trial after 1,000), and the study's own Gaussian process and ranking weights,
cubic and quadratic in the results they see. :func:`own_results` remembers each finished trial's unit vector;
:func:`_kept` picks the results the process and the weights see.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, cast

import numpy as np
from optuna.study import Study, StudyDirection
from optuna.trial import TrialState

from ._search_space import _Encoding

# The study's own process and the ranking weights see at most _OWN_RECENT + _OWN_BEST of the study's results,
# so a trial costs the same however long the study: the most recent ones, where the phase has been stepping
# lately (so the process knows which steps it has tried), and the best of the earlier ones, the region the phase
# steps around (the best trial is always among them). With 100 points a fit takes milliseconds, the weights of
# 100 past tasks some 20 ms; a study of up to 100 results uses them all.
_OWN_RECENT = 50
_OWN_BEST = 50

# Per encoding, the unit vector of every finished trial read last time, by the identity of its params dict. A
# finished trial's params never change, and the entry holds the dict, so its id cannot be reused meanwhile. Storages
# that hand out new trial objects on every read (databases) simply miss, and the vectors are computed as before.
_UNITS: weakref.WeakKeyDictionary[_Encoding, dict[int, tuple[dict[str, Any], np.ndarray | None]]] = (
    weakref.WeakKeyDictionary()
)


def own_results(study: Study, encoding: _Encoding) -> tuple[list[float], list[np.ndarray]]:
    """The study's finite complete results as losses (maximised objectives negated), and their unit vectors.

    The vectors are ``encoding.unit(trial.params)``, remembered from the previous call (read-only arrays).

    Examples
    --------
    >>> import optuna
    >>> from optuna.distributions import FloatDistribution
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 10), n_trials=2)
    >>> encoding = _Encoding({"x": FloatDistribution(0, 10)})
    >>> losses, units = own_results(study, encoding)
    >>> losses == [-t.value for t in study.trials], bool(units[0][0] == study.trials[0].params["x"] / 10)
    (True, True)
    >>> own_results(study, encoding)[1][1] is units[1]  # remembered
    True
    """
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    known = _UNITS.get(encoding, {})
    seen: dict[int, tuple[dict[str, Any], np.ndarray | None]] = {}
    own, units = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        # cast: t.values is not None (checked here first), so t.value is a float
        if t.values is None or not math.isfinite(cast(float, t.value)):
            continue
        entry = known.get(id(t.params))
        if entry is None or entry[0] is not t.params:
            u = encoding.unit(t.params)
            if u is not None:
                u.flags.writeable = False  # shared between calls
            entry = (t.params, u)
        seen[id(t.params)] = entry
        if entry[1] is not None:
            own.append(sign * cast(float, t.value))
            units.append(entry[1])
    _UNITS[encoding] = seen  # only this read's trials: the memory stays that of one study
    return own, units


def _kept(losses: np.ndarray) -> np.ndarray:
    """Positions, in trial order, of the study's results its own process is fitted to: the ``_OWN_RECENT``
    last and the ``_OWN_BEST`` best of the others (all of them when there are no more than these).

    Examples
    --------
    >>> _kept(np.arange(5.0))
    array([0, 1, 2, 3, 4])
    >>> kept = _kept(np.arange(300.0)[::-1])  # the best results come last
    >>> len(kept), int(kept[0]), int(kept[-1])
    (100, 200, 299)
    """
    n = len(losses)
    if n <= _OWN_RECENT + _OWN_BEST:
        return np.arange(n)
    earlier = np.argsort(losses[: n - _OWN_RECENT], kind="stable")[:_OWN_BEST]
    return np.concatenate([np.sort(earlier), np.arange(n - _OWN_RECENT, n)])
