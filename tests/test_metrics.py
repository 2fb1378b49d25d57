"""Clustering metrics."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skdeepcluster.metrics import (
    cluster_accuracy,
    cluster_accuracy_scorer,
    clustering_scores,
    match_labels,
)


def test_accuracy_is_permutation_invariant():
    rng = np.random.RandomState(0)
    y = rng.randint(0, 5, size=200)
    perm = rng.permutation(5)
    assert cluster_accuracy(y, perm[y]) == 1.0
    assert cluster_accuracy(y, perm[y] + 10) == 1.0


def test_accuracy_known_value_and_brute_force():
    from itertools import permutations

    rng = np.random.RandomState(1)
    y = rng.randint(0, 4, size=60)
    pred = rng.randint(0, 4, size=60)
    best = max(np.mean(np.asarray(p)[pred] == y) for p in permutations(range(4)))
    assert cluster_accuracy(y, pred) == pytest.approx(best)


def test_more_clusters_than_classes_counts_unmatched_as_errors():
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5
    assert match_labels([0, 0, 1, 1], [0, 1, 2, 3]).tolist().count(-1) == 2


def test_string_labels():
    y = np.array(["a", "a", "b", "b"])
    assert cluster_accuracy(y, [3, 3, 4, 4]) == 1.0
    assert match_labels(y, [3, 3, 4, 4]).tolist() == ["a", "a", "b", "b"]


def test_clustering_scores_match_sklearn():
    rng = np.random.RandomState(2)
    y, pred = rng.randint(0, 3, 50), rng.randint(0, 3, 50)
    scores = clustering_scores(y, pred)
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(y, pred))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(y, pred))
    assert scores["accuracy"] == pytest.approx(cluster_accuracy(y, pred))


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [([0, 1], [0], "inconsistent"), ([], [], "empty"), ([[0, 1], [1, 0]], [0, 1], "shape")],
)
def test_bad_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        cluster_accuracy(y_true, y_pred)


def test_scorer_uses_predict():
    from sklearn.base import BaseEstimator

    class Fixed(BaseEstimator):
        def predict(self, X):
            return 1 - np.asarray(X)[:, 0]

        def fit(self, X, y=None):
            return self

    X = np.array([[0], [0], [1], [1]])
    assert cluster_accuracy_scorer(Fixed(), X, [0, 0, 1, 1]) == 1.0
