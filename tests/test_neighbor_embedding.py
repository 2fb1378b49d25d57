"""Tests of the torch neighbour-graph embedding (NeighborEmbedding) and its pieces."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from skdeepcluster import MLP, AutoencoderKMeans, NeighborEmbedding
from skdeepcluster.embedding import (
    NeighborIndex,
    fuzzy_neighbor_graph,
    interpolate_embedding,
    knn_search,
    layout_curve_params,
)
from skdeepcluster.embedding._graph import _membership
from skdeepcluster.embedding._layout import (
    _clipped,
    _initial_layout,
    _prefetched,
    _pull,
    _push,
    edge_batches,
    optimize_layout,
    refine_placement,
)
from skdeepcluster.embedding._neighbors import choose_method
from skdeepcluster.embedding._unique import unique_rows
from skdeepcluster.metrics import cluster_accuracy

from ._trained import check_trained


@pytest.fixture(scope="module")
def blobs5():
    X, y = make_blobs(n_samples=400, centers=5, n_features=12, cluster_std=1.5, random_state=1)
    return X, y


def test_knn_search_matches_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 7)).astype(np.float32)
    dist, index = knn_search(torch.from_numpy(X), torch.from_numpy(X), 5, exclude_self=True)
    ref_dist, ref_index = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X)
    np.testing.assert_array_equal(index.numpy(), ref_index[:, 1:])
    np.testing.assert_allclose(dist.numpy(), ref_dist[:, 1:], rtol=1e-5)


def test_knn_search_in_blocks(monkeypatch):
    """Tiny blocks give the same neighbours as one block."""
    import skdeepcluster.embedding._neighbors as ne

    rng = np.random.default_rng(1)
    X = torch.from_numpy(rng.normal(size=(500, 4)).astype(np.float32))
    whole = knn_search(X, X, 4, exclude_self=True)
    monkeypatch.setattr(ne, "_KNN_BLOCK_ENTRIES", 1)  # 64 rows per block
    blocked = knn_search(X, X, 4, exclude_self=True)
    torch.testing.assert_close(whole[0], blocked[0])
    torch.testing.assert_close(whole[1], blocked[1])


def test_knn_search_breaks_ties_by_index():
    data = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -2.0]])
    dist, index = knn_search(torch.zeros((1, 2)), data, 4)
    np.testing.assert_array_equal(index.numpy(), [[1, 2, 3, 0]])
    np.testing.assert_array_equal(dist.numpy(), [[1.0, 1.0, 1.0, 2.0]])


def test_knn_search_does_not_depend_on_the_batch(digits):
    """The matrix product's rounding depends on the rows computed together; the result does not."""
    X = torch.from_numpy(StandardScaler().fit_transform(digits[0]).astype(np.float32))
    data, queries = X[:500], X[400:700]
    dist, index = knn_search(queries, data, 15)
    for size in (1, 3, 7):
        parts = [knn_search(queries[i : i + size], data, 15) for i in range(0, 300, size)]
        torch.testing.assert_close(torch.cat([p[0] for p in parts]), dist, rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([p[1] for p in parts]), index, rtol=0, atol=0)


def test_unique_rows_in_order_of_first_occurrence():
    X = np.array([[1, 2], [0, -0.0], [1, 2], [3, 4], [-0.0, 0]], dtype=np.float32)
    unique, inverse = unique_rows(X)
    np.testing.assert_array_equal(unique, [[1, 2], [0, 0], [3, 4]])  # -0.0 == 0.0
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2, 1])
    distinct = X[[0, 1, 3]]
    unique, inverse = unique_rows(distinct)
    assert unique is distinct and np.array_equal(inverse, [0, 1, 2])


def test_membership_sums_to_log2_k():
    rng = np.random.default_rng(2)
    dist = torch.from_numpy(np.sort(rng.uniform(0.1, 3.0, size=(50, 8)), axis=1).astype(np.float32))
    w = _membership(dist)
    assert torch.all(w[:, 0] == 1.0)  # the nearest neighbour is fully a member
    assert torch.all((w > 0) & (w <= 1))
    np.testing.assert_allclose(w.sum(1).numpy(), math.log2(8), rtol=1e-3)


def test_fuzzy_graph_is_symmetric_with_weights_in_unit_interval(blobs5):
    X = torch.from_numpy(blobs5[0].astype(np.float32))
    graph = fuzzy_neighbor_graph(*knn_search(X, X, 10, exclude_self=True)).tocsr()
    assert graph.shape == (400, 400)
    assert abs(graph - graph.T).max() < 1e-12
    assert graph.data.min() > 0 and graph.data.max() <= 1 + 1e-12
    assert graph.diagonal().sum() == 0


def test_layout_curve_params():
    a, b = layout_curve_params(0.0)
    assert a == pytest.approx(1.93, abs=0.02) and b == pytest.approx(0.79, abs=0.02)
    a, b = layout_curve_params(0.1)  # UMAP's default min_dist
    assert a == pytest.approx(1.58, abs=0.03) and b == pytest.approx(0.90, abs=0.03)


