"""make_preprocessor: the Pipeline step a user would write for a table with numbers, categories and gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from automl_meta.corpus import make_preprocessor


def _table(n=60):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "size": rng.normal(10, 3, n),
            "colour": pd.Categorical(rng.choice(["red", "blue"], n)),
            "count": rng.integers(0, 5, n).astype(float),
        }
    )
    X.loc[::7, "size"] = np.nan
    X.loc[::5, "colour"] = np.nan
    return X


def test_missing_numbers_are_imputed_and_scaled():
    X = _table()
    Z = make_preprocessor().fit_transform(X)
    assert np.isfinite(Z).all()
    assert np.allclose(Z[:, 0].mean(), 0) and np.allclose(Z[:, 0].std(), 1)
    assert Z[0, 0] == Z[7, 0]  # both imputed with the median, then scaled alike


def test_categories_are_one_hot_with_missing_as_its_own_level_and_unknown_ignored():
    X = _table()
    pre = make_preprocessor().fit(X)
    names = list(pre.get_feature_names_out())
    assert names == [
        "numeric__size",
        "numeric__count",
        "categorical__colour_blue",
        "categorical__colour_missing",
        "categorical__colour_red",
    ]
    unseen = pd.DataFrame({"size": [1.0], "colour": pd.Categorical(["green"]), "count": [2.0]})
    assert pre.transform(unseen)[0, 2:].tolist() == [0.0, 0.0, 0.0]
    Z = pre.transform(X)
    assert np.array_equal(Z[:, 3], X["colour"].isna().to_numpy().astype(float))


def test_many_levels_are_capped():
    X = pd.DataFrame({"code": pd.Categorical([f"c{i % 40}" for i in range(400)]), "x": np.arange(400.0)})
    assert make_preprocessor(max_categories=5).fit_transform(X).shape == (400, 1 + 5)


def test_it_fits_in_a_pipeline():
    X = _table(200)
    y = (X["colour"] == "red").to_numpy().astype(int)
    model = make_pipeline(make_preprocessor(), LogisticRegression()).fit(X, y)
    assert model.score(X, y) > 0.95
