"""Clusters as communities of the neighbour graph: ``clusterer='graph'`` and the ``'auto'`` rule.

k-means on the neighbour embedding looks for compact, equally spread groups
of the layout. Where a class is not compact there (Fashion-MNIST's shirts,
pullovers and coats form one elongated region of the layout), it splits one
class and merges two others, although the neighbour graph of the codes --
the fuzzy k-NN graph the layout was made from -- still separates them. So
the embedding is cut into many small k-means clusters, which are merged by
their edges in that graph:

1. ``N_RUNS`` times, k-means cuts the embedding into ``N_MICRO`` small
   clusters (each run from its own seed), and the small clusters are merged
   greedily, the pair that raises the graph's modularity most first
   (Clauset, Newman and Moore, 2004), until ``n_clusters`` remain;
2. the runs vote: a finer k-means partition (``2 * N_MICRO`` clusters) is
   grouped by how often the runs put two of its clusters together (average
   linkage on that co-association), which steadies the greedy merges.

New data go to the community of their nearest fine cluster.

The ``'auto'`` clusterer keeps these communities only where the graph has
about ``n_clusters`` communities and they fit it better than k-means does:
their modularity is higher than that of the k-means clusters, and merging
down to ``n_clusters`` costs less than ``MAX_MODULARITY_DROP`` of modularity
from the best number of communities along the merge path. Measured on the
suite (``benchmarks/results/suite.md``, 2026-12-06; the defaults, seeds
0-2): Fashion-MNIST 0.566 / 0.567 / 0.581 -> 0.694 / 0.596 / 0.674 (k-means /
communities), the MNIST test set 0.951 / 0.949 / 0.940 -> 0.956 / 0.950 /
0.945; on digits, wine, blobs, the generated signals, iris, breast
cancer and two moons the rule keeps k-means (the communities alone would
lose up to 0.38 there: those graphs have many more, or fewer, natural
communities than classes: a modularity drop of 0.11-0.43 with 2 or 3
classes, against 0.003-0.023 on the two image sets).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning

from ._clustering import MINIBATCH_MIN_SAMPLES, MINIBATCH_SIZE, assign_nearest

#: Small clusters merged per run (at least ``MICRO_PER_CLUSTER`` per cluster asked for).
#: The vote of ten runs on the defaults' Fashion-MNIST embeddings of seeds 0-2 (fitted
#: on one thread): 30 small clusters 0.630 / 0.531 / 0.622, 50: 0.651 / 0.606 / 0.663,
#: 100: 0.699 / 0.695 / 0.674, 200: 0.702 / 0.695 / 0.679 (and twice the clustering time).
N_MICRO = 100
MICRO_PER_CLUSTER = 4

#: Above this many small clusters (``n_clusters > MAX_MICRO / MICRO_PER_CLUSTER``)
#: there are no communities: each greedy merge costs ``O(n_micro ** 3)``.
MAX_MICRO = 400

#: Merge runs that vote. Single runs on one Fashion-MNIST embedding spread over
#: 0.55-0.70 with the seed of their small clusters; the vote of ten over 0.61-0.70.
N_RUNS = 10

#: The small k-means clusters are fitted on at most this many rows (a random
#: subsample; every row then goes to its nearest centre). sklearn's
#: ``MiniBatchKMeans`` draws each batch with ``choice(n_samples, p=weights)``,
#: ``O(n_samples)`` per step: its eleven fits took 52 of the 91 s of this stage at a
#: million rows (``benchmarks/results/large.md``, 2026-12-06). Up to 250,000 rows
#: every row is used, as in the runs the suite and the large benchmark measured; a
#: subsample of 250,000 rows keeps 1,250 rows per fine cluster (on Fashion-MNIST,
#: 35,000-row subsamples, 175 rows per fine cluster, kept the ACC; 20,000 lost up to
#: 0.09). The large benchmark's 250,000-row default fit gave 0.605 ACC both ways.
MICRO_FIT_MAX_SAMPLES = 250_000

#: Edges per block of :func:`community_weights` (bounds its temporary arrays).
_EDGE_BLOCK = 2**22

#: The ``'auto'`` clusterer keeps the communities only when merging down to
#: ``n_clusters`` loses less modularity than this from the best count on the path.
MAX_MODULARITY_DROP = 0.05


def community_weights(labels: np.ndarray, graph: sparse.spmatrix, n_groups: int) -> np.ndarray:
    """Total edge weight between (and, on the diagonal, within) groups of nodes.

    Parameters
    ----------
    labels : ndarray of shape (n_nodes,)
        Group of each node of ``graph``, in ``0 .. n_groups - 1``.
    graph : sparse matrix of shape (n_nodes, n_nodes)
        Symmetric edge weights.
    n_groups : int
        Number of groups.

    Returns
    -------
    ndarray of shape (n_groups, n_groups)
        ``W[a, b]``: the sum of ``graph[i, j]`` over nodes ``i`` of ``a`` and
        ``j`` of ``b`` (symmetric).
    """
    # A bincount of the edges' group pairs, over blocks of rows: O(nnz) time and
    # O(_EDGE_BLOCK) memory. ``member.T @ graph @ member`` with scipy's sparse
    # products, as before, took 1.5 s per call at 250,000 rows and made two CSC
    # copies of the graph and an n_groups x n_rows product per call; see
    # ``benchmarks/results/large.md``, 2026-12-06.
    graph = sparse.csr_matrix(graph)
    labels = np.asarray(labels, dtype=np.int64)
    n_rows, indptr = graph.shape[0], graph.indptr
    block = max(1, _EDGE_BLOCK * n_rows // max(1, graph.nnz))
    weights = np.zeros(n_groups * n_groups)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        lo, hi = indptr[start], indptr[stop]
        sources = np.repeat(labels[start:stop], np.diff(indptr[start : stop + 1]))
        pairs = sources * n_groups + labels[graph.indices[lo:hi]]
        weights += np.bincount(pairs, weights=graph.data[lo:hi], minlength=n_groups * n_groups)
    return weights.reshape(n_groups, n_groups)


def modularity(weights: np.ndarray) -> float:
    """Newman's modularity of a partition, from its :func:`community_weights`."""
    total = weights.sum()
    if total <= 0:
        return 0.0
    volume = weights.sum(axis=1) / total
    return float(np.trace(weights) / total - np.sum(volume**2))


def greedy_merge(weights: np.ndarray, n_clusters: int) -> tuple[np.ndarray, dict[int, float]]:
    """Merge groups greedily by modularity gain, down to one (CNM).

    Parameters
    ----------
    weights : ndarray of shape (n_groups, n_groups)
        :func:`community_weights` of the starting groups.
    n_clusters : int
        The number of merged groups whose assignment is returned
        (``1 <= n_clusters <= n_groups``).

    Returns
    -------
    assignment : ndarray of shape (n_groups,)
        Merged group ``0 .. n_clusters - 1`` of each starting group when
        ``n_clusters`` groups were left, numbered in order of their first
        starting group.
    path : dict
        Modularity of the partition with ``c`` groups, for ``c`` from
        ``n_groups`` down to 1.
    """
    W = np.array(weights, dtype=np.float64)
    np.fill_diagonal(W, 0.0)  # within-group weight does not change the gains
    n_groups = W.shape[0]
    total = weights.sum()
    volume = weights.sum(axis=1) / total if total > 0 else np.zeros(n_groups)
    group = np.arange(n_groups)
    alive = np.ones(n_groups, dtype=bool)
    score = modularity(weights)
    path = {n_groups: score}
    assignment = group.copy()
    for left in range(n_groups - 1, 0, -1):
        gain = 2.0 * (W / max(total, np.finfo(float).tiny) - np.outer(volume, volume))
        gain[~alive] = -np.inf
        gain[:, ~alive] = -np.inf
        np.fill_diagonal(gain, -np.inf)
        a, b = np.unravel_index(np.argmax(gain), gain.shape)
        score += gain[a, b]
        W[a] += W[b]
        W[:, a] += W[:, b]
        W[a, a] = W[b] = W[:, b] = 0.0
        volume[a] += volume[b]
        volume[b] = 0.0
        alive[b] = False
        group[group == b] = a
        path[left] = float(score)
        if left == n_clusters:
            assignment = group.copy()
    return np.unique(assignment, return_inverse=True)[1].ravel(), path


class GraphCommunities:
    """Fitted communities of the neighbour graph: what ``predict`` needs.

    Attributes
    ----------
    fine_centers_ : ndarray of shape (n_fine, n_components)
        Centres of the fine k-means clusters of the embedding.
    fine_to_cluster_ : ndarray of shape (n_fine,)
        Community of each fine cluster.
    cluster_centers_ : ndarray of shape (n_clusters, n_components)
        Mean embedding of each community's training samples.
    modularity_ : float
        Modularity of the communities in the graph.
    modularity_drop_ : float
        Mean loss of modularity, over the merge runs, from the best number of
        groups on the merge path to ``n_clusters``.
    """

    def __init__(self, fine_centers, fine_to_cluster, cluster_centers, modularity, drop):
        self.fine_centers_ = fine_centers
        self.fine_to_cluster_ = fine_to_cluster
        self.cluster_centers_ = cluster_centers
        self.modularity_ = modularity
        self.modularity_drop_ = drop

    def predict(self, embedding: np.ndarray) -> np.ndarray:
        """Community of each row: that of its nearest fine cluster (row by row)."""
        fine, _ = assign_nearest(embedding, self.fine_centers_)
        return self.fine_to_cluster_[fine]


def _small_kmeans(embedding: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One start of k-means with ``n`` clusters (mini-batch on large data); centres, labels.

    The labels are each row's nearest final centre (the fitted model's own
    labels, or its ``predict`` where it was fitted on a subsample); the fine
    clusters, which ``predict`` must reproduce, are assigned again with
    :func:`~skdeepcluster._clustering.assign_nearest`.
    """
    n_rows = embedding.shape[0]
    if n_rows >= MINIBATCH_MIN_SAMPLES:
        model = MiniBatchKMeans(n, n_init=1, batch_size=MINIBATCH_SIZE, random_state=seed)
    else:
        model = KMeans(n, n_init=1, random_state=seed)
    rows = None
    if n_rows > MICRO_FIT_MAX_SAMPLES:
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        rows = np.sort(rng.choice(n_rows, MICRO_FIT_MAX_SAMPLES, replace=False))
    with warnings.catch_warnings():  # fewer distinct rows than clusters: some stay empty
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(embedding if rows is None else embedding[rows])
    labels = model.labels_ if rows is None else model.predict(embedding)
    return model.cluster_centers_, labels.astype(np.int64, copy=False)


def _vote(fine: np.ndarray, labels: np.ndarray, n_fine: int, n_clusters: int) -> np.ndarray:
    """The community that most rows of each fine cluster got in one run."""
    counts = np.bincount(fine * n_clusters + labels, minlength=n_fine * n_clusters)
    return counts.reshape(n_fine, n_clusters).argmax(axis=1)


def fit_graph_communities(
    embedding: np.ndarray, graph: sparse.spmatrix, n_clusters: int, random_state: int
) -> GraphCommunities | None:
    """The consensus communities of ``graph`` (see the module's docstring).

    Parameters
    ----------
    embedding : ndarray of shape (n_samples, n_components)
        The embedding of the graph's nodes.
    graph : sparse matrix of shape (n_samples, n_samples)
        Their symmetric neighbour graph (e.g. ``NeighborEmbedding.graph_``).
    n_clusters : int
        Communities to find.
    random_state : int
        Seeds the k-means runs (one ``SeedSequence`` child each).

    Returns
    -------
    GraphCommunities or None
        None where there are too few samples for more small clusters than
        communities, where ``n_clusters`` needs more than ``MAX_MICRO`` small
        clusters, or where the vote leaves fewer than ``n_clusters``
        non-empty communities.
    """
    n_samples = embedding.shape[0]
    n_micro = min(max(N_MICRO, MICRO_PER_CLUSTER * n_clusters), n_samples // 3)
    n_fine = min(2 * n_micro, n_samples // 2)
    if n_micro <= n_clusters or MICRO_PER_CLUSTER * n_clusters > MAX_MICRO:
        return None
    seeds = [
        int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_state).spawn(N_RUNS + 1)
    ]
    fine_centers, _ = _small_kmeans(embedding, n_fine, seeds[-1])
    fine, _ = assign_nearest(embedding, fine_centers)
    votes, drops = [], []
    for seed in seeds[:-1]:
        _, micro = _small_kmeans(embedding, n_micro, seed)
        weights = community_weights(micro, graph, n_micro)
        merged, path = greedy_merge(weights, n_clusters)
        drops.append(max(path.values()) - path[n_clusters])
        votes.append(_vote(fine, merged[micro], n_fine, n_clusters))
    votes = np.asarray(votes)
    together = (votes[:, :, None] == votes[:, None, :]).mean(axis=0)
    tree = linkage(squareform(1.0 - together, checks=False), method="average")
    fine_to_cluster = fcluster(tree, n_clusters, criterion="maxclust") - 1
    labels = fine_to_cluster[fine]
    if np.unique(labels).shape[0] < n_clusters:
        return None
    centers = np.stack([embedding[labels == c].mean(axis=0) for c in range(n_clusters)])
    score = modularity(community_weights(labels, graph, n_clusters))
    return GraphCommunities(fine_centers, fine_to_cluster, centers, score, float(np.mean(drops)))


def prefer_communities(
    communities: GraphCommunities | None, kmeans_labels: np.ndarray, graph: sparse.spmatrix
) -> bool:
    """The ``'auto'`` rule: keep the communities instead of the k-means clusters?

    Yes when the graph has about as many communities as asked for (the
    merge costs less than ``MAX_MODULARITY_DROP``) and the communities fit it
    better than the k-means clusters (higher modularity).
    """
    if communities is None or communities.modularity_drop_ >= MAX_MODULARITY_DROP:
        return False
    n_groups = int(kmeans_labels.max()) + 1
    kmeans_score = modularity(community_weights(kmeans_labels, graph, n_groups))
    return communities.modularity_ > kmeans_score