def test_separates_blobs_and_places_new_points(blobs5, train_seed):
    X, y = blobs5
    ne = NeighborEmbedding(n_components=2, random_state=train_seed).fit(X[:300])
    E = ne.transform(X[:300])
    assert E.shape == (300, 2) and np.all(np.isfinite(E))
    km = KMeans(n_clusters=5, n_init=10, random_state=train_seed).fit(E)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y[:300], km.labels_), "==", 1.0)
    # Held-out points land in the clusters of their neighbours.
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y[300:], km.predict(ne.transform(X[300:]))), "==", 1.0)


def test_transform_of_training_data_is_the_embedding(blobs5):
    X = blobs5[0]
    ne = NeighborEmbedding(random_state=0)
    E = ne.fit_transform(X)
    np.testing.assert_array_equal(E, ne.embedding_)
    np.testing.assert_array_equal(ne.transform(X), E)
    # Row by row and in any order: transform does not depend on the batch.
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_array_equal(ne.transform(X[perm]), E[perm])
    np.testing.assert_array_equal(ne.transform(X[7:8]), E[7:8])


@pytest.mark.parametrize("method", ["hnsw", "kdtree"])
def test_fit_transform_is_fit_then_transform_with_approximate_search(blobs5, method):
    """fit_transform skips the second search; transform finds the training rows exactly."""
    pytest.importorskip("faiss" if method == "hnsw" else "scipy")
    X = np.vstack([blobs5[0], blobs5[0][:20]])  # with copies
    params = dict(neighbor_search=method, random_state=0)
    E = NeighborEmbedding(**params).fit_transform(X)
    np.testing.assert_array_equal(NeighborEmbedding(**params).fit(X).transform(X), E)


def test_reproducible_and_seed_dependent(blobs5):
    X = blobs5[0]
    a = NeighborEmbedding(random_state=3).fit_transform(X)
    b = NeighborEmbedding(random_state=3).fit_transform(X)
    c = NeighborEmbedding(random_state=4).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_max_samples_fits_on_a_subsample(blobs5, train_seed):
    X, y = blobs5
    ne = NeighborEmbedding(n_components=2, max_samples=150, random_state=train_seed).fit(X)
    assert ne.fit_indices_.shape == (150,) and ne.embedding_.shape == (150, 2)
    assert len(np.unique(ne.fit_indices_)) == 150
    E = ne.transform(X)
    np.testing.assert_array_equal(E[ne.fit_indices_], ne.embedding_)
    np.testing.assert_array_equal(ne.fit_transform(X), E)
    labels = KMeans(n_clusters=5, n_init=10, random_state=train_seed).fit_predict(E)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, labels), ">", 0.98)


def test_interpolation_of_a_point_between_two():
    data = torch.tensor([[0.0], [10.0]])
    embedding = torch.tensor([[0.0, 0.0], [4.0, 2.0]])
    queries = torch.tensor([[0.0], [10.0], [5.0]])
    out = interpolate_embedding(*knn_search(queries, data, 2), embedding)
    torch.testing.assert_close(out[:2], embedding)
    torch.testing.assert_close(out[2], torch.tensor([2.0, 1.0]))  # equidistant: the mean


def test_identical_rows_are_one_node(blobs5):
    X = blobs5[0][:200]
    # Row 0 fifty times and rows 1-4 three times each, the copies after the distinct rows.
    rows = np.concatenate([np.arange(200), np.zeros(49, dtype=int), np.repeat(np.arange(1, 5), 2)])
    ne = NeighborEmbedding(random_state=0).fit(X[rows])
    # One node per distinct row: the layout of X alone, broadcast to the copies.
    alone = NeighborEmbedding(random_state=0).fit(X)
    np.testing.assert_array_equal(ne.embedding_, alone.embedding_[rows])
    np.testing.assert_array_equal(ne.transform(X[rows]), ne.embedding_)
    np.testing.assert_array_equal(ne.fit_transform(X[rows]), ne.embedding_)


def test_identical_rows_get_identical_embeddings(blobs5):
    X, new = blobs5[0][:200], blobs5[0][200:210]
    rows = np.random.default_rng(0).permutation(np.concatenate([np.arange(200), np.zeros(49, int)]))
    X = X[rows]
    X[rows == 0] = np.nextafter(X[rows == 0], np.inf)  # one float64 ulp away ...
    X[np.flatnonzero(rows == 0)[::2]] = blobs5[0][0]
    assert len(np.unique(X.astype(np.float32), axis=0)) == 200  # ... the same in float32
    ne = NeighborEmbedding(random_state=0)
    E = ne.fit_transform(X)
    np.testing.assert_array_equal(E, ne.embedding_)
    np.testing.assert_array_equal(E[rows == 0], np.repeat(E[rows == 0][:1], 50, axis=0))
    np.testing.assert_array_equal(ne.transform(blobs5[0][[0, 0]]), E[rows == 0][:2])
    # Identical new rows, anywhere in a batch, get one embedding too.
    T = ne.transform(np.vstack([new, X[:3], new[::-1]]))
    np.testing.assert_array_equal(T[:10], T[13:][::-1])
    np.testing.assert_array_equal(T[10:13], E[:3])


