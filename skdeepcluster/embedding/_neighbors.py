"""k-nearest-neighbour search: exact torch tiles on any device, faiss HNSW, KD-tree, NN-descent."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch

from ._unique import RowLookup

#: Entries computed at once by the exact k-NN search (128 MiB of float32).
_KNN_BLOCK_ENTRIES = 2**25

#: Candidates kept beyond ``n_neighbors`` from the approximate distances, re-ranked exactly.
_CANDIDATE_MARGIN = 8


def knn_search(
    queries: torch.Tensor,
    data: torch.Tensor,
    n_neighbors: int,
    *,
    exclude_self: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean k-nearest neighbours of each query row among the ``data`` rows.

    Computed in blocks of queries so memory stays ``O(block * n_data)``: a
    few more candidates than needed come from the expanded squared distance
    ``|q|^2 - 2 q.x + |x|^2`` (one matrix product per block), and they are
    ranked by their exact distance (equal distances by index), so each
    query's neighbours depend on that query alone, not on the block.

    Parameters
    ----------
    queries : torch.Tensor of shape (n_queries, n_features)
        Points whose neighbours are searched.
    data : torch.Tensor of shape (n_data, n_features)
        Points among which they are searched, on the same device and with the
        same dtype as ``queries``.
    n_neighbors : int
        Neighbours per query, at most ``n_data`` (``n_data - 1`` with
        ``exclude_self``).
    exclude_self : bool, default=False
        Skip each row's own index; ``queries`` must then be ``data``.

    Returns
    -------
    dist : torch.Tensor of shape (n_queries, n_neighbors)
        Euclidean distances to the neighbours, nearest first.
    index : torch.Tensor of shape (n_queries, n_neighbors)
        Rows of ``data`` of the neighbours (int64), in the same order.
    """
    n_queries = queries.shape[0]
    n_candidates = min(n_neighbors + _CANDIDATE_MARGIN, data.shape[0] - int(exclude_self))
    sq_data = (data * data).sum(1)
    dist = torch.empty((n_queries, n_neighbors), dtype=data.dtype, device=data.device)
    index = torch.empty((n_queries, n_neighbors), dtype=torch.long, device=data.device)
    # Bounds both the (block, n_data) distances and the (block, k, n_features) float64
    # differences of _exact_nearest (twice the bytes of a float32 entry).
    widest = max(data.shape[0], 2 * n_candidates * data.shape[1], 1)
    block = max(64, _KNN_BLOCK_ENTRIES // widest)
    for start in range(0, n_queries, block):
        q = queries[start : start + block]
        d2 = (q * q).sum(1, keepdim=True) - 2.0 * (q @ data.T) + sq_data
        if exclude_self:
            rows = torch.arange(q.shape[0], device=data.device)
            d2[rows, rows + start] = math.inf
        _, candidates = torch.topk(d2, n_candidates, dim=1, largest=False)
        near_dist, near_index = _exact_nearest(q, data, candidates)
        dist[start : start + q.shape[0]] = near_dist[:, :n_neighbors]
        index[start : start + q.shape[0]] = near_index[:, :n_neighbors]
    return dist, index


def _exact_nearest(
    q: torch.Tensor, data: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each query's candidate neighbours by their exact distance, ties by index.

    The candidates come from the expanded squared distance, whose rounding
    depends on the matrix product's kernel, and so on the number of queries
    computed together. Ranking a few more candidates than needed by their
    exact distance makes each query's neighbours a function of that query
    alone (unless more than ``_CANDIDATE_MARGIN`` points are within rounding of
    the last neighbour's distance): ``transform`` does not depend on the batch.

    Parameters
    ----------
    q : torch.Tensor of shape (n_queries, n_features)
        Queries.
    data : torch.Tensor of shape (n_data, n_features)
        Points searched.
    candidates : torch.Tensor of shape (n_queries, n_candidates)
        Rows of ``data`` among which each query's neighbours are chosen.

    Returns
    -------
    dist : torch.Tensor of shape (n_queries, n_candidates)
        Exact Euclidean distances, ascending.
    index : torch.Tensor of shape (n_queries, n_candidates)
        The candidates in that order (equal distances: lower index first).
    """
    candidates = torch.sort(candidates, dim=1).values
    # In float64, rounded once at the end. torch's float32 sqrt on the CPU with two
    # threads was wrong by up to 5e-4 (on values near 1) for the first thread's rows
    # in about one process in five, and its float32 sums differed in the last bit
    # between processes; those distances gave another fuzzy graph and another layout
    # (the 3,000 signals of bench_suite.py: ACC 0.836 / 0.840 / 0.838 over three runs
    # of one seed). In float64 every process gave the same distances.
    wide = q.double()[:, None, :] - data[candidates].double()  # exact conversions
    exact = (wide * wide).sum(-1)
    exact, order = torch.sort(exact, dim=1, stable=True)
    return exact.sqrt().to(q.dtype), candidates.gather(1, order)


#: The methods of :class:`NeighborIndex` (``'auto'`` picks one, see ``choose_method``).
METHODS = ("auto", "exact", "hnsw", "kdtree", "nndescent")

#: faiss's HNSW graph: links per node, and the candidate lists of its construction and
#: search. Recall@15 0.9998 on the 10-D codes of 250,000 and 1,000,000 deformed digits
#: (benchmarks/results/large.md, "k-NN search").
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 64

#: The candidate list of the search for new points (``transform``, ``predict``): half
#: the graph's, for recall@15 0.989 instead of 0.999 on the 10-D codes of 1,000,000
#: deformed digits, in 58 % of the time; 0.2 % of the labels of 50,000 new rows change,
#: their ACC does not (benchmarks/results/large.md, "Searching for new points").
HNSW_EF_QUERY = 32

#: Links per node and construction list of the index built for new points alone, when
#: NN-descent made the graph: the search's recall@15 is 0.983 instead of 0.989 and the
#: one-threaded build of 1,000,000 rows takes 65 s instead of 97 s, on every process
#: that unpickles the model (benchmarks/results/large.md, "Searching for new points").
HNSW_QUERY_M, HNSW_QUERY_EF_CONSTRUCTION = 16, 48

#: Up to this many rows the CPU search is the exact tiled one: it is as fast as a tree
#: there (see ``benchmarks/results/large.md``, "k-NN search") and batch-independent.
EXACT_MAX_SAMPLES = 20_000

#: Up to this many features a KD-tree finds the exact neighbours in about
#: ``O(n log n)``; beyond, its pruning fails and approximate search is faster.
KDTREE_MAX_FEATURES = 32

#: From this many rows on, the graph is pynndescent's NN-descent (one thread): faiss's
#: single-threaded HNSW build grows faster than ``n log n`` (9 s at 150,000 rows, 17 s at
#: 250,000, 50 s at 500,000, 99 s at 1,000,000 with the search, on the 10-D PCA of the
#: deformed digits), while NN-descent took 21, 23, 29 and 43 s, of which about 18 s are
#: numba's start (benchmarks/results/large.md, "NN-descent for the graph"). They cost
#: the same near 300,000 rows.
NNDESCENT_MIN_SAMPLES = 300_000


def choose_method(n_samples: int, n_features: int, device: torch.device) -> str:
    """The search ``method='auto'`` stands for, by size, dimension and device.

    Parameters
    ----------
    n_samples, n_features : int
        Shape of the data searched.
    device : torch.device
        The device of the embedding.

    Returns
    -------
    {'exact', 'hnsw', 'kdtree', 'nndescent'}
        ``'exact'`` on a GPU (a matrix product per block of queries) and for
        small data; else ``'hnsw'`` (faiss, approximate, about
        ``O(n log n)``), and ``'nndescent'`` (pynndescent) from
        ``NNDESCENT_MIN_SAMPLES`` rows on. Where faiss is not installed,
        ``'kdtree'`` (scipy's, exact) in low dimension and ``'nndescent'`` in
        high dimension; the exact search where neither library is.
    """
    if device.type != "cpu" or n_samples <= EXACT_MAX_SAMPLES:
        return "exact"
    if n_samples >= NNDESCENT_MIN_SAMPLES and _importable("pynndescent"):
        return "nndescent"
    if _importable("faiss"):
        return "hnsw"
    if n_features <= KDTREE_MAX_FEATURES:
        return "kdtree"
    return "nndescent" if _importable("pynndescent") else "exact"


def _importable(name: str) -> bool:
    """Whether the module ``name`` is installed (found without importing it)."""
    return importlib.util.find_spec(name) is not None


class NeighborIndex:
    """The k nearest neighbours among fixed rows: built once, searched in fit and transform.

    Every method answers a query from that query alone (never from the other
    rows of the batch), so an embedding built on it is batch-independent.

    Parameters
    ----------
    data : ndarray of shape (n_data, n_features)
        The rows searched (float32, distinct).
    method : {'exact', 'hnsw', 'kdtree', 'nndescent'}
        ``'exact'``: :func:`knn_search`, on the given device. ``'hnsw'``:
        faiss's ``IndexHNSWFlat`` (approximate; built on one thread, so that
        the graph, and so a fit, is reproducible; searched on all of torch's
        threads). ``'kdtree'``:
        :class:`scipy.spatial.cKDTree` (exact; float64 distances).
        ``'nndescent'``: :class:`pynndescent.NNDescent` for the graph
        (approximate; on one thread, so that the graph does not depend on the
        number of threads); queries then go to faiss's HNSW index, built on
        the first query, since pynndescent's search draws its random starts
        from one state shared by the whole batch (pynndescent's own search
        where faiss is not installed).
    random_state : int, default=0
        Seed of the approximate search.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skdeepcluster.embedding import NeighborIndex
    >>> data = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
    >>> dist, index = NeighborIndex(data, "kdtree").graph(1, torch.device("cpu"))
    >>> index.ravel().tolist()
    [1, 0, 1]
    """

    def __init__(self, data, method: str, random_state: int = 0):
        self.data, self.method, self.random_state = data, method, random_state
        self._tree = self._lookup = None

    def graph(self, n_neighbors: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's ``n_neighbors`` nearest other rows: ``(dist, index)`` on ``device``."""
        if self.method == "nndescent":
            tree = self._nndescent(n_neighbors + 1)
            if not _importable("faiss"):
                self._tree = tree  # searched by pynndescent too
            index, dist = tree.neighbor_graph
            return _tensors(*_without_self(dist, index, n_neighbors), device)
        if self.method == "kdtree":
            dist, index = self._kdtree().query(self.data, n_neighbors + 1, workers=-1)
            return _tensors(*_without_self(dist, index, n_neighbors), device)
        if self.method == "hnsw":
            dist, index = self._hnsw_search(self.data, n_neighbors + 1, HNSW_EF_SEARCH)
            return _tensors(*_without_self(dist, index, n_neighbors), device)
        data = torch.as_tensor(self.data, device=device)
        return knn_search(data, data, n_neighbors, exclude_self=True)

    def query(
        self, queries: np.ndarray, n_neighbors: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n_neighbors`` nearest rows of each query: ``(dist, index)`` on ``device``.

        A query equal to a row always finds it first, at distance 0, also with
        the approximate methods: ``transform`` of the training rows gives
        their own embedding.
        """
        dist, index = self._search(queries, n_neighbors, device)
        if self._lookup is None:
            self._lookup = RowLookup(self.data)
        equal = torch.as_tensor(self._lookup.find(np.asarray(queries, self.data.dtype)))
        found = (equal >= 0).to(device)
        index[:, 0] = torch.where(found, equal.to(device), index[:, 0])
        dist[:, 0] = torch.where(found, torch.zeros_like(dist[:, 0]), dist[:, 0])
        return dist, index

    def _search(self, queries, n_neighbors, device):
        if self.method == "nndescent" and not _importable("faiss"):
            if self._tree is None:
                self._tree = self._nndescent(min(16, self.data.shape[0]))
            index, dist = self._tree.query(queries, k=n_neighbors)
        elif self.method in ("hnsw", "nndescent"):
            dist, index = self._hnsw_search(queries, n_neighbors, HNSW_EF_QUERY)
        elif self.method == "kdtree":
            dist, index = self._kdtree().query(queries, n_neighbors, workers=-1)
        else:
            data = torch.as_tensor(self.data, device=device)
            return knn_search(torch.as_tensor(queries, device=device), data, n_neighbors)
        shape = (len(queries), n_neighbors)
        return _tensors(dist.reshape(shape), index.reshape(shape), device)

    def _hnsw_search(self, queries, n_neighbors, ef_search: int):
        """faiss's HNSW search: Euclidean distances (it returns squared ones) and indices.

        The index is built on the first search: with the graph's parameters for
        ``'hnsw'`` (the graph is its search), with the lighter ``HNSW_QUERY_*``
        ones for ``'nndescent'`` (new points only).
        """
        import faiss

        # faiss and torch share one OpenMP runtime: faiss's thread setting is torch's,
        # so torch's own is restored afterwards (else the rest of the fit, and the
        # caller's process, ran on one thread after a build).
        threads = torch.get_num_threads()
        try:
            if self._tree is None:
                light = self.method == "nndescent"
                index = faiss.IndexHNSWFlat(self.data.shape[1], HNSW_QUERY_M if light else HNSW_M)
                index.hnsw.efConstruction = (
                    HNSW_QUERY_EF_CONSTRUCTION if light else HNSW_EF_CONSTRUCTION
                )
                faiss.omp_set_num_threads(1)  # a parallel build may link the graph differently
                index.add(np.ascontiguousarray(self.data, dtype=np.float32))
                self._tree = index
            self._tree.hnsw.efSearch = max(ef_search, n_neighbors)
            faiss.omp_set_num_threads(threads)  # each query on its own
            queries = np.ascontiguousarray(queries, dtype=np.float32)
            d2, index = self._tree.search(queries, n_neighbors)
        finally:
            torch.set_num_threads(threads)
        return np.sqrt(np.maximum(d2, 0.0)), index

    def _nndescent(self, n_neighbors: int):
        """pynndescent's NN-descent graph of the rows, on one thread (reproducible)."""
        from pynndescent import NNDescent

        return NNDescent(
            self.data, n_neighbors=n_neighbors, random_state=self.random_state, n_jobs=1
        )

    def _kdtree(self):
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.data)
        return self._tree

    def __getstate__(self):
        # The search structures are rebuilt on demand (seconds for a million rows).
        return {**vars(self), "_tree": None, "_lookup": None}


def _without_self(dist: np.ndarray, index: np.ndarray, n_neighbors: int):
    """Drop each row from its own ``n_neighbors + 1`` neighbours (not always first on ties)."""
    own = index == np.arange(index.shape[0])[:, None]
    own[~own.any(1), -1] = True  # not found (approximate search): drop the farthest
    shape = (index.shape[0], n_neighbors)
    return dist[~own].reshape(shape), index[~own].reshape(shape)


def _tensors(dist, index, device):
    dist = torch.as_tensor(np.asarray(dist, dtype=np.float32), device=device)
    return dist, torch.as_tensor(np.asarray(index, dtype=np.int64), device=device)
