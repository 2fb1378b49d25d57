"""A neighbour-graph embedding (UMAP-style) in PyTorch, as a scikit-learn transformer.

:class:`NeighborEmbedding` is the second stage of "N2D" (McConville et al.,
2020) without the optional ``umap-learn`` dependency: it builds the k-nearest
neighbour graph of the data, turns it into fuzzy membership weights (McInnes
et al., 2018), and lays the points out in a few dimensions so that neighbours
attract and random pairs repel. With ``min_dist=0`` clusters come out compact
and well separated, which is what k-means or a Gaussian mixture needs.

The pieces are small functions over tensors (exact k-NN in blocks, the
per-point bandwidths, the symmetric graph, the stochastic layout), run on any
torch device. New samples are placed by interpolating the embedding of their
nearest training samples; a sample equal to a training sample gets that
sample's embedding exactly, so ``fit(X).transform(X)`` equals
``fit_transform(X)``.

References
----------
L. McInnes, J. Healy and J. Melville, "UMAP: Uniform manifold approximation
and projection for dimension reduction", arXiv:1802.03426, 2018.

R. McConville, R. Santos-Rodriguez, R. J. Piechocki and I. Craddock, "N2D:
(Not too) deep clustering via clustering the local manifold of an
autoencoded embedding", ICPR 2020.
"""

from __future__ import annotations

import functools
import math
from numbers import Integral, Real

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import curve_fit
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._device import resolve_device

__all__ = [
    "NeighborEmbedding",
    "fuzzy_neighbor_graph",
    "interpolate_embedding",
    "knn_search",
    "layout_curve_params",
    "optimize_layout",
]

#: Entries computed at once by the exact k-NN search (128 MiB of float32).
_KNN_BLOCK_ENTRIES = 2**25

#: Bisection steps for the per-point bandwidths (float32 precision is reached well before).
_BANDWIDTH_STEPS = 64

#: The layout is initialised inside this box, as UMAP does.
_INIT_SCALE = 10.0

#: Per-coordinate clip of the layout's gradient (stability of the first steps).
_GRAD_CLIP = 4.0

#: Keeps the repulsion finite for coincident points.
_REPULSION_EPS = 1e-3