def test_transform_is_continuous_at_the_training_samples(blobs5):
    """A difference from a training sample that survives float32 moves it by almost nothing."""
    X = blobs5[0].copy()
    X[:, 3] = 0.0  # e.g. a standardized constant feature
    ne = NeighborEmbedding(random_state=0).fit(X)
    spread = np.ptp(ne.embedding_, axis=0).max()
    for eps in (1e-17, 1e-12, 1e-8):
        near = X[:1].copy()
        near[0, 3] = eps
        assert np.abs(ne.transform(near) - ne.embedding_[:1]).max() < 1e-6 * spread
    # Far from every training sample (beyond 1e-3 of the neighbourhood): the fuzzy mean.
    far = X[:1].copy()
    far[0, 3] = 0.1
    assert np.abs(ne.transform(far) - ne.embedding_[:1]).max() > 1e-3 * spread


def test_transform_does_not_depend_on_the_batch(digits, monkeypatch):
    """transform(X)[i] == transform(X[i:i+1])[0] exactly, for training and new rows."""
    import skdeepcluster.embedding._neighbors as neighbors

    X = StandardScaler().fit_transform(digits[0])
    ne = NeighborEmbedding(random_state=0).fit(X[:500])
    queries = X[400:700]  # 100 training rows, 200 new ones
    whole = ne.transform(queries)
    np.testing.assert_array_equal(whole[:100], ne.embedding_[400:])
    for size in (1, 2, 7):
        parts = [ne.transform(queries[i : i + size]) for i in range(0, 300, size)]
        np.testing.assert_array_equal(np.vstack(parts), whole)
    monkeypatch.setattr(neighbors, "_KNN_BLOCK_ENTRIES", 1)  # 64 rows per block
    np.testing.assert_array_equal(ne.transform(queries), whole)


@pytest.mark.parametrize("n_samples", [2, 5, 40])
@pytest.mark.parametrize("n_components", [2, 12])
def test_all_rows_identical(n_samples, n_components):
    X = np.tile([[1.0, -2.0, 3.0]], (n_samples, 1))
    ne = NeighborEmbedding(n_components=n_components, random_state=0)
    E = ne.fit_transform(X)
    assert E.shape == (n_samples, n_components) and np.all(np.isfinite(E))
    # One point: that of the single row on its own.
    single = NeighborEmbedding(n_components=n_components, random_state=0).fit_transform(X[:1])
    np.testing.assert_array_equal(E, np.repeat(single, n_samples, axis=0))
    # With one node, every sample is placed on it.
    np.testing.assert_array_equal(ne.transform([[0.0, 0.0, 0.0], [1.0, -2.0, 3.0]]), E[:2])


def test_max_samples_with_identical_rows(blobs5):
    X = blobs5[0][np.repeat(np.arange(100), 4)]  # every row four times
    ne = NeighborEmbedding(n_components=2, max_samples=150, random_state=0).fit(X)
    assert ne.embedding_.shape == (150, 2)
    E = ne.transform(X)
    np.testing.assert_array_equal(E[ne.fit_indices_], ne.embedding_)
    np.testing.assert_array_equal(E, np.repeat(E[::4], 4, axis=0))


@pytest.mark.parametrize("n_samples", [1, 2, 3])
def test_tiny_data(n_samples):
    X = np.arange(n_samples * 3, dtype=float).reshape(n_samples, 3)
    E = NeighborEmbedding(n_components=2, n_neighbors=15, random_state=0).fit_transform(X)
    assert E.shape == (n_samples, 2) and np.all(np.isfinite(E))


def test_duplicates_and_constant_data(train_seed):
    X = np.ones((20, 4))
    E = NeighborEmbedding(n_components=3, random_state=train_seed).fit_transform(X)
    assert np.all(np.isfinite(E))
    X = np.vstack([np.zeros((10, 2)), np.full((10, 2), 5.0)])
    E = NeighborEmbedding(n_components=2, random_state=train_seed).fit_transform(X)
    labels = KMeans(n_clusters=2, n_init=5, random_state=train_seed).fit_predict(E)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(np.repeat([0, 1], 10), labels), "==", 1.0)


def test_bad_input():
    ne = NeighborEmbedding()
    with pytest.raises(ValueError, match="NaN"):
        ne.fit(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="2D array"):
        ne.fit(np.zeros(5))
    ne.fit(np.random.default_rng(0).normal(size=(30, 3)))
    with pytest.raises(ValueError, match="3 features"):
        ne.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="n_neighbors"):
        NeighborEmbedding(n_neighbors=0).fit(np.zeros((5, 2)))


def test_pickle_and_unavailable_device(blobs5):
    X = blobs5[0]
    ne = NeighborEmbedding(random_state=0).fit(X)
    clone = pickle.loads(pickle.dumps(ne))
    np.testing.assert_array_equal(clone.transform(X[:20]), ne.transform(X[:20]))
    if not torch.cuda.is_available():
        # A model fitted on a GPU transforms on the CPU where there is none.
        clone.device = "cuda"
        np.testing.assert_array_equal(clone.transform(X[:20]), ne.transform(X[:20]))


