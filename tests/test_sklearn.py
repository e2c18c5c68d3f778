"""capas.sklearn: the estimators pass scikit-learn's own check suite and work in its model
selection (Pipeline, GridSearchCV with two worker processes, cross_val_score); and the pains
of skorch are absent: no silent hold-out, any numeric dtype, tags, nothing fitted in __init__.

The check suite trains dozens of tiny fits: 8 epochs of a 16-unit net with the autograd
engine (no compile step), which learns the suite's blobs and regression data well enough.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from capas.sklearn import CapasClassifier, CapasRegressor

SMALL = {"epochs": 8, "lr": 0.03, "engine": "autograd"}


@parametrize_with_checks([CapasClassifier("16", **SMALL), CapasRegressor("16", **SMALL)])
def test_scikit_learn_check_suite(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:900], y[:900]


def test_grid_search_over_two_specs_on_digits_with_two_workers(digits):
    x, y = digits
    pipeline = Pipeline([("scale", StandardScaler()), ("net", CapasClassifier(epochs=10, lr=0.01, engine="autograd"))])
    search = GridSearchCV(pipeline, {"net__hidden": ["32", "64-32"]}, cv=3, n_jobs=2)
    search.fit(x, y)
    assert len(search.cv_results_["params"]) == 2
    assert search.best_params_["net__hidden"] in ("32", "64-32")
    assert search.best_score_ > 0.88  # 600 training digits a fold, 10 epochs
    assert search.score(x, y) > 0.95


def test_cross_val_score_in_a_pipeline(digits):
    x, y = digits
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("net", CapasClassifier("32", epochs=10, lr=0.01, engine="autograd"))]
    )
    scores = cross_val_score(pipeline, x[:450], y[:450], cv=StratifiedKFold(3))
    assert scores.shape == (3,) and scores.mean() > 0.85


def test_parameters_are_stored_untouched_and_nothing_is_fitted_before_fit():
    options = {"clip_norm": 1.0}
    net = CapasClassifier("8-4", batch_size="full", options=options, dtype="float64")
    assert net.get_params()["options"] is options and net.hidden == "8-4" and net.batch_size == "full"
    assert not [name for name in vars(net) if name.endswith("_")]
    x, y = make_classification(60, 5, random_state=0)
    net.fit(x, y)
    assert net.options is options and options == {"clip_norm": 1.0}
    assert net.model_.input_shape == (5,) and net.n_features_in_ == 5
    assert str(next(net.model_.parameters()).dtype) == "torch.float64"


def test_no_silent_hold_out_every_sample_is_trained_on():
    """Full-batch: the recorded training loss is the loss over all N samples at the epoch's
    start, so equal to the mean cross-entropy of every sample under the initial network."""
    x, y = make_classification(50, 4, random_state=1)
    net = CapasClassifier("", epochs=1, batch_size="full", lr=1e-9, dtype="float64", engine="autograd").fit(x, y)
    assert "val_loss" not in net.history_[-1]
    proba = net.predict_proba(x)  # lr 1e-9: the network did not move
    expected = -np.log(proba[np.arange(len(y)), y]).mean()
    assert net.history_[-1]["train_loss"] == pytest.approx(expected, rel=1e-6)
    held = CapasClassifier("", epochs=2, validation_fraction=0.2, engine="autograd").fit(x, y)
    assert "val_loss" in held.history_[-1]  # asked for: then, and only then, a validation split


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float16, np.float32, np.uint8])
def test_any_numeric_dtype_gives_the_float64_predictions(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=(40, 3))
    y = (x[:, 0] > 25).astype(int)
    reference = CapasClassifier("4", epochs=2, engine="autograd").fit(x.astype(np.float64), y)
    net = CapasClassifier("4", epochs=2, engine="autograd").fit(x.astype(dtype), y)
    np.testing.assert_allclose(net.predict_proba(x.astype(dtype)), reference.predict_proba(x), rtol=1e-6)


def test_string_labels_classes_and_probabilities():
    x, y_int = make_classification(90, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=2)
    labels = np.array(["cat", "dog", "emu"])[y_int]
    net = CapasClassifier("16", epochs=30, lr=0.01, engine="autograd").fit(x, labels)
    assert net.classes_.tolist() == ["cat", "dog", "emu"]
    proba = net.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(net.predict(x)) <= {"cat", "dog", "emu"}
    assert net.score(x, labels) > 0.8


def test_partial_fit_continues_training_and_refuses_unseen_labels():
    x, y = make_classification(200, 6, random_state=3)
    net = CapasClassifier("16", lr=0.01, engine="autograd")
    losses = []
    for _ in range(4):
        net.partial_fit(x, y, classes=[0, 1])
        losses.append(net.history_[-1]["train_loss"])
    assert net.n_epochs_ == 4 and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="not among classes_"):
        net.partial_fit(x[:5], np.array([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="features"):
        net.partial_fit(x[:, :3], y)


def test_regressor_multi_output_and_pickle_round_trip():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 3))
    y = np.stack([x @ [1.0, -2.0, 0.5], x[:, 0] * 2], axis=1)
    net = CapasRegressor("32", epochs=60, lr=0.01, engine="autograd").fit(x, y)
    assert net.predict(x).shape == (120, 2) and net.score(x, y) > 0.9
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(again.predict(x), net.predict(x))
    tags = net.__sklearn_tags__()
    assert tags.target_tags.multi_output and not tags.input_tags.allow_nan and tags.estimator_type == "regressor"
    assert CapasClassifier().__sklearn_tags__().estimator_type == "classifier"


def test_one_class_and_an_option_given_twice_are_refused_by_name():
    with pytest.raises(ValueError, match="at least two classes"):
        CapasClassifier(epochs=1).fit(np.zeros((5, 2)), np.ones(5))
    with pytest.raises(ValueError, match="options holds lr, which is a parameter of its own"):
        CapasClassifier(epochs=1, options={"lr": 0.1}).fit(np.eye(4), [0, 1, 0, 1])
