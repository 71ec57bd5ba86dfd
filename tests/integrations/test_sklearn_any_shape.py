"""The estimators with the bundled artifacts on tables of any shape: missing values, categories,
more targets, features and classes than the model's widths. Each case must also score sensibly
on synthetic data whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss
from sklearn.utils import get_tags

from automl_meta.integrations.sklearn import MetaLearnedClassifier, MetaLearnedRegressor


def _split(n_train, *arrays):
    return [a[:n_train] for a in arrays], [a[n_train:] for a in arrays]


def _check_proba(est, X, y):
    """Rows sum to 1, and the log-loss clearly beats the uniform prior over the classes."""
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    uniform = np.log(len(est.classes_))
    loss = log_loss(y, proba, labels=est.classes_)
    assert loss < 0.6 * uniform, (loss, uniform)
    return loss


# -- missing values and categories ------------------------------------------------------------------
def test_missing_values_are_imputed_with_an_indicator_that_carries_information():
    r = np.random.default_rng(0)
    X = r.normal(size=(160, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    X[r.random(X.shape) < 0.15] = np.nan
    X[:, 3] = np.where(y == 1, np.nan, X[:, 3])  # column 3 is missing exactly for class 1
    (Xt, yt), (Xv, yv) = _split(100, X, y)
    est = MetaLearnedClassifier(random_state=0).fit(Xt, yt)
    assert get_tags(est).input_tags.allow_nan and est.n_features_in_ == 4
    assert "numeric__missingindicator_x3" in est.encoder_.get_feature_names_out()
    assert est.score(Xv, yv) > 0.9  # the indicator alone separates the classes
    _check_proba(est, Xv, yv)


def test_missing_values_in_regression_and_at_predict_time_only():
    r = np.random.default_rng(1)
    X = r.normal(size=(140, 5))
    y = 2 * X[:, 0] - X[:, 1] + 0.1 * r.normal(size=140)
    Xn = np.where(r.random(X.shape) < 0.1, np.nan, X)
    (Xt, yt), (Xv, yv) = _split(90, Xn, y)
    assert MetaLearnedRegressor(random_state=0).fit(Xt, yt).score(Xv, yv) > 0.5
    clean = MetaLearnedRegressor(random_state=0).fit(X[:90], yt)  # no NaN at fit: no encoder
    assert clean.encoder_ is None
    pred = clean.predict(Xv)  # a value missing at predict time stands for its column's mean
    assert np.all(np.isfinite(pred)) and clean.score(Xv, yv) > 0.5
    with pytest.raises(ValueError, match="infinity"):
        clean.predict(np.full((1, 5), np.inf))


def test_categorical_columns_are_encoded_inside_the_estimator():
    r = np.random.default_rng(2)
    n = 150
    colour = r.choice(["red", "green", "blue", "white"], n)
    df = pd.DataFrame(
        {
            "noise": r.normal(size=n),
            "colour": pd.Categorical(colour),
            "flag": r.random(n) > 0.5,
            "word": pd.Series(r.choice(["a", "b", None], n), dtype="string"),
            "code": r.choice(["x", "y"], n).astype(object),
        }
    )
    y = pd.Series(colour).map({"red": 0, "green": 1, "blue": 2, "white": 1}).to_numpy()
    (Xt, yt), (Xv, yv) = _split(90, df, y)
    est = MetaLearnedClassifier(random_state=0).fit(Xt, yt)
    assert est.n_features_in_ == 5 and list(est.feature_names_in_) == list(df.columns)
    assert est.score(Xv, yv) > 0.95  # the colour alone determines the class
    _check_proba(est, Xv, yv)
    unseen = Xv.assign(colour=pd.Categorical(["purple"] * len(Xv)))  # unknown levels encode as all zeros
    assert np.all(np.isfinite(est.predict_proba(unseen)))
    with pytest.warns(UserWarning, match="feature names"):
        est.predict_proba(Xv.to_numpy())  # the fit's columns by position, with scikit-learn's warning


def test_text_in_an_array_is_refused_with_what_to_do():
    X = np.array([["red", 1.0], ["blue", 2.0]] * 5, dtype=object)
    with pytest.raises(ValueError, match="X holds text. Pass X as a pandas DataFrame"):
        MetaLearnedClassifier().fit(X, [0, 1] * 5)
    frame = pd.DataFrame(X, columns=["colour", "size"]).astype({"size": float})
    assert MetaLearnedClassifier(random_state=0).fit(frame, [0, 1] * 5).score(frame, [0, 1] * 5) == 1.0


def test_numeric_input_without_missing_values_skips_the_encoder():
    r = np.random.default_rng(3)
    X = r.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    from_array = MetaLearnedClassifier(random_state=0, adapt_steps=2).fit(X, y)
    from_frame = MetaLearnedClassifier(random_state=0, adapt_steps=2).fit(frame, y)
    assert from_array.encoder_ is None and from_frame.encoder_ is None
    # Equal up to rounding (a DataFrame's values come in column-major order).
    np.testing.assert_allclose(from_array.predict_proba(X), from_frame.predict_proba(frame), rtol=1e-12)


# -- more targets than the model's outputs ----------------------------------------------------------
@pytest.mark.parametrize("n_targets", [5, 9])
def test_more_targets_than_outputs_are_fitted_in_chunks(n_targets):
    r = np.random.default_rng(n_targets)
    X = r.normal(size=(150, 6))
    Y = X[:, :3] @ r.normal(size=(3, n_targets)) + 0.1 * r.normal(size=(150, n_targets)) + 50
    (Xt, Yt), (Xv, Yv) = _split(100, X, Y)
    est = MetaLearnedRegressor(random_state=0).fit(Xt, Yt)
    out_features = est.artifact_.learner.model.out_features
    assert n_targets > out_features and get_tags(est).target_tags.multi_output
    chunks = np.unique(est.member_targets_, axis=0)
    assert len(chunks) == -(-n_targets // out_features)  # each chunk at most out_features targets
    assert sorted(chunks[chunks >= 0].tolist()) == list(range(n_targets))  # each target in one chunk
    pred = est.predict(Xv)
    assert pred.shape == (50, n_targets)
    r2 = 1 - ((pred - Yv) ** 2).sum(0) / ((Yv - Yv.mean(0)) ** 2).sum(0)
    assert r2.min() > 0.8, r2  # every target, in every chunk, is fitted


# -- more features than the model takes -------------------------------------------------------------
@pytest.mark.parametrize("n_features", [500, 2000])
def test_wide_tables_are_served_by_members_that_see_feature_subsets(n_features):
    r = np.random.default_rng(n_features)
    n = 150
    y = np.arange(n) % 3
    X = r.normal(size=(n, n_features))
    informative = r.choice(n_features, 30, replace=False)  # a few columns among many carry the class
    X[:, informative] += 2.0 * (np.eye(3)[y] @ r.normal(size=(3, 30)))
    (Xt, yt), (Xv, yv) = _split(100, X, y)
    est = MetaLearnedClassifier(random_state=0).fit(Xt, yt)
    in_features = est.artifact_.learner.model.in_features
    assert est.n_features_in_ == n_features and est.member_features_.shape[1] == in_features
    assert len(est.member_features_) >= n_features / in_features
    assert np.array_equal(np.unique(est.member_features_), np.arange(n_features))  # every feature is seen
    assert est.score(Xv, yv) > 0.7  # chance is 1/3; the first 128 features alone give about 0.5
    _check_proba(est, Xv, yv)  # members' evidence combined with a temperature fitted on held-out rows
    assert est.temperature_ < 1.0


def test_feature_subsets_follow_random_state():
    r = np.random.default_rng(4)
    X, y = r.normal(size=(30, 300)), np.arange(30) % 2
    fit = lambda seed: MetaLearnedClassifier(adapt_steps=1, n_ensemble=5, random_state=seed).fit(X, y)  # noqa: E731
    first, again, other = fit(0), fit(0), fit(1)
    assert first.member_features_.shape == (6, 128)  # 5 members rounded up to two rounds of 3 subsets
    np.testing.assert_array_equal(again.member_features_, first.member_features_)
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    assert not np.array_equal(other.member_features_, first.member_features_)


@pytest.mark.parametrize("n_features", [500, 2000])
def test_wide_regression(n_features):
    # Many noisy measurements of three factors (spectra, sensors): every feature subset carries the signal.
    r = np.random.default_rng(n_features)
    factors = r.normal(size=(140, 3))
    X = factors @ r.normal(size=(3, n_features)) + 2.0 * r.normal(size=(140, n_features))
    y = factors @ np.array([2.0, -1.0, 1.5]) + 0.1 * r.normal(size=140)
    (Xt, yt), (Xv, yv) = _split(100, X, y)
    est = MetaLearnedRegressor(random_state=0).fit(Xt, yt)
    assert np.array_equal(np.unique(est.member_features_), np.arange(n_features))
    assert est.score(Xv, yv) > 0.8


# -- more classes than the model's outputs ----------------------------------------------------------
def _clusters(n_classes, per_class, n_test=3, n_features=8, seed=0):
    """Training and test rows of well separated clusters, one per class (n_test test rows of each)."""
    r = np.random.default_rng(seed)
    centres = r.normal(size=(n_classes, n_features)) * 3
    y = np.repeat(np.arange(n_classes), per_class)
    X = centres[y] + r.normal(size=(len(y), n_features))
    test = np.tile(np.arange(per_class) < n_test, n_classes)
    order = r.permutation(int((~test).sum()))
    return (X[~test][order], y[~test][order]), (X[test], y[test])


@pytest.mark.parametrize("n_classes, per_class, accuracy", [(11, 12, 0.8), (26, 9, 0.7), (100, 6, 0.4)])
def test_more_classes_than_outputs_through_an_output_code(n_classes, per_class, accuracy):
    (Xt, yt), (Xv, yv) = _clusters(n_classes, per_class, seed=n_classes)
    yt, yv = yt * 10 + 7, yv * 10 + 7  # labels need not be 0..K-1
    est = MetaLearnedClassifier(random_state=0).fit(Xt, yt)
    code, out_features = est.output_code_, est.artifact_.learner.model.out_features
    assert len(est.classes_) == n_classes and code.shape == (len(est.member_features_), n_classes)
    assert code.max() == out_features - 1  # each member groups the classes into out_features groups
    separated = (code[:, :, None] != code[:, None, :]).sum(0) + 99 * np.eye(n_classes)
    assert separated.min() >= 4  # every pair of classes told apart by several members
    assert est.score(Xv, yv) > accuracy  # chance is 1 / n_classes
    _check_proba(est, Xv, yv)
    assert 0 < est.temperature_ != 1.0  # fitted on the held-out folds


def test_the_output_code_temperature_calibrates_the_probabilities():
    (Xt, yt), (Xv, yv) = _clusters(11, 20, n_test=6, n_features=4, seed=5)
    noise = np.random.default_rng(5)  # overlapping clusters: errors to calibrate
    Xt, Xv = Xt + 2.0 * noise.normal(size=Xt.shape), Xv + 2.0 * noise.normal(size=Xv.shape)
    est = MetaLearnedClassifier(random_state=0).fit(Xt, yt)
    proba = est.predict_proba(Xv)
    fitted = log_loss(yv, proba, labels=est.classes_)
    # Any other temperature does worse on new rows than the fitted one, give or take a little.
    from automl_meta.integrations._sklearn_output_code import _class_scores, _decode

    scores = _class_scores(est._outputs(Xv).numpy(), est.output_code_)
    np.testing.assert_allclose(_decode(scores, est.temperature_), proba)
    for factor in (0.3, 3.0):
        assert fitted < log_loss(yv, _decode(scores, est.temperature_ * factor), labels=est.classes_)
    confidence, hit = proba.max(1), est.classes_[proba.argmax(1)] == yv
    assert abs(confidence.mean() - hit.mean()) < 0.15  # as confident as accurate, on average
