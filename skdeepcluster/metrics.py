"""Clustering metrics: accuracy under the best one-to-one label matching.

Clusters carry arbitrary indices, so accuracy is computed after matching each
cluster to a class with the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`), as in the deep-clustering
literature (Xie et al., 2016). NMI and ARI come from scikit-learn and are
gathered by :func:`clustering_scores`.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    make_scorer,
    normalized_mutual_info_score,
)
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = [
    "cluster_accuracy",
    "cluster_accuracy_scorer",
    "clustering_scores",
    "match_labels",
]


def _fill_doc(**fragments: str):
    """Decorator: replace each ``%(name)s`` line of a docstring by ``fragments[name]``.

    A fragment is written without indentation and takes that of the line it
    replaces, so that one text serves every docstring that needs it (as the
    docstring templates of matplotlib and MNE do). Used by :mod:`.plotting` too.
    """

    def decorate(func):
        func.__doc__ = re.sub(
            r"^([ \t]*)%\((\w+)\)s[ \t]*$",
            lambda match: textwrap.indent(fragments[match.group(2)], match.group(1)),
            func.__doc__,
            flags=re.MULTILINE,
        )
        return func

    return decorate


#: The two parameters of every metric, shared by their docstrings.
_LABELS_PARAMETERS = """\
y_true : array-like of shape (n_samples,)
    Ground-truth classes.
y_pred : array-like of shape (n_samples,)
    Cluster labels; their number may differ from the number of classes."""

_labels_doc = _fill_doc(labels=_LABELS_PARAMETERS)


def _check_finite_labels(labels: np.ndarray, name: str) -> None:
    """Refuse NaN and infinite labels, which no class or cluster can be matched to.

    ``np.unique`` would make NaN a class of its own (and every NaN the same
    class), so a missing label would silently count as a correct or wrong
    prediction. Object arrays (strings mixed with a float NaN, as pandas gives
    for missing labels) are checked element by element.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        The labels.
    name : str
        The argument's name, for the error message.

    Raises
    ------
    ValueError
        If a label is NaN or infinite; the message names ``name``, the first
        such value and its index.
    """
    if np.issubdtype(labels.dtype, np.inexact):
        bad = ~np.isfinite(labels)
    elif labels.dtype == object:
        bad = np.array(
            [isinstance(v, (float, np.floating)) and not np.isfinite(v) for v in labels],
            dtype=bool,
        )
    else:  # integers, booleans, strings
        return
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} NaN or infinite label(s), the first "
            f"{np.asarray(labels[i]).item()!r} at index {i}; labels must be finite: "
            "drop the samples without a label before scoring."
        )


def _check_labels(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y_true = column_or_1d(y_true, warn=False)
    y_pred = column_or_1d(y_pred, warn=False)
    check_consistent_length(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred must not be empty.")
    _check_finite_labels(y_true, "y_true")
    _check_finite_labels(y_pred, "y_pred")
    return y_true, y_pred


def _matching(y_true: np.ndarray, y_pred: np.ndarray):
    """Classes, clusters, the contingency table and the optimal matching."""
    classes, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    table = contingency_matrix(true_idx, pred_idx)  # (n_classes, n_clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return classes, clusters, table, rows, cols


@_labels_doc
def cluster_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Clustering accuracy with the best one-to-one cluster-to-class matching.

    Parameters
    ----------
    %(labels)s

    Returns
    -------
    accuracy : float
        Fraction of samples whose cluster is matched to their class, in [0, 1];
        unmatched clusters count as errors.

    See Also
    --------
    match_labels : the predicted labels renamed to their matched classes.
    sklearn.metrics.normalized_mutual_info_score
    sklearn.metrics.adjusted_rand_score

    Examples
    --------
    >>> from skdeepcluster.metrics import cluster_accuracy
    >>> cluster_accuracy([0, 0, 1, 1, 2], [1, 1, 0, 0, 0])
    0.8
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    _, _, table, rows, cols = _matching(y_true, y_pred)
    return float(table[rows, cols].sum() / y_true.shape[0])


@_labels_doc
def match_labels(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Rename clusters to the classes they are matched to.

    Clusters without a matched class (more clusters than classes) keep a
    label that is not a class: ``-1`` for integer classes, else the string
    ``'cluster <k>'``.

    Parameters
    ----------
    %(labels)s

    Returns
    -------
    y_matched : ndarray of shape (n_samples,)
        ``y_pred`` in the label space of ``y_true``; ready for
        :func:`sklearn.metrics.confusion_matrix` or a classification report.

    Examples
    --------
    >>> from skdeepcluster.metrics import match_labels
    >>> match_labels([0, 0, 1, 1], [5, 5, 7, 7]).tolist()
    [0, 0, 1, 1]
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    classes, clusters, _, rows, cols = _matching(y_true, y_pred)
    if np.issubdtype(classes.dtype, np.integer):
        unmatched = [-1] * len(clusters)
        mapped = np.array(unmatched, dtype=classes.dtype)
    else:
        mapped = np.array([f"cluster {c}" for c in clusters], dtype=object)
    mapped[cols] = classes[rows]
    return mapped[np.searchsorted(clusters, y_pred)]


@_labels_doc
def clustering_scores(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Accuracy (Hungarian), NMI and ARI of a clustering in one dictionary.

    Parameters
    ----------
    %(labels)s

    Returns
    -------
    scores : dict
        ``{'accuracy': ..., 'nmi': ..., 'ari': ...}``.

    Examples
    --------
    >>> from skdeepcluster.metrics import clustering_scores
    >>> clustering_scores([0, 0, 1, 1], [1, 1, 0, 0])
    {'accuracy': 1.0, 'nmi': 1.0, 'ari': 1.0}
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    return {
        "accuracy": cluster_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }


#: Scorer for model selection with labels, e.g.
#: ``GridSearchCV(model, grid, scoring=cluster_accuracy_scorer)``.
cluster_accuracy_scorer = make_scorer(cluster_accuracy)
