"""Support vector machines with the RBF kernel.

``C`` spans 2^-5 .. 2^15 and ``gamma`` 2^-15 .. 2^3, the grid of LIBSVM's practical guide, which auto-sklearn
and most benchmarks adopt; ``epsilon`` (SVR) is log-uniform over 0.001 .. 1 as in auto-sklearn.
"""

from __future__ import annotations

from optuna.distributions import FloatDistribution
from sklearn.svm import SVC, SVR

from ._space import SearchSpace

_C = FloatDistribution(2.0**-5, 2.0**15, log=True)
_GAMMA = FloatDistribution(2.0**-15, 2.0**3, log=True)

SVC_RBF = SearchSpace(
    name="svc",
    estimators=(SVC,),
    params={"C": _C, "gamma": _GAMMA},
    fixed={"kernel": "rbf"},
    doc="`kernel='rbf'` (the space is for the RBF kernel; `gamma` means that kernel's width).",
)

SVR_RBF = SearchSpace(
    name="svr",
    estimators=(SVR,),
    params={"C": _C, "gamma": _GAMMA, "epsilon": FloatDistribution(1e-3, 1.0, log=True)},
    fixed={"kernel": "rbf"},
    doc="`kernel='rbf'`. `epsilon` is in the target's units: standardize the target (e.g. with "
    "`TransformedTargetRegressor`) for the range to mean the same on every dataset.",
)
