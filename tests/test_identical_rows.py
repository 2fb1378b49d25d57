"""Identical rows get identical codes, embeddings and labels (issue 17).

Inference rounds the codes to float32, so that a row's code does not depend on
the batch it is encoded in, and identical rows always end up together.
"""

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skdeepcluster import AutoencoderKMeans

#: k-means warns when there are fewer distinct points than clusters.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Number of distinct clusters:sklearn.exceptions.ConvergenceWarning"
)

REDUCERS = ["auto", None, PCA(n_components=2)]

PARAMS = dict(hidden_layer_sizes=(32,), latent_dim=4, epochs=2, n_init=1, random_state=0)


def test_fifty_identical_rows():
    """Issue 17, reproducer 1."""
    X = np.tile(np.random.default_rng(0).normal(size=(1, 8)), (50, 1))
    model = AutoencoderKMeans(n_clusters=2, **PARAMS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    assert np.unique(model.labels_).size == 1
    assert model.predict(X[:1])[0] == model.labels_[0]
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    embedding = model.transform(X)
    assert np.array_equal(embedding[0], model.transform(X[:1])[0])
    assert (embedding == embedding[0]).all()
    assert np.isfinite(embedding).all()


def _mixed_data():
    """Random rows with three rows repeated ten times each, shuffled."""
    rng = np.random.default_rng(1)
    distinct = rng.normal(size=(60, 8))
    repeated = np.repeat(rng.normal(size=(3, 8)), 10, axis=0)
    X = np.vstack([distinct, repeated])
    groups = np.r_[np.full(60, -1), np.repeat([0, 1, 2], 10)]
    order = rng.permutation(len(X))
    return X[order], groups[order]


@pytest.mark.parametrize("reducer", REDUCERS, ids=["auto", "none", "pca"])
def test_identical_rows_among_other_data(reducer):
    X, groups = _mixed_data()
    model = AutoencoderKMeans(n_clusters=3, reducer=reducer, **PARAMS).fit(X)
    embedding = model.transform(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    for g in range(3):
        rows = np.flatnonzero(groups == g)
        assert np.unique(model.labels_[rows]).size == 1
        assert (embedding[rows] == embedding[rows[0]]).all()
        single = model.transform(X[rows[0] : rows[0] + 1])[0]
        assert np.array_equal(embedding[rows[0]], single)
        assert model.predict(X[rows[0] : rows[0] + 1])[0] == model.labels_[rows[0]]


@pytest.mark.parametrize("reducer", REDUCERS, ids=["auto", "none", "pca"])
def test_transform_does_not_depend_on_the_batch(reducer):
    X = np.random.default_rng(2).normal(size=(40, 8))
    model = AutoencoderKMeans(n_clusters=3, reducer=reducer, **PARAMS).fit(X)
    full = model.transform(X)
    labels = model.predict(X)
    for i in range(len(X)):
        assert np.array_equal(full[i], model.transform(X[i : i + 1])[0]), i
        assert model.predict(X[i : i + 1])[0] == labels[i]
    # and any other split of the rows
    halves = np.vstack([model.transform(X[::2]), model.transform(X[1::2])])
    assert np.array_equal(halves, np.vstack([full[::2], full[1::2]]))