def test_verbose_progress(blobs5, capsys):
    NeighborEmbedding(n_epochs=1, verbose=1, random_state=0).fit(blobs5[0])
    err = capsys.readouterr().err
    assert "k-NN graph" in err and "layout" in err


def test_n_epochs_sets_the_number_of_steps(blobs5):
    ne = NeighborEmbedding(n_epochs=0, init="random", random_state=0).fit(blobs5[0])
    # No optimisation: the (random) initial layout is kept, inside the box.
    assert ne.embedding_.min() >= 0 and ne.embedding_.max() <= 10
    # 'auto' on small graphs: 100 passes while under 500 steps, never fewer than 50 passes.
    assert NeighborEmbedding()._schedule(8192) == (8192, 100)
    assert NeighborEmbedding()._schedule(40_000) == (8192, 2 * math.ceil(50 * 40_000 / 8192))
    assert NeighborEmbedding()._schedule(60_000) == (8192, 500)
    assert NeighborEmbedding()._schedule(82_000) == (8192, 501)
    assert NeighborEmbedding()._schedule(100_000) == (8192, math.ceil(50 * 100_000 / 8192))
    assert NeighborEmbedding(n_epochs=100, batch_size=1000)._schedule(5000) == (1000, 500)
    assert NeighborEmbedding(n_epochs=3)._schedule(100) == (100, 3)  # one batch = the whole graph
    assert NeighborEmbedding()._schedule(0) == (1, 0)  # no graph (one distinct sample)


def test_default_reducer_of_the_estimator(digits, train_seed):
    X, y = digits
    X, y = X[:600], y[:600]
    params = dict(architecture=MLP((64,)), latent_dim=8, epochs=30, random_state=train_seed)
    model = AutoencoderKMeans(n_clusters=10, **params).fit(X)
    assert isinstance(model.reducer_, NeighborEmbedding)
    assert model.reducer_.n_components == 8  # min(max(n_clusters, 10), latent_dim)
    assert "refine_loss" not in model.history_  # 'auto' refines only affine stages
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.transform(X).shape == (600, 8)
    plain = AutoencoderKMeans(n_clusters=10, reducer=None, refine=None, **params).fit(X)
    # The neighbour embedding of the same codes clusters digits better, by 0.04 to 0.16
    # over seeds 0-9 (mean 0.09): too spread for a bound three deviations above 0, so
    # the checks are its accuracy and that it never loses much.
    accuracy = cluster_accuracy(y, model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.535, max 0.732, mean 0.613 ± 0.053
    check_trained(accuracy, ">", 0.35)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.0267, max 0.168, mean 0.0875 ± 0.042
    check_trained(accuracy - cluster_accuracy(y, plain.labels_), ">", -0.05)


@pytest.mark.parametrize(
    "params",
    [
        dict(reducer=None),
        dict(reducer=PCA(n_components=2)),
        dict(refine="idec"),
        dict(refine="kmeans"),
    ],
)
def test_auto_reducer_steps_aside(blobs, fast_params, params):
    model = AutoencoderKMeans(n_clusters=3, random_state=0, **fast_params, **params)
    model.fit(blobs[0])
    assert not isinstance(model.reducer_, NeighborEmbedding)
    assert "refine_loss" in model.history_  # an affine second stage: refinement ran


def test_auto_reducer_not_used_by_partial_fit(blobs, fast_params):
    model = AutoencoderKMeans(n_clusters=3, random_state=0, **fast_params)
    model.partial_fit(blobs[0])
    assert model.reducer_ is None


def test_explicit_neighbor_embedding_reducer(blobs, fast_params, train_seed):
    X, y = blobs
    model = AutoencoderKMeans(
        n_clusters=3,
        reducer=NeighborEmbedding(n_components=2, n_neighbors=10),
        clusterer="gmm",
        random_state=train_seed,
        **fast_params,
    ).fit(X)
    assert model.reducer_.n_neighbors == 10 and model.reducer_.random_state is not None
    assert model.transform(X).shape == (150, 2)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.753, max 1, mean 0.976 ± 0.055
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.7)  # a 2-D layout of 150 rows
    with pytest.raises(ValueError, match="cannot be combined with reducer"):
        AutoencoderKMeans(n_clusters=3, reducer=NeighborEmbedding(), refine="idec").fit(X)


def test_pipeline_without_autoencoder_on_digits(digits, train_seed):
    """The documented configuration for small data: scaler -> NeighborEmbedding -> k-means."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    pipe = make_pipeline(
        StandardScaler(),
        NeighborEmbedding(n_components=10, random_state=train_seed),
        KMeans(n_clusters=10, n_init=10, random_state=train_seed),
    )
    labels = pipe.fit_predict(X)
    np.testing.assert_array_equal(pipe.predict(X), labels)
    plain = KMeans(n_clusters=10, n_init=10, random_state=train_seed).fit_predict(X)
    # benchmarks/results/quality.md: 0.936 against k-means' 0.79 on all 1,797 digits.
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.935, max 0.943, mean 0.937 ± 0.0019
    check_trained(cluster_accuracy(y, labels), ">", 0.9)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.14, max 0.151, mean 0.144 ± 0.0028
    check_trained(cluster_accuracy(y, labels) - cluster_accuracy(y, plain), ">", 0.1)


# ------------------------------------------------- search and sampling at scale
CPU = torch.device("cpu")


def _has(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)])


@pytest.mark.parametrize("method", ["kdtree", "hnsw"])  # nndescent: its own test, below
def test_neighbor_index_graph_matches_the_exact_graph(method):
    pytest.importorskip({"hnsw": "faiss"}.get(method, "scipy"))
    X, _ = make_blobs(n_samples=2_000, centers=8, n_features=6, random_state=0)
    X = X.astype(np.float32)
    T = torch.from_numpy(X)
    exact_dist, exact_index = knn_search(T, T, 10, exclude_self=True)
    dist, index = NeighborIndex(X, method, random_state=0).graph(10, CPU)
    assert index.shape == (2_000, 10) and dist.dtype == torch.float32
    assert not (index == torch.arange(2_000)[:, None]).any()  # never a row's own index
    recall = _recall(index.numpy(), exact_index.numpy())
    if method == "kdtree":
        assert recall == 1.0  # exact
        np.testing.assert_allclose(dist.numpy(), exact_dist.numpy(), rtol=1e-4, atol=1e-5)
    else:
        assert recall >= 0.95  # approximate
    assert torch.all(dist[:, 1:] >= dist[:, :-1])


@pytest.mark.parametrize("method", ["exact", "kdtree", "hnsw"])  # nndescent queries: HNSW
def test_neighbor_index_query_is_batch_independent(method):
    pytest.importorskip({"hnsw": "faiss"}.get(method, "scipy"))
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1_500, 5)).astype(np.float32)
    queries = np.vstack([rng.normal(size=(57, 5)), data[[3, 700, 1499]]]).astype(np.float32)
    index = NeighborIndex(data, method, random_state=0)
    whole = index.query(queries, 7, CPU)
    for i in (0, 13, 59):
        one = index.query(queries[i : i + 1], 7, CPU)
        torch.testing.assert_close(one[1][0], whole[1][i], rtol=0, atol=0)
        torch.testing.assert_close(one[0][0], whole[0][i], rtol=0, atol=0)
    # A query equal to a data row finds it first, at distance 0 (approximate methods too).
    np.testing.assert_array_equal(whole[1][57:, 0].numpy(), [3, 700, 1499])
    np.testing.assert_array_equal(whole[0][57:, 0].numpy(), 0.0)
    # The tree is not pickled, and is rebuilt to the same answers.
    again = pickle.loads(pickle.dumps(index))
    assert again._tree is None
    torch.testing.assert_close(again.query(queries, 7, CPU)[1], whole[1], rtol=0, atol=0)


def test_choose_method_by_size_dimension_and_device(monkeypatch):
    import skdeepcluster.embedding._neighbors as neighbors

    pytest.importorskip("faiss")
    pytest.importorskip("pynndescent")
    assert choose_method(20_000, 10, CPU) == "exact"
    assert choose_method(20_001, 10, CPU) == "hnsw"
    assert choose_method(299_999, 784, CPU) == "hnsw"
    assert choose_method(300_000, 10, CPU) == "nndescent"
    assert choose_method(10_000_000, 784, CPU) == "nndescent"
    assert choose_method(10_000_000, 10, torch.device("cuda")) == "exact"
    monkeypatch.setattr(neighbors, "EXACT_MAX_SAMPLES", 10)
    X = np.random.default_rng(0).normal(size=(30, 4))
    ne = NeighborEmbedding(n_components=2, n_epochs=1, random_state=0).fit(X)
    assert ne._index.method == "hnsw"
    # Without pynndescent, HNSW at every size.
    monkeypatch.setattr(neighbors, "_importable", lambda name: name == "faiss")
    assert choose_method(10_000_000, 10, CPU) == "hnsw"
    # Without faiss: scipy's KD-tree in low dimension, pynndescent (or exact) beyond.
    monkeypatch.setattr(neighbors, "_importable", lambda name: name == "pynndescent")
    assert choose_method(20_001, 32, CPU) == "kdtree"
    assert choose_method(20_001, 33, CPU) == "nndescent"
    monkeypatch.setattr(neighbors, "_importable", lambda name: False)
    assert choose_method(20_001, 784, CPU) == "exact"


def test_nndescent_graph_is_approximate_reproducible_and_its_queries_go_to_hnsw():
    """Every check of pynndescent's index in one test.

    numba compiles pynndescent's kernels in each process that first uses them (about
    35 s of a core; its cache does not cover them), and ``pytest -n auto`` spreads a
    module's tests over the workers: one test compiles them once.
    """
    pytest.importorskip("faiss")
    pytest.importorskip("pynndescent")
    X, _ = make_blobs(n_samples=2_000, centers=8, n_features=6, random_state=0)
    X = X.astype(np.float32)
    T = torch.from_numpy(X)
    _, exact_index = knn_search(T, T, 10, exclude_self=True)
    first = NeighborIndex(X, "nndescent", random_state=3).graph(10, CPU)
    dist, index = first
    assert index.shape == (2_000, 10) and dist.dtype == torch.float32
    assert not (index == torch.arange(2_000)[:, None]).any()  # never a row's own index
    assert _recall(index.numpy(), exact_index.numpy()) >= 0.95  # approximate
    assert torch.all(dist[:, 1:] >= dist[:, :-1])
    again = NeighborIndex(X, "nndescent", random_state=3)
    torch.testing.assert_close(again.graph(10, CPU), first, rtol=0, atol=0)
    # The graph's search structure is not kept; queries build faiss's HNSW index,
    # whose answers depend on each query alone (the query test's 'hnsw' case), also
    # after pickling.
    assert again._tree is None
    queries = X[:40] + np.float32(0.01)
    hnsw = NeighborIndex(X, "hnsw", random_state=3).query(queries, 5, CPU)
    torch.testing.assert_close(again.query(queries, 5, CPU), hnsw, rtol=0, atol=0)
    restored = pickle.loads(pickle.dumps(again))
    torch.testing.assert_close(restored.query(queries, 5, CPU), hnsw, rtol=0, atol=0)


def test_large_neighbor_search_gives_the_same_embedding_as_exact(blobs5, train_seed):
    X = blobs5[0]
    exact = NeighborEmbedding(n_components=2, neighbor_search="exact", random_state=train_seed)
    tree = NeighborEmbedding(n_components=2, neighbor_search="kdtree", random_state=train_seed)
    E, T = exact.fit_transform(X), tree.fit_transform(X)
    # The same (exact) graph up to float rounding of the distances: nearly the same layout.
    labels_e = KMeans(n_clusters=5, n_init=5, random_state=train_seed).fit_predict(E)
    labels_t = KMeans(n_clusters=5, n_init=5, random_state=train_seed).fit_predict(T)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(labels_e, labels_t), "==", 1.0)
    np.testing.assert_array_equal(tree.transform(X), T)


def _draws(weights, batch_size, n_batches, seed=0):
    batches = edge_batches(np.asarray(weights), batch_size, torch.Generator().manual_seed(seed))
    return torch.cat([next(batches) for _ in range(n_batches)])


def test_edge_batches_follow_the_weights():
    # Five weights, each on 200 edges: rounds of about 1,000 draws, so 400,000 draws are
    # 400 rounds (five edges alone would take 80,000 rounds of Python's per-round work).
    pattern = np.array([0.1, 0.0, 0.5, 0.3, 0.1])
    weights = np.tile(pattern, 200)
    draws = _draws(weights, 1000, 400)
    assert draws.dtype == torch.long and draws.shape == (400_000,)
    assert draws.min() >= 0 and draws.max() <= weights.size - 1
    freq = np.bincount(draws.numpy() % 5, minlength=5) / 400_000
    np.testing.assert_allclose(freq, pattern / pattern.sum(), atol=3e-3)
    assert freq[1] == 0.0  # a zero weight is never drawn
    per_edge = np.bincount(draws.numpy(), minlength=weights.size)
    expected = 400_000 * weights / weights.sum()  # about 400 rounds, a Bernoulli each
    assert np.all(np.abs(per_edge - expected) <= 60)  # six standard deviations (10 draws)


def test_edge_batches_are_stratified_rounds():
    # One round holds each edge round(n_edges * w / sum(w)) times, up or down by one.
    rng = np.random.default_rng(0)
    weights = rng.random(5000) ** 3
    draws = _draws(weights, 100, 45)  # 4,500 draws: within the first round
    expected = 5000 * weights / weights.sum()
    counts = np.bincount(draws.numpy(), minlength=5000)
    assert np.all(counts <= np.floor(expected) + 1)
    # Shuffled: the first batch is not the edges in order.
    assert not torch.equal(draws[:100], torch.sort(draws[:100]).values)


def test_edge_batches_are_reproducible_and_unlimited():
    # torch.multinomial refuses more than 2**24 categories; the rounds do not.
    n_edges = 2**24 + 5
    weights = np.ones(n_edges, dtype=np.float32)
    draws = _draws(weights, 100_000, 1)
    assert draws.max() < n_edges and draws.max() > n_edges * 0.99
    torch.testing.assert_close(draws, _draws(weights, 100_000, 1), rtol=0, atol=0)
    assert not torch.equal(draws, _draws(weights, 100_000, 1, seed=1))


def _blobs_layout_problem(n_samples, batch_size):
    X, y = make_blobs(n_samples=n_samples, centers=4, n_features=6, random_state=2)
    data = torch.as_tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    graph = fuzzy_neighbor_graph(*knn_search(data, data, 10, exclude_self=True))
    start = _initial_layout(data, 2, "pca", torch.Generator().manual_seed(0))
    a, b = layout_curve_params(0.1)
    params = dict(batch_size=batch_size, negative_sample_rate=5, learning_rate=1.0, a=a, b=b)
    return y, graph, start, params


@pytest.mark.parametrize("n_samples, batch_size, n_steps", [(300, 4096, 1), (2000, 64, 5)])
def test_numba_and_torch_layout_steps_agree(n_samples, batch_size, n_steps):
    """The compiled CPU loop does the torch step's arithmetic on the same draws.

    300 rows: the step's run of negatives wraps around the points several times,
    and every point is touched many times (one step: the layout is chaotic at a
    step size of 1, and float rounding grows by 30 times a step); 2,000 rows with
    64 edges per step: it does not wrap.
    """
    _, graph, start, params = _blobs_layout_problem(n_samples, batch_size)
    layouts = [
        optimize_layout(start, graph, n_steps=n_steps, kernel=kernel,
                        generator=torch.Generator().manual_seed(3), **params)
        for kernel in ("numba", "torch")
    ]  # fmt: skip
    assert (layouts[0] - start).abs().max() > 1.0
    torch.testing.assert_close(layouts[0], layouts[1], rtol=0, atol=1e-4)
    assert torch.equal(start, _blobs_layout_problem(n_samples, batch_size)[2])  # unchanged


def _pull_formula(diff, a, b):
    d2 = (diff * diff).sum(-1, keepdim=True).clamp_min(1e-12)
    return 2.0 * a * b * d2 ** (b - 1.0) / (1.0 + a * d2**b) * diff


def _push_formula(diff, a, b):
    d2 = (diff * diff).sum(-1, keepdim=True).clamp_min(1e-12)
    adb = a * d2**b
    return 2.0 * a * b * d2 ** (b - 1.0) * (1.0 / (1.0 + adb) - 1.0 / (adb + 1e-3)) * diff


def test_pull_and_push_give_the_formulas_bits():
    diff = torch.randn(500, 7, 3, generator=torch.Generator().manual_seed(0))
    diff[0, 0] = 0.0
    a, b = layout_curve_params(0.1)
    assert torch.equal(_pull(diff, a, b), _pull_formula(diff, a, b))
    assert torch.equal(_push(diff, a, b), _push_formula(diff, a, b))


def _refine_by_formula(Y, dist, index, embedding, negatives, nsr, a, b, learning_rate):
    """``refine_placement``'s steps written as the formula, a temporary per operation."""
    weights = _membership(dist).to(embedding.dtype)
    total, targets, n_steps = weights.sum(1, keepdim=True), embedding[index], negatives.shape[0]
    for step in range(n_steps):
        grad = (weights[:, :, None] * _pull_formula(Y[:, None, :] - targets, a, b)).sum(1)
        push = _push_formula(Y[:, None, :] - embedding[negatives[step]][None], a, b).mean(1)
        grad = _clipped((grad + total * push * nsr) / total)
        Y = Y - learning_rate * (1.0 - step / n_steps) * grad
    return Y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, k, c, m", [(700, 15, 10, 75), (5, 1, 1, 3), (33, 4, 2, 9)])
