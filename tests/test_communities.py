"""Clusters as communities of the neighbour graph (``clusterer='graph'`` and ``'auto'``)."""

import pickle

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from skdeepcluster import AutoencoderKMeans, NeighborEmbedding, _communities
from skdeepcluster._clustering import assign_nearest
from skdeepcluster._communities import (
    MAX_MICRO,
    MICRO_PER_CLUSTER,
    GraphCommunities,
    community_weights,
    fit_graph_communities,
    greedy_merge,
    modularity,
    prefer_communities,
)
from skdeepcluster.embedding import fuzzy_neighbor_graph, knn_search
from skdeepcluster.metrics import cluster_accuracy

from ._trained import check_trained


def knn_graph(X, k=10):
    points = torch.as_tensor(X, dtype=torch.float32)
    dist, index = knn_search(points, points, k, exclude_self=True)
    return fuzzy_neighbor_graph(dist, index).tocsr()


@pytest.fixture(scope="module")
def blocks():
    """A graph of three communities over an embedding that k-means cuts the wrong way.

    The graph is a stochastic block model (dense within each block, sparse
    between them); in the embedding, block 0 is a long stripe and blocks 1
    and 2 small blobs beside its middle, so k-means (compact clusters) cuts
    the stripe in three, while the graph ties its pieces together.
    """
    rng = np.random.default_rng(0)
    sizes = (300, 100, 100)
    y = np.repeat([0, 1, 2], sizes)
    X = np.vstack([
        np.column_stack([rng.uniform(0, 30, 300), rng.normal(0, 0.3, 300)]),
        rng.normal((15, 3), 0.5, (100, 2)),
        rng.normal((15, -3), 0.5, (100, 2)),
    ])
    same = y[:, None] == y[None, :]
    edges = np.triu(rng.random((500, 500)) < np.where(same, 0.1, 0.002), 1)
    graph = sparse.csr_matrix(edges + edges.T, dtype=np.float32)
    return X, y, graph


# ----------------------------------------------------------- the pieces
def test_modularity_of_two_disjoint_cliques():
    W = np.array([[10.0, 0.0], [0.0, 10.0]])
    assert modularity(W) == pytest.approx(0.5)
    assert modularity(np.array([[20.0]])) == pytest.approx(0.0)  # one group
    assert modularity(np.zeros((2, 2))) == 0.0


def test_community_weights_sum_the_edges_between_groups():
    graph = knn_graph(np.arange(12, dtype=float)[:, None], k=2)
    labels = np.repeat([0, 1, 2], 4)
    W = community_weights(labels, graph, 3)
    np.testing.assert_allclose(W, W.T)
    assert W.sum() == pytest.approx(graph.sum())
    assert W[0, 2] == 0.0  # no edge between the ends of the line


def test_community_weights_match_the_membership_product_in_any_block_size(monkeypatch):
    rng = np.random.default_rng(1)
    graph = sparse.random(300, 300, density=0.05, random_state=2, format="csr")
    graph = (graph + graph.T).tocsr()
    labels = rng.integers(0, 7, 300)
    member = sparse.csr_matrix((np.ones(300), (np.arange(300), labels)), shape=(300, 7))
    expected = (member.T @ graph @ member).toarray()
    np.testing.assert_allclose(community_weights(labels, graph, 7), expected, rtol=1e-12)
    monkeypatch.setattr(_communities, "_EDGE_BLOCK", 50)  # many blocks of rows
    np.testing.assert_allclose(community_weights(labels, graph.tocoo(), 7), expected, rtol=1e-12)


def test_small_clusters_of_a_subsample_label_every_row_by_its_nearest_centre(monkeypatch):
    X, _ = make_blobs(2000, n_features=3, centers=5, random_state=0)
    monkeypatch.setattr(_communities, "MICRO_FIT_MAX_SAMPLES", 500)
    centers, labels = _communities._small_kmeans(X, 20, seed=3)
    assert labels.shape == (2000,) and centers.shape == (20, 3)
    np.testing.assert_array_equal(labels, assign_nearest(X, centers)[0])
    again, _ = _communities._small_kmeans(X, 20, seed=3)
    np.testing.assert_array_equal(again, centers)  # the subsample follows the seed


def test_assign_nearest_is_the_same_in_blocks(monkeypatch):
    from skdeepcluster import _clustering

    rng = np.random.default_rng(4)
    X, centers = rng.normal(size=(1000, 4)), rng.normal(size=(30, 4))
    sq = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    monkeypatch.setattr(_clustering, "_ASSIGN_BLOCK_ENTRIES", 7 * centers.size)
    labels, nearest = assign_nearest(X, centers)
    np.testing.assert_array_equal(labels, sq.argmin(1))
    np.testing.assert_allclose(nearest, sq.min(1), rtol=1e-12)


def test_greedy_merge_joins_the_strongest_pairs_first():
    # Groups 0-1 and 2-3 are tightly linked, the pairs barely.
    W = np.array(
        [[5, 4, 0.1, 0], [4, 5, 0, 0.1], [0.1, 0, 5, 4], [0, 0.1, 4, 5]], dtype=float
    )
    assignment, path = greedy_merge(W, 2)
    assert assignment[0] == assignment[1] != assignment[2] == assignment[3]
    assert sorted(path) == [1, 2, 3, 4]
    assert max(path, key=path.get) == 2  # the best partition has two groups
    assert path[1] == pytest.approx(0.0)
    merged = np.eye(2)[assignment]  # one-hot: starting group -> merged group
    assert path[2] == pytest.approx(modularity(merged.T @ W @ merged))


# ------------------------------------------------------ the communities
def test_communities_follow_the_graph_where_kmeans_cuts_across(blocks, train_seed):
    X, y, graph = blocks
    communities = fit_graph_communities(X, graph, 3, random_state=train_seed)
    assert isinstance(communities, GraphCommunities)
    labels = communities.predict(X)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, labels), "==", 1.0)
    kmeans = KMeans(3, n_init=10, random_state=train_seed).fit_predict(X)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.43, max 0.43, mean 0.43 ± 0
    check_trained(cluster_accuracy(y, kmeans), "<", 0.8)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0, max 0, mean 0 ± 0
    check_trained(communities.modularity_drop_, "<", 0.01)
    assert prefer_communities(communities, kmeans, graph)
    assert communities.cluster_centers_.shape == (3, 2)
    for c in range(3):
        np.testing.assert_allclose(communities.cluster_centers_[c], X[labels == c].mean(0))


def test_communities_are_reproducible_and_batch_independent(blocks):
    X, _, graph = blocks
    a = fit_graph_communities(X, graph, 3, random_state=1)
    b = fit_graph_communities(X, graph, 3, random_state=1)
    np.testing.assert_array_equal(a.fine_to_cluster_, b.fine_to_cluster_)
    np.testing.assert_array_equal(a.fine_centers_, b.fine_centers_)
    one_by_one = np.concatenate([a.predict(X[i : i + 1]) for i in range(0, len(X), 7)])
    np.testing.assert_array_equal(one_by_one, a.predict(X)[::7])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict(X), a.predict(X))


def test_auto_rule_keeps_kmeans_when_the_graph_has_other_communities(train_seed):
    # Six separate blobs asked as two clusters: merging six communities into two
    # costs much modularity (the graph has six), so 'auto' keeps k-means.
    X, _ = make_blobs(600, centers=6, cluster_std=0.3, center_box=(-20, 20), random_state=0)
    graph = knn_graph(X)
    communities = fit_graph_communities(X, graph, 2, random_state=train_seed)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.416, max 0.42, mean 0.417 ± 0.0011
    check_trained(communities.modularity_drop_, ">", 0.05)
    kmeans = KMeans(2, n_init=10, random_state=train_seed).fit_predict(X)
    assert not prefer_communities(communities, kmeans, graph)
    assert not prefer_communities(None, kmeans, graph)


def test_no_communities_with_too_few_samples_or_too_many_clusters(blocks):
    X, _, graph = blocks
    assert fit_graph_communities(X[:9], graph[:9][:, :9], 3, random_state=0) is None
    too_many = MAX_MICRO // MICRO_PER_CLUSTER + 1
    assert fit_graph_communities(X, graph, too_many, random_state=0) is None


# ------------------------------------------------------------ estimator
def make(seed=0, **params):
    return AutoencoderKMeans(
        n_clusters=3, architecture="none", random_state=seed, device="cpu", **params
    )


@pytest.fixture(scope="module")
def blobs3():
    X, y = make_blobs(600, centers=3, n_features=5, cluster_std=1.0, random_state=0)
    return X, y


def test_graph_clusterer_in_the_estimator(blobs3, train_seed):
    X, y = blobs3
    model = make(train_seed, clusterer="graph").fit(X)
    assert isinstance(model.clusterer_, GraphCommunities)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.score(X) == pytest.approx(-model.inertia_)
    assert model.cluster_centers_.shape == (3, 5)  # 'auto' embedding: min(10, 5 features)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.labels_)
    again = make(train_seed, clusterer="graph").fit(X)
    np.testing.assert_array_equal(again.labels_, model.labels_)


def test_auto_clusterer_is_one_of_the_two(blobs3):
    X, y = blobs3
    auto = make().fit(X)
    kmeans = make(clusterer="kmeans").fit(X)
    graph = make(clusterer="graph").fit(X)
    if isinstance(auto.clusterer_, GraphCommunities):
        np.testing.assert_array_equal(auto.labels_, graph.labels_)
    else:
        assert auto.clusterer_ is None
        np.testing.assert_array_equal(auto.labels_, kmeans.labels_)
    np.testing.assert_array_equal(auto.predict(X), auto.labels_)


def test_graph_clusterer_falls_back_to_kmeans_with_a_warning():
    X, _ = make_blobs(8, centers=2, random_state=0)
    with pytest.warns(UserWarning, match="no 3 communities"):
        model = make(clusterer="graph").fit(X)
    assert model.clusterer_ is None  # k-means
    assert model.cluster_centers_.shape[0] == 3


def test_graph_clusterer_with_max_samples(blobs3, train_seed):
    X, y = blobs3
    reducer = NeighborEmbedding(2, max_samples=300)
    model = make(train_seed, clusterer="graph", reducer=reducer).fit(X)
    assert model.reducer_.fit_indices_.shape == (300,)
    assert not hasattr(model.reducer_, "graph_")  # used, then dropped: a lean model
    assert isinstance(model.clusterer_, GraphCommunities)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_graph_clusterer_refuses_refinement():
    with pytest.raises(ValueError, match="clusterer='kmeans'"):
        AutoencoderKMeans(3, clusterer="graph", reducer=None, refine="idec").fit(
            np.random.default_rng(0).normal(size=(50, 4))
        )
