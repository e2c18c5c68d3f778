"""Classification metrics read off the confusion matrix agree with scikit-learn's."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support

from capas.train.metrics import classification_metrics, per_class_scores


@pytest.mark.parametrize("seed", range(5))
def test_per_class_scores_equal_scikit_learns(seed):
    g = torch.Generator().manual_seed(seed)
    k = 5
    y_true = torch.randint(0, k, (200,), generator=g)
    y_pred = torch.where(torch.rand(200, generator=g) < 0.6, y_true, torch.randint(0, k - 1, (200,), generator=g))
    y_true[y_true == 4] = 3  # class 4 never occurs and is never predicted: zero_division=0 everywhere
    ours = per_class_scores(y_true, y_pred, k)
    p, r, f, s = precision_recall_fscore_support(y_true.numpy(), y_pred.numpy(), labels=list(range(k)), zero_division=0)
    np.testing.assert_allclose(ours["precision"], p, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], r, atol=1e-12)
    np.testing.assert_allclose(ours["f1"], f, atol=1e-12)
    assert ours["support"] == s.tolist()
    metrics = classification_metrics(y_true, y_pred, k)
    assert metrics["confusion_matrix"] == sk_confusion(y_true, y_pred, labels=list(range(k))).tolist()
    assert metrics["macro_f1"] == pytest.approx(float(np.mean(f)))