def test_refine_placement_follows_the_formula(dtype, n, k, c, m):
    """The buffered steps, with the push as products with the shared negatives, are the formula.

    The products change the rounding, not the result: the difference from the
    formula, a temporary per operation, is at the level of float64 rounding
    (and of float32 rounding for a float32 embedding); the inputs are unchanged.
    """
    g = torch.Generator().manual_seed(n + k)
    embedding = 5 * torch.randn(2000, c, generator=g, dtype=dtype)
    index = torch.randint(2000, (n, k), generator=g)
    dist = torch.rand(n, k, generator=g).sort(1).values
    dist[0, 0] = 0.0  # a query on a data row
    start = interpolate_embedding(dist, index, embedding)
    negatives = torch.randint(2000, (30, m), generator=g)
    a, b = layout_curve_params(0.1)
    kept = start.clone()
    moved = refine_placement(start, dist, index, embedding, negatives, negative_sample_rate=5,
                             a=a, b=b, learning_rate=1.0)  # fmt: skip
    expected = _refine_by_formula(
        start.double(), dist, index, embedding.double(), negatives, 5, a, b, 1.0
    )
    assert (moved - start).abs().max() > 0.01 and moved.dtype == dtype
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(moved.double(), expected, rtol=tolerance, atol=tolerance)
    assert torch.equal(start, kept)


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_layout_kernels_separate_blobs_and_report_progress(kernel, train_seed):
    y, graph, start, params = _blobs_layout_problem(600, 1024)

    class Bar:
        done = 0

        def update(self, n):
            self.done += n

    bar = Bar()
    seeded = torch.Generator().manual_seed
    layout = optimize_layout(start, graph, n_steps=150, kernel=kernel, progress=bar,
                             generator=seeded(train_seed), **params)  # fmt: skip
    assert bar.done == 150
    labels = KMeans(n_clusters=4, n_init=5, random_state=train_seed).fit_predict(layout.numpy())
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, labels), "==", 1.0)
    again = optimize_layout(start, graph, n_steps=150, kernel=kernel,
                            generator=seeded(train_seed), **params)  # fmt: skip
    assert torch.equal(layout, again)