@functools.lru_cache(maxsize=32)
def layout_curve_params(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """``(a, b)`` of the low-dimensional similarity ``1 / (1 + a * d ** (2 * b))``.

    Fitted by least squares to ``1`` for ``d < min_dist`` and
    ``exp(-(d - min_dist) / spread)`` beyond, as in UMAP.
    """
    d = np.linspace(0.0, 3.0 * spread, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = curve_fit(
        lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), d, target, p0=(1.0, 1.0), maxfev=10_000
    )
    return float(a), float(b)


def knn_search(
    queries: torch.Tensor,
    data: torch.Tensor,
    n_neighbors: int,
    *,
    exclude_self: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean k-nearest neighbours of each query row among the ``data`` rows.

    Computed in blocks of queries so memory stays ``O(block * n_data)``.
    With ``exclude_self``, ``queries`` must be ``data`` and each row's own
    index is skipped. Returns distances and indices, each of shape
    ``(n_queries, n_neighbors)``, nearest first.
    """
    n_queries = queries.shape[0]
    sq_data = (data * data).sum(1)
    dist = torch.empty((n_queries, n_neighbors), dtype=data.dtype, device=data.device)
    index = torch.empty((n_queries, n_neighbors), dtype=torch.long, device=data.device)
    # Bounds both the (block, n_data) distances and the (block, k, n_features) differences.
    block = max(64, _KNN_BLOCK_ENTRIES // max(data.shape[0], n_neighbors * data.shape[1], 1))
    for start in range(0, n_queries, block):
        q = queries[start : start + block]
        d2 = (q * q).sum(1, keepdim=True) - 2.0 * (q @ data.T) + sq_data
        if exclude_self:
            rows = torch.arange(q.shape[0], device=data.device)
            d2[rows, rows + start] = math.inf
        _, idx = torch.topk(d2, n_neighbors, dim=1, largest=False)
        # Exact distances for the chosen pairs (the expansion above loses precision).
        exact = ((q[:, None, :] - data[idx]) ** 2).sum(-1)
        order = torch.argsort(exact, dim=1)
        dist[start : start + q.shape[0]] = exact.gather(1, order).sqrt()
        index[start : start + q.shape[0]] = idx.gather(1, order)
    return dist, index


def _membership(dist: torch.Tensor) -> torch.Tensor:
    """Fuzzy membership of each row's neighbours: ``exp(-(d - rho) / sigma)``.

    ``rho`` is the distance to the nearest neighbour and ``sigma`` is found
    by bisection so that each row's memberships sum to ``log2(k)``: every
    point then has the same effective number of neighbours, whatever the
    local density.
    """
    k = dist.shape[1]
    shifted = (dist - dist[:, :1]).clamp_min(0.0)
    target = math.log2(k) if k > 1 else 1.0
    lo = torch.zeros_like(dist[:, :1])
    hi = torch.full_like(lo, math.inf)
    sigma = torch.ones_like(lo)
    for _ in range(_BANDWIDTH_STEPS):
        too_wide = torch.exp(-shifted / sigma).sum(1, keepdim=True) > target
        hi = torch.where(too_wide, sigma, hi)
        lo = torch.where(too_wide, lo, sigma)
        sigma = torch.where(torch.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    # Never sharper than 1e-3 of the mean distance (UMAP's floor), and never zero.
    floor = 1e-3 * dist.mean(1, keepdim=True)
    sigma = torch.maximum(sigma, floor).clamp_min(torch.finfo(dist.dtype).tiny)
    return torch.exp(-shifted / sigma)


def fuzzy_neighbor_graph(dist: torch.Tensor, index: torch.Tensor) -> sparse.coo_matrix:
    """Symmetric fuzzy k-NN graph ``A + A.T - A * A.T`` (probabilistic union).

    ``dist`` and ``index`` are the k-NN of every point (itself excluded).
    Returns a sparse ``(n, n)`` matrix with weights in (0, 1].
    """
    n, k = index.shape
    weights = _membership(dist).cpu().numpy().ravel().astype(np.float64)
    rows = np.repeat(np.arange(n), k)
    A = sparse.csr_matrix((weights, (rows, index.cpu().numpy().ravel())), shape=(n, n))
    graph = (A + A.T - A.multiply(A.T)).tocoo()
    graph.eliminate_zeros()
    return graph


def _initial_layout(
    X: torch.Tensor, n_components: int, init: str, generator: torch.Generator
) -> torch.Tensor:
    """Starting coordinates in ``[0, 10]``: the principal components of ``X``, or random."""
    n = X.shape[0]
    noise = torch.rand((n, n_components), generator=generator, dtype=torch.float64)
    if init == "random" or n < 2:
        return (_INIT_SCALE * noise).to(X.device, torch.float32)
    centred = X.double() - X.double().mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    layout = torch.zeros((n, n_components), dtype=torch.float64, device=X.device)
    m = min(n_components, vt.shape[0])
    layout[:, :m] = centred @ vt[:m].T
    span = layout.max(0).values - layout.min(0).values
    span = torch.where(span > 0, span, torch.ones_like(span))
    layout = _INIT_SCALE * (layout - layout.min(0).values) / span
    # A little jitter separates coincident points (and fills missing dimensions).
    layout += 1e-4 * _INIT_SCALE * noise.to(X.device)
    return layout.float()


def optimize_layout(
    layout: torch.Tensor,
    graph: sparse.coo_matrix,
    *,
    n_steps: int,
    batch_size: int,
    negative_sample_rate: int,
    learning_rate: float,
    a: float,
    b: float,
    generator: torch.Generator,
    progress=None,
) -> torch.Tensor:
    """Stochastic layout of the graph (UMAP's cross-entropy, by mini-batches of edges).

    Each step samples ``batch_size`` edges with probability proportional to
    their weight and ``negative_sample_rate`` random points per edge. The
    ends of each edge are pulled together (the gradient of
    ``log(1 + a d^2b)``) and each edge's head and its random points are
    pushed apart (the gradient of ``-log(1 - 1 / (1 + a d^2b))``): plain SGD with
    closed-form gradients, summed per point and clipped per coordinate, and a learning
    rate decaying linearly to zero. Returns the optimised layout (a new
    tensor).
    """
    device = layout.device
    n = layout.shape[0]
    rows = torch.as_tensor(graph.row, dtype=torch.long, device=device)
    cols = torch.as_tensor(graph.col, dtype=torch.long, device=device)
    weights = torch.as_tensor(graph.data, dtype=torch.float32)
    Y = layout.clone()
    if n < 2 or rows.numel() == 0:
        return Y
    grad = torch.empty_like(Y)
    for step in range(n_steps):
        edges = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        edges = edges.to(device)
        head, tail = rows[edges], cols[edges]
        heads = head.repeat_interleave(negative_sample_rate)
        negatives = torch.randint(n, (heads.shape[0],), generator=generator).to(device)
        # Attraction along the edges, d/dy_head of log(1 + a d^2b) ...
        diff = Y[head] - Y[tail]
        d2 = (diff * diff).sum(1, keepdim=True).clamp_min(1e-12)
        pull = 2.0 * a * b * d2 ** (b - 1.0) / (1.0 + a * d2**b) * diff
        # ... and repulsion from random points, d/dy_head of -log(1 - 1 / (1 + a d^2b)).
        diff = Y[heads] - Y[negatives]
        d2 = (diff * diff).sum(1, keepdim=True).clamp_min(1e-12)
        adb = a * d2**b
        push = 2.0 * a * b * d2 ** (b - 1.0) * (1.0 / (1.0 + adb) - 1.0 / (adb + _REPULSION_EPS))
        push = push * diff
        # One accumulation of every pair's gradient (index_add_ sums in a fixed order
        # on the CPU, so runs are reproducible), clipped per point and coordinate.
        grad.zero_().index_add_(
            0, torch.cat([head, tail, heads, negatives]), torch.cat([pull, -pull, push, -push])
        )
        grad.nan_to_num_(0.0).clamp_(-_GRAD_CLIP, _GRAD_CLIP)
        Y.add_(grad, alpha=-learning_rate * (1.0 - step / n_steps))
        if progress is not None:
            progress.update(1)
    return Y


def interpolate_embedding(
    queries: torch.Tensor,
    data: torch.Tensor,
    embedding: torch.Tensor,
    n_neighbors: int,
) -> torch.Tensor:
    """Place ``queries`` by the fuzzy-weighted mean embedding of their nearest ``data`` rows.

    A query equal to one or more ``data`` rows gets the mean embedding of
    those rows exactly.
    """
    dist, index = knn_search(queries, data, n_neighbors)
    weights = _membership(dist)
    exact = dist == 0
    has_exact = exact.any(1, keepdim=True)
    weights = torch.where(has_exact, exact.to(weights.dtype), weights)
    weights = weights / weights.sum(1, keepdim=True)
    return (weights[:, :, None] * embedding[index]).sum(1)


class NeighborEmbedding(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Neighbour-graph embedding (UMAP-style) in PyTorch.

    Builds the exact k-nearest-neighbour graph of ``X``, weights its edges
    by fuzzy membership, and lays the points out in ``n_components``
    dimensions so that graph neighbours attract and random pairs repel
    (the cross-entropy layout of UMAP). With ``min_dist=0`` clusters come out
    compact and well separated: as the second stage of
    :class:`~skdeepcluster.AutoencoderKMeans` (``reducer=NeighborEmbedding()``)
    it gives the "N2D" recipe (autoencoder, manifold embedding, clustering)
    without the optional ``umap-learn`` dependency, and it runs on the same
    torch device.

    Read more in the :ref:`User Guide <second_stage>`.

    Parameters
    ----------
    n_components : int, default=10
        Dimension of the embedding.

    n_neighbors : int, default=15
        Neighbours per sample in the graph (clipped to ``n_samples - 1``):
        larger values keep more of the global structure, smaller ones more
        of the local detail.

    min_dist : float, default=0.0
        Smallest distance between embedded points that the layout aims for;
        0 packs each cluster tightly, which suits clustering.

    n_epochs : int or 'auto', default='auto'
        Length of the layout optimisation, in passes over the graph's edges
        (edges are sampled in proportion to their weight). ``'auto'`` makes
        50 passes, and at least 500 steps of ``batch_size`` edges.

    negative_sample_rate : int, default=5
        Random (repelling) points drawn per sampled edge.

    learning_rate : float, default=1.0
        Initial step of the layout's SGD; it decays linearly to 0.

    batch_size : int, default=8192
        Edges per optimisation step.

    init : {'pca', 'random'}, default='pca'
        Initial layout: the principal components of ``X`` (scaled into a box
        of side 10) or uniform random coordinates.

    max_samples : int or None, default=50000
        Fit the graph on at most this many samples, drawn at random; the
        others are placed by :meth:`transform`. None uses every sample (the
        exact k-NN search costs ``O(n_samples ** 2)``).

    device : str or torch.device, default='auto'
        Torch device for the k-NN search and the layout: ``'auto'`` (CUDA when
        available), ``'cpu'``, ``'cuda'``, ``'mps'``... The fitted state is
        kept as NumPy arrays, so a fitted model pickles anywhere; ``transform``
        runs on the CPU where ``device`` is not available.

    random_state : int, RandomState instance or None, default=None
        Seeds the subsample, the initial jitter and the layout's sampling.
        An int gives identical embeddings on every fit on the CPU; on CUDA the
        gradient sums use atomic additions, whose order (and so the last bits,
        which the layout can amplify) may vary from run to run.

    verbose : int, default=0
        ``1`` or more shows a progress bar of the layout.

    Attributes
    ----------
    embedding_ : ndarray of shape (n_fit_samples, n_components)
        Embedding of the samples the graph was built on.

    fit_indices_ : ndarray of shape (n_fit_samples,)
        Rows of the training ``X`` the graph was built on (all of them unless
        ``max_samples`` was exceeded).

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``; defined only when ``X`` has
        feature names that are all strings.

    See Also
    --------
    sklearn.manifold.TSNE : t-SNE, which has no ``transform`` for new data.
    sklearn.decomposition.PCA : linear dimensionality reduction.

    Notes
    -----
    :meth:`transform` places each sample at the weighted mean embedding of
    its ``n_neighbors`` nearest training samples (the weights are the fuzzy
    memberships of the graph); a sample equal to a training sample is placed
    exactly on it. Unlike umap-learn there is no further optimisation of new
    points, so ``transform`` is deterministic and independent of the batch.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdeepcluster import NeighborEmbedding
    >>> X, y = make_blobs(n_samples=300, centers=3, n_features=20, random_state=0)
    >>> ne = NeighborEmbedding(n_components=2, random_state=0)
    >>> E = ne.fit_transform(X)
    >>> E.shape
    (300, 2)
    >>> from sklearn.cluster import KMeans
    >>> from skdeepcluster.metrics import cluster_accuracy
    >>> labels = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(E)
    >>> float(cluster_accuracy(y, labels))
    1.0
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "min_dist": [Interval(Real, 0, None, closed="left")],
        "n_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "negative_sample_rate": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"pca", "random"})],
        "max_samples": [Interval(Integral, 2, None, closed="left"), None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=10,
        *,
        n_neighbors=15,
        min_dist=0.0,
        n_epochs="auto",
        negative_sample_rate=5,
        learning_rate=1.0,
        batch_size=8192,
        init="pca",
        max_samples=50_000,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.negative_sample_rate = negative_sample_rate
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.init = init
        self.max_samples = max_samples
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _n_steps(self, n_edges: int) -> int:
        batch_size = self._batch_size(n_edges)
        if self.n_epochs == "auto":
            return max(500, math.ceil(50 * n_edges / batch_size))
        return math.ceil(self.n_epochs * n_edges / batch_size)

    def _batch_size(self, n_edges: int) -> int:
        """Edges per step: ``batch_size``, but no more than the graph has."""
        return max(1, min(self.batch_size, n_edges))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the neighbour graph of ``X`` and optimise its embedding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; NaN and infinity are rejected).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : NeighborEmbedding
            Fitted estimator.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=1)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        n = X.shape[0]
        fit_indices = np.arange(n)
        if self.max_samples is not None and n > self.max_samples:
            fit_indices = np.sort(rng.choice(n, self.max_samples, replace=False))
        device = resolve_device(self.device)
        generator = torch.Generator().manual_seed(seed)
        fit_data = np.asarray(X[fit_indices], dtype=np.float32)
        data = torch.as_tensor(fit_data, device=device)
        k = min(self.n_neighbors, data.shape[0] - 1)
        if k >= 1:
            graph = fuzzy_neighbor_graph(*knn_search(data, data, k, exclude_self=True))
        else:
            graph = sparse.coo_matrix((data.shape[0], data.shape[0]))
        a, b = layout_curve_params(float(self.min_dist))
        layout = _initial_layout(data, self.n_components, self.init, generator)
        n_steps = self._n_steps(graph.nnz)
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=n_steps, desc="neighbor embedding", unit="step")
        try:
            layout = optimize_layout(
                layout,
                graph,
                n_steps=n_steps,
                batch_size=self._batch_size(graph.nnz),
                negative_sample_rate=self.negative_sample_rate,
                learning_rate=float(self.learning_rate),
                a=a,
                b=b,
                generator=generator,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.close()
        embedding = layout.cpu().numpy().astype(np.float64)
        if not np.all(np.isfinite(embedding)):  # pragma: no cover - guarded by the clip
            raise ValueError("The neighbour-embedding layout diverged (non-finite values).")
        self.embedding_ = embedding
        self.fit_indices_ = fit_indices
        self._fit_data = fit_data
        return self

    def transform(self, X):
        """Place ``X`` by interpolating the embedding of its nearest training samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Their embedding; a sample equal to a training sample gets that
            sample's embedding.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        try:
            device = resolve_device(self.device)
        except ValueError:  # fitted on a GPU, unpickled where there is none
            device = torch.device("cpu")
        data = torch.as_tensor(self._fit_data, device=device)
        embedding = torch.as_tensor(self.embedding_, device=device)
        queries = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
        k = min(self.n_neighbors, data.shape[0])
        out = interpolate_embedding(queries, data, embedding, k)
        return out.cpu().numpy().astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags
