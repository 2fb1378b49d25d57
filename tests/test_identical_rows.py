"""Identical rows get identical codes, embeddings and labels (issue 17).

Inference rounds each code (and each reducer output) to float32 precision
relative to its largest entry, so that a row's code does not depend on the
batch it is encoded in, and identical rows always end up together.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skdeepcluster import MLP, AutoencoderKMeans, NeighborEmbedding
from skdeepcluster._precision import round_rows

#: k-means warns when there are fewer distinct points than clusters.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Number of distinct clusters:sklearn.exceptions.ConvergenceWarning"
)

REDUCERS = ["auto", None, PCA(n_components=2)]

PARAMS = dict(architecture=MLP((32,)), latent_dim=4, epochs=2, n_init=1, random_state=0)


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


def test_round_rows_snaps_cancellation_noise():
    """Entries that cancel to about zero round to the same value whatever their noise."""
    noisy = np.array([[-0.025989, -1.3877787807814457e-17], [-0.025989, 0.0]])
    rounded = round_rows(noisy)
    np.testing.assert_array_equal(rounded[0], rounded[1])
    # The largest entry is rounded exactly as by a float32 cast.
    assert rounded[0, 0] == np.float64(np.float32(-0.025989))
    # Batch-independent by construction: each row on its own grid.
    np.testing.assert_array_equal(round_rows(noisy[1:]), rounded[1:])
    assert round_rows(np.zeros((0, 3))).shape == (0, 3)


def test_pca_reducer_batch_independent_on_degenerate_codes():
    """A fuzzing find: PCA's near-zero second component was 1e-17 in one batch, 0 in another."""
    frame = pd.DataFrame(
        {name: [0.0, 0.0] for name in ["0", "2", "00", "000", "0000"]} | {"1": [1.0, 0.0]}
    )
    model = AutoencoderKMeans(
        n_clusters=1, architecture=MLP((8,)), latent_dim=2, batch_size=1, epochs=1,
        standardize=False, reducer=PCA(n_components=2), n_init=1, random_state=0,
    ).fit(frame)
    embedding = model.transform(frame)
    for i in range(len(frame)):
        np.testing.assert_array_equal(model.transform(frame.iloc[i : i + 1])[0], embedding[i])


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_neighbor_embedding_extreme_scales(scale):
    """A fuzzing find: float32 squared distances overflowed (1e30) or underflowed (1e-30)."""
    from sklearn.manifold import trustworthiness

    X = np.random.default_rng(0).normal(size=(60, 3))
    reference = NeighborEmbedding(n_components=2, random_state=0).fit_transform(X)
    ne = NeighborEmbedding(n_components=2, random_state=0)
    E = ne.fit_transform(X * scale)
    assert np.isfinite(E).all()
    np.testing.assert_array_equal(E, ne.embedding_)
    np.testing.assert_array_equal(ne.transform(X[:1] * scale)[0], E[0])
    # The layout keeps the neighbourhoods as well as at scale 1.
    kept = trustworthiness(X, E, n_neighbors=5)
    assert kept > trustworthiness(X, reference, n_neighbors=5) - 0.05


@pytest.mark.parametrize("exponent", [-100, 100])
def test_neighbor_embedding_ignores_a_power_of_two_scale(exponent):
    """Scaling X by a power of two, exact in floating point, changes nothing at all."""
    X = np.random.default_rng(1).normal(size=(30, 3))
    reference = NeighborEmbedding(n_components=2, random_state=0).fit_transform(X)
    scaled = NeighborEmbedding(n_components=2, random_state=0).fit_transform(X * 2.0**exponent)
    np.testing.assert_array_equal(scaled, reference)


def test_neighbor_embedding_rows_whose_distance_underflows():
    """A fuzzing find: [1, 0] and [1, 1e-30] are two nodes; each is placed on its own."""
    X = np.array([[1.0, 0.0], [1.0, 1e-30], [0.0, 1.0], [0.5, 0.5]])
    ne = NeighborEmbedding(n_components=2, n_neighbors=2, random_state=0)
    E = ne.fit_transform(X)
    np.testing.assert_array_equal(E, ne.embedding_)
    np.testing.assert_array_equal(ne.transform(X[1:2])[0], ne.embedding_[1])


def test_codes_beyond_float32_are_refused_clearly():
    """Codes beyond float32 (X of order 1e30): a ValueError that says so, not 'infinity'."""
    import torch

    from skdeepcluster.training import encode_array

    class Huge(torch.nn.Module):
        def encode(self, x):
            return x * 1e30

    with pytest.raises(ValueError, match="beyond the float32 range"):
        encode_array(Huge(), np.full((3, 2), 1e10), device=torch.device("cpu"))


def test_neighbor_embedding_tiny_values_stay_distinct():
    """A fuzzing find: 0 and 2.3e-287 are distinct once scaled; each keeps its own place."""
    X = np.array([[0.0], [2.2806480230166846e-287]])
    ne = NeighborEmbedding(n_components=1, n_neighbors=1, n_epochs=0, random_state=0)
    E = ne.fit_transform(X)
    np.testing.assert_array_equal(E, ne.embedding_)
    for i in range(2):
        np.testing.assert_array_equal(ne.transform(X[i : i + 1])[0], E[i])


def test_pca_of_identical_codes_is_batch_independent():
    """A fuzzing find: the 1-D PCA of identical codes is all cancellation noise (2.8e-17 or 0)."""
    X = np.full((51, 10), 0.7890625)
    X[:, 3] = 1.0
    model = AutoencoderKMeans(
        n_clusters=1, architecture=MLP((), output_activation="sigmoid"), latent_dim=2,
        optimizer="sgd", batch_size=8, epochs=1, standardize=False,
        reducer=PCA(n_components=1), n_init=1, refine=None, random_state=683,
    ).fit(X)
    embedding = model.transform(X)
    np.testing.assert_array_equal(model.transform(X[:1])[0], embedding[0])
    assert (embedding == embedding[0]).all()


def test_codes_on_a_float32_half_step_are_batch_independent():
    """A fuzzing find: X = 1 - 2**-52 and float32 weights put a code exactly on a tie."""
    X = np.full((6, 9), 0.9999999999999998)
    model = AutoencoderKMeans(
        n_clusters=1, architecture=MLP(()), latent_dim=1, batch_size=1, epochs=1,
        standardize=False, reducer=None, n_init=1, refine=None, random_state=10,
    ).fit(X)
    np.testing.assert_array_equal(model.transform(X[:1])[0], model.transform(X)[0])
    half = (np.floor(0.2 / 2.0**-26) + 0.5) * 2.0**-26
    assert np.unique(round_rows(np.array([[half - 1e-17], [half + 1e-17], [half]]))).size == 1


def test_neighbor_embedding_of_a_subnormal_row():
    """A fuzzing find: a subnormal largest |X| overflowed the power-of-two scale."""
    ne = NeighborEmbedding(n_components=1, n_neighbors=1, n_epochs=0, random_state=0)
    E = ne.fit_transform(np.array([[2.225073858507203e-309]]))
    assert np.isfinite(E).all()