def test_prefetched_keeps_order_errors_and_stops_early():
    assert list(_prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise RuntimeError("draw failed")

    items = _prefetched(failing())
    assert next(items) == 1
    with pytest.raises(RuntimeError, match="draw failed"):
        next(items)
    endless = _prefetched(iter(int, 1), depth=2)  # never exhausted
    assert next(endless) == 0
    endless.close()  # the worker stops instead of blocking on a full queue


def test_layout_kernel_must_exist_on_the_device():
    _, graph, start, params = _blobs_layout_problem(100, 64)
    with pytest.raises(ValueError, match="kernel='cuda'"):
        optimize_layout(start, graph, n_steps=1, kernel="cuda",
                        generator=torch.Generator(), **params)  # fmt: skip
    with pytest.raises(ValueError, match="kernel='numba' is not available on meta"):
        optimize_layout(start.to("meta"), graph, n_steps=1, kernel="numba",
                        generator=torch.Generator(), **params)  # fmt: skip


def test_estimator_keeps_the_neighbor_embedding_above_100000_rows(monkeypatch):
    """No cliff: reducer='auto' is a NeighborEmbedding on an HNSW graph at 120,000 rows."""
    import skdeepcluster.embedding._neighbor_embedding as module

    # A few layout steps keep the test fast; the search and the graph are the real ones.
    monkeypatch.setattr(module.NeighborEmbedding, "_schedule", lambda self, n_edges: (4096, 3))
    X, _ = make_blobs(n_samples=120_000, centers=3, n_features=3, random_state=0)
    model = AutoencoderKMeans(
        n_clusters=3, architecture=MLP((4,)), latent_dim=2, epochs=1, batch_size=1024,
        n_init=1, random_state=0,
    )  # fmt: skip
    model.fit(X)
    assert isinstance(model.reducer_, NeighborEmbedding)
    assert model.reducer_.embedding_.shape == (120_000, 2)
    assert model.reducer_._index.method == ("hnsw" if _has("faiss") else "kdtree")
    assert model.labels_.shape == (120_000,)
    np.testing.assert_array_equal(model.predict(X[:1000]), model.labels_[:1000])


def test_transform_steps_optimise_new_points_only(train_seed):
    """transform_steps=0 is the interpolation; the steps move new points, not training rows."""
    X, y = make_blobs(n_samples=400, centers=4, n_features=8, random_state=3)
    ne = NeighborEmbedding(n_components=2, random_state=train_seed).fit(X[:300])
    plain = clone_with(ne, transform_steps=0).transform(X)
    refined = ne.transform(X)
    np.testing.assert_array_equal(refined[:300], ne.embedding_)
    np.testing.assert_array_equal(plain[:300], ne.embedding_)
    assert not np.allclose(refined[300:], plain[300:])
    # The new points land in their own cluster of the training layout.
    km = KMeans(n_clusters=4, n_init=10, random_state=train_seed).fit(ne.embedding_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y[300:], km.predict(refined[300:])), "==", 1.0)
    # Deterministic: a second call, and a pickled copy, give the same places.
    np.testing.assert_array_equal(ne.transform(X[300:]), refined[300:])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ne)).transform(X[300:]), refined[300:])


def clone_with(ne, **params):
    """A fitted NeighborEmbedding with other (transform-time) parameters."""
    twin = pickle.loads(pickle.dumps(ne))
    return twin.set_params(**params)


# ------------------------------------------------------------------ graph_
def test_graph_is_the_symmetric_fuzzy_graph_of_the_rows():
    X, _ = make_blobs(200, centers=3, n_features=5, random_state=0)
    X[1] = X[0]  # a copy shares its row's node
    ne = NeighborEmbedding(n_components=2, n_neighbors=10, random_state=0).fit(X)
    graph = ne.graph_
    assert graph.shape == (200, 200) and graph.dtype == np.float32
    assert abs(graph - graph.T).max() == 0
    assert graph.diagonal().max() == 0
    assert graph.data.min() > 0 and graph.data.max() <= 1
    assert graph[0, 1] == 0  # no edge between copies
    np.testing.assert_array_equal(graph[0].toarray(), graph[1].toarray())
    assert (graph[2] > 0).sum() >= 10  # at least its own neighbours


def test_graph_covers_the_fitted_rows_only():
    X, _ = make_blobs(120, centers=3, n_features=4, random_state=0)
    ne = NeighborEmbedding(n_components=2, max_samples=50, random_state=0).fit(X)
    assert ne.graph_.shape == (50, 50)


def test_exact_search_distances_are_correctly_rounded():
    # torch's float32 sqrt (CPU, two threads) was wrong by up to 5e-4 in some
    # processes; the distances are now the float64 ones, rounded once.
    X = np.random.default_rng(0).normal(size=(3000, 40)).astype(np.float32)
    points = torch.as_tensor(X)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        dist, index = knn_search(points, points, 15, exclude_self=True)
    finally:
        torch.set_num_threads(threads)
    X64 = X.astype(np.float64)
    diff = X64[:, None, :] - X64[index.numpy()]
    expected = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)).astype(np.float32)
    np.testing.assert_array_equal(dist.numpy(), expected)
