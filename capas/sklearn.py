"""capas networks as scikit-learn estimators: :class:`CapasClassifier`, :class:`CapasRegressor`.

They train through ``capas.fit`` (the one loop), so every training option of ``capas train``
is a constructor parameter (the common ones by name, any other ``TrainConfig`` field in
``options``), and scikit-learn's model selection (``Pipeline``, ``GridSearchCV`` with
``n_jobs``, ``cross_val_score``) chooses among them, as the course does by cross-validation.

Lessons taken from skorch, the PyTorch estimator most people know:

- nothing is held out silently: ``fit`` trains on every sample it is given (a validation
  split, for early stopping, is asked for with ``validation_fraction``);
- any numeric dtype is accepted (ints, float16/32/64, read-only memory maps): inputs are
  copied into the network's dtype (``dtype``, float32 by default);
- ``__init__`` stores its parameters untouched and builds nothing; the network, classes and
  everything fitted exist only after ``fit`` (attributes ending in ``_``);
- tags are declared with ``__sklearn_tags__`` (scikit-learn >= 1.6): no NaN, multi-output
  regression, a classifier's ``predict_proba``.

``hidden`` is the spec of the hidden layers only (``"64"``, ``"128-64"``, ``""`` for none):
the input width comes from ``X`` and the outputs from the classes (or targets' columns), so
one estimator fits any table.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from capas import defaults

DTYPES = {"float32": np.float32, "float64": np.float64}


class _CapasEstimator(BaseEstimator, abc.ABC):
    """What both estimators share: the parameters, the fit through ``capas.fit``, pickling."""

    _task = "classification"

    def __init__(
        self,
        hidden: str = str(defaults.HIDDEN_UNITS),
        *,
        act: str = defaults.ACTIVATION,
        loss: str | None = None,
        optimizer: str = defaults.OPTIMIZER,
        lr: float | None = None,
        momentum: float | None = None,
        epochs: int = defaults.EPOCHS,
        batch_size: int | str = defaults.BATCH_SIZE,
        l2: float = 0.0,
        l1: float = 0.0,
        engine: str = defaults.ENGINE,
        validation_fraction: float = 0.0,
        seed: int = defaults.SEED,
        device: str = "cpu",
        dtype: str = "float32",
        options: dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        self.hidden = hidden
        self.act = act
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.epochs = epochs
        self.batch_size = batch_size
        self.l2 = l2
        self.l1 = l1
        self.engine = engine
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.options = options
        self.verbose = verbose

    # -- what subclasses define -------------------------------------------------------------
    @abc.abstractmethod
    def _encode_targets(self, y: Any, reset: bool) -> np.ndarray:
        """The targets as the network trains on them (class indices or float columns)."""

    @abc.abstractmethod
    def _output_width(self) -> int:
        """How many output units the network needs for the targets seen in ``fit``."""

    # -- shared ----------------------------------------------------------------------------
    def _numpy_dtype(self) -> type:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        return DTYPES[self.dtype]

    def _inputs(self, X: Any, y: Any = None, reset: bool = True) -> tuple[np.ndarray, Any]:
        """X (N, F) as a writable C-contiguous copy in the network's dtype (and y checked)."""
        kwargs = {"dtype": [np.float64, np.float32], "ensure_min_samples": 1}
        if y is None and not reset:
            X = validate_data(self, X, reset=False, **kwargs)
        else:
            multi = self._task == "regression"
            X, y = validate_data(self, X, y, reset=reset, multi_output=multi, y_numeric=multi, **kwargs)
        return np.array(X, dtype=self._numpy_dtype(), order="C", copy=True), y

    def _build(self) -> None:
        """The network ``<features>-<hidden>-<outputs>`` (seeded), in the estimator's dtype."""
        import torch

        from capas.models import build

        hidden = str(self.hidden).strip().strip("-")
        spec = "-".join(part for part in (str(self.n_features_in_), hidden, str(self._output_width())) if part)
        loss = self.loss or defaults.default_loss(self._task)
        network = build(spec, act=self.act, loss=loss, seed=self.seed, task=self._task)
        self.model_ = network.to(torch.float64 if self.dtype == "float64" else torch.float32)
        self.n_epochs_ = 0

    def _train(self, x: np.ndarray, t: np.ndarray, epochs: int, seed: int) -> None:
        """``epochs`` of ``capas.fit`` on (x, t): all of it, or an explicit validation split."""
        import torch

        from capas.api.fit import fit

        x_t, t_t = torch.from_numpy(x), torch.from_numpy(t)
        data: tuple = (x_t, t_t)
        if self.validation_fraction:
            from capas.data.preprocess import stratified_split

            classified = self._task == "classification"
            keep, held = stratified_split(
                t if classified else np.zeros(len(t)), self.validation_fraction, seed, stratify=classified
            )
            data = (x_t[keep], t_t[keep], x_t[held], t_t[held])
        named = ("loss", "optimizer", "lr", "momentum", "epochs", "batch_size", "l2", "l1", "engine", "seed", "device")
        twice = sorted(set(self.options or {}) & {*named, "quiet"})
        if twice:
            raise ValueError(f"options holds {', '.join(twice)}, which is a parameter of its own; set it there")
        options = {"grad_norms": False, "warn_gradients": False, **(self.options or {})}
        result = fit(
            self.model_,
            data,
            loss=self.loss,
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            epochs=epochs,
            batch_size=self.batch_size,
            l2=self.l2,
            l1=self.l1,
            engine=self.engine,
            seed=seed,
            device=self.device,
            quiet=not self.verbose,
            **options,
        )
        self.model_ = result.model
        self.history_ = [dict(record) for record in result.history]
        self.n_epochs_ += len(result.history)

    def fit(self, X: Any, y: Any) -> _CapasEstimator:
        """Train a new network on every sample of (X, y) for ``epochs`` epochs; returns self."""
        x, y = self._inputs(X, y, reset=True)
        t = self._encode_targets(y, reset=True)
        self._build()
        self._train(x, t, self.epochs, self.seed)
        return self

    def _partial_fit(self, X: Any, y: Any, first: bool) -> _CapasEstimator:
        x, y = self._inputs(X, y, reset=first)
        t = self._encode_targets(y, reset=first)
        if first:
            self._build()
        self._train(x, t, 1, self.seed + self.n_epochs_)  # a new shuffle each call
        return self

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs s^L (N, K) on X, computed in float64 by a copy of the network:
        a float32 matrix product may round a row differently with the batch it is in, and a
        sample's prediction must not depend on the others (scikit-learn checks it)."""
        import copy

        import torch

        check_is_fitted(self, "model_")
        x, _ = self._inputs(X, reset=False)
        model = copy.deepcopy(self.model_).to(torch.float64)
        out = model.predict_proba(torch.from_numpy(x.astype(np.float64)))
        return out.detach().cpu().numpy().reshape(len(x), -1)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the network as its config and weights (portable, no torch pickling of modules)."""
        state = dict(self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            state["_model_record"] = (model.config(), {k: v.cpu() for k, v in model.state_dict().items()})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        record = state.pop("_model_record", None)
        self.__dict__.update(state)
        if record is not None:
            from capas.models.registry import from_config

            config, weights = record
            model = from_config(config)
            floats = [w.dtype for w in weights.values() if w.is_floating_point()]
            if floats:  # the weights' own dtype first, so loading them loses no precision
                model = model.to(floats[0])
            model.load_state_dict(weights)
            self.model_ = model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags


class CapasClassifier(ClassifierMixin, _CapasEstimator):
    """A capas network as a scikit-learn classifier: any labels (``classes_``), cross-entropy
    by default, ``predict_proba`` from the softmax outputs, ``partial_fit`` one epoch a call.

    >>> CapasClassifier("32", epochs=20).fit(X, y).score(X_test, y_test)  # doctest: +SKIP
    """

    _task = "classification"

    def _encode_targets(self, y: Any, reset: bool) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"the classifier needs samples of at least two classes, got one class: {self.classes_[0]!r}"
                )
            return codes.astype(np.int64)
        unseen = np.setdiff1d(y, self.classes_)
        if len(unseen):
            raise ValueError(f"y holds labels {unseen.tolist()} not among classes_ {self.classes_.tolist()}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _output_width(self) -> int:
        return len(self.classes_)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> CapasClassifier:
        """One epoch on (X, y); the first call builds the network for ``classes`` (all the
        labels the calls will hold; default: those in this y). The optimizer starts afresh
        each call (its moments are not kept between calls)."""
        first = not hasattr(self, "model_")
        if first and classes is not None:
            x, y_checked = self._inputs(X, y, reset=True)
            self.classes_ = np.unique(np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(f"classes must hold at least two labels, got {self.classes_.tolist()}")
            t = self._encode_targets(y_checked, reset=False)
            self._build()
            self._train(x, t, 1, self.seed)
            return self
        return self._partial_fit(X, y, first)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class in ``classes_`` order (N, K)."""
        out = self._outputs(X)
        if out.shape[1] == 1:  # one sigmoid output: P(classes_[1])
            out = np.hstack([1 - out, out])
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample (N,), as a label of ``classes_``."""
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


class CapasRegressor(RegressorMixin, _CapasEstimator):
    """A capas network as a scikit-learn regressor: mean squared error by default, linear
    outputs, one per target column (``y`` (N,) or (N, k))."""

    _task = "regression"

    def _encode_targets(self, y: Any, reset: bool) -> np.ndarray:
        y = np.asarray(y)
        width = 1 if y.ndim == 1 else y.shape[1]
        if reset:
            self.n_outputs_ = width
            self.single_target_ = y.ndim == 1
        elif width != self.n_outputs_:
            raise ValueError(f"y has {width} target column(s) but the regressor was fitted on {self.n_outputs_}")
        return np.array(y, dtype=self._numpy_dtype(), order="C", copy=True).reshape(len(y), width)

    def _output_width(self) -> int:
        return self.n_outputs_

    def partial_fit(self, X: Any, y: Any) -> CapasRegressor:
        """One epoch on (X, y), the first call building the network; the optimizer starts
        afresh each call."""
        return self._partial_fit(X, y, not hasattr(self, "model_"))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets (N,) for a 1-D y, else (N, k)."""
        out = self._outputs(X)
        return out[:, 0] if self.single_target_ else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


__all__ = ["CapasClassifier", "CapasRegressor"]
