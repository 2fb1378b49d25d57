"""The :class:`NeighborEmbedding` transformer: k-NN graph, fuzzy weights, layout, interpolation."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from scipy import sparse
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from .._device import resolve_device
from .._precision import round_rows
from .._progress import stage_bar
from ._graph import fuzzy_neighbor_graph
from ._layout import (
    _initial_layout,
    interpolate_embedding,
    layout_curve_params,
    near_distance,
    optimize_layout,
    refine_placement,
)
from ._neighbors import METHODS, NeighborIndex, choose_method
from ._unique import unique_rows


class NeighborEmbedding(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Neighbour-graph embedding (UMAP-style) in PyTorch.

    Builds the k-nearest-neighbour graph of the distinct rows of ``X``,
    weights its edges by fuzzy membership, and lays the points out in ``n_components``
    dimensions so that graph neighbours attract and random pairs repel
    (the cross-entropy layout of UMAP). With ``min_dist=0`` clusters come out
    compact and well separated: as the second stage of
    :class:`~skdeepcluster.AutoencoderKMeans` (``reducer=NeighborEmbedding()``)
    it gives the "N2D" recipe (autoencoder, manifold embedding, clustering)
    without the optional ``umap-learn`` dependency, and it runs on the same
    torch device (on the CPU, the layout's steps run as a compiled numba loop).

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
        50 passes, and on small graphs up to 100 passes while they take fewer
        than 500 steps of ``batch_size`` edges.

    negative_sample_rate : int, default=5
        Random (repelling) points drawn per sampled edge.

    learning_rate : float, default=1.0
        Initial step of the layout's SGD; it decays linearly to 0.

    batch_size : int, default=8192
        Edges per optimisation step.

    init : {'pca', 'random'}, default='pca'
        Initial layout: the principal components of ``X`` (scaled into a box
        of side 10) or uniform random coordinates.

    neighbor_search : {'auto', 'exact', 'hnsw', 'kdtree', 'nndescent'}, default='auto'
        How the nearest neighbours are found. ``'exact'``: distances to every
        row, in blocks, on ``device`` (``O(n_samples ** 2)``; fastest on a GPU
        and for small data). ``'hnsw'``: faiss's approximate HNSW graph (about
        ``O(n log n)``; recall@15 0.9998 on the codes of 250,000 digits).
        ``'kdtree'``: scipy's KD-tree, exact, about ``O(n log n)`` in low
        dimension (the autoencoder's codes). ``'nndescent'``: pynndescent's
        approximate NN-descent graph (recall@15 0.99; new samples are then
        searched in faiss's HNSW graph, built on the first call). ``'auto'``
        is ``'exact'`` on a GPU and up to 20,000 distinct rows, ``'hnsw'`` up
        to 300,000 and ``'nndescent'`` beyond (where faiss's single-threaded
        build grows faster than ``n log n``); where faiss is not installed,
        ``'kdtree'`` up to 32 features, else ``'nndescent'`` (``'exact'``
        where neither is installed).

    max_samples : int or None, default=None
        Fit the graph on at most this many samples, drawn at random; the
        others are placed by :meth:`transform`. None (the default) uses every
        sample.

    transform_steps : int, default=30
        Full-gradient steps that :meth:`transform` gives each new sample
        against the fixed training layout, starting from the interpolated
        position (see Notes); 0 keeps the interpolation.

    device : str or torch.device, default='auto'
        Torch device for the k-NN search and the layout: ``'auto'`` (CUDA when
        available), ``'cpu'``, ``'cuda'``, ``'mps'``... The fitted state is
        kept as NumPy arrays, so a fitted model pickles anywhere; ``transform``
        runs on the CPU where ``device`` is not available.

    random_state : int, RandomState instance or None, default=None
        Seeds the subsample, the initial jitter, the layout's sampling and
        the (fixed) negative samples of :meth:`transform`.
        An int gives identical embeddings on every fit on the CPU; on CUDA the
        gradient sums use atomic additions, whose order (and so the last bits,
        which the layout can amplify) may vary from run to run.

    verbose : int, default=0
        ``1`` or more shows a progress bar for the k-NN graph and one for
        the layout (on stderr).

    Attributes
    ----------
    embedding_ : ndarray of shape (n_fit_samples, n_components)
        Embedding of the samples the graph was built on; identical samples
        have identical rows.

    graph_ : scipy.sparse.csr_matrix of shape (n_fit_samples, n_fit_samples)
        The symmetric fuzzy k-nearest-neighbour graph of those samples (float32
        weights in (0, 1], no self-loops), as umap-learn's ``graph_``: the
        graph the layout was optimised on, in which ``clusterer='graph'`` of
        :class:`~skdeepcluster.AutoencoderKMeans` finds its communities. The
        copies of a row share that row's node, so they have its edges and none
        between them.

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
    sklearn.manifold.TSNE : The t-SNE embedding, which has no ``transform`` for new data.
    sklearn.decomposition.PCA : Linear dimensionality reduction.

    Notes
    -----
    :meth:`transform` places each sample at the weighted mean embedding of
    its ``n_neighbors`` nearest training samples (the weights are the fuzzy
    memberships of the graph), then optimises that position for
    ``transform_steps`` steps of the layout's own loss against the fixed
    training layout, as umap-learn's ``transform`` does; a sample equal to a
    training sample is placed exactly on it (and one very close to a
    training sample, closer than ``1e-3`` of its farthest neighbour, moves
    in proportion to that distance, so that ``transform`` is continuous).
    Unlike umap-learn's stochastic steps, each step uses all of a sample's
    neighbours and negative samples fixed by ``fit``, the same for every
    sample, so ``transform`` is deterministic and independent of the batch.

    The data are scaled by the power of two that brings the training data's
    largest ``|value|`` into ``[1, 2)`` (exact, and neighbours do not depend
    on a common scale; it keeps float32 distances finite and non-zero at any
    scale), then converted to float32. Identical samples (equal once so
    scaled and converted) are one node of the graph, laid out once: they get
    the same embedding in :meth:`fit` and in :meth:`transform`, and a node's
    neighbours are distinct points rather than its copies. As in umap-learn,
    a node carries no weight for its copies; with fewer than two distinct
    samples there is no graph and every sample is embedded at one point.

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
        "neighbor_search": [StrOptions(set(METHODS))],
        "max_samples": [Interval(Integral, 2, None, closed="left"), None],
        "transform_steps": [Interval(Integral, 0, None, closed="left")],
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
        neighbor_search="auto",
        max_samples=None,
        transform_steps=30,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        # Parameters stored as given (scikit-learn's convention), grouped by concern:
        # the graph and the layout's target, the optimisation, scale and execution.
        self.n_components, self.n_neighbors, self.min_dist = n_components, n_neighbors, min_dist
        self.n_epochs, self.negative_sample_rate = n_epochs, negative_sample_rate
        self.learning_rate, self.batch_size, self.init = learning_rate, batch_size, init
        self.neighbor_search, self.max_samples = neighbor_search, max_samples
        self.transform_steps, self.device = transform_steps, device
        self.random_state, self.verbose = random_state, verbose

    def _schedule(self, n_edges: int) -> tuple[int, int]:
        """Return the edges per step and the number of steps of the layout of a graph.

        Parameters
        ----------
        n_edges : int
            Stored entries of the symmetric graph.

        Returns
        -------
        batch_size : int
            ``batch_size``, but no more than the graph has (and at least 1).
        n_steps : int
            ``n_epochs`` passes over the edges in such steps (``'auto'``: 50
            passes, up to 100 on graphs that take fewer than 500 steps).
        """
        batch_size = max(1, min(self.batch_size, n_edges))
        if self.n_epochs == "auto":
            # 50 passes; on small graphs up to 100 passes while under 500 steps: 300
            # passes (500 steps) on 600 rows took 3-5 s for the same ACC as 100 in 1 s.
            passes = math.ceil(50 * n_edges / batch_size)
            return batch_size, max(passes, min(500, 2 * passes))
        return batch_size, math.ceil(self.n_epochs * n_edges / batch_size)

    def _layout_nodes(
        self, index: NeighborIndex, device: torch.device, generator: torch.Generator
    ) -> torch.Tensor:
        """Build the fuzzy k-NN graph of the index's rows and optimise their layout.

        Parameters
        ----------
        index : NeighborIndex
            The distinct training rows (float32) and their neighbour search.
        device : torch.device
            The fitting device.
        generator : torch.Generator
            Source of the initial jitter and of the layout's sampling.

        Returns
        -------
        layout : torch.Tensor of shape (n_nodes, n_components)
            The layout (float32). With a single node there is no graph and it
            keeps its initial position.
        graph : scipy.sparse.coo_matrix of shape (n_nodes, n_nodes)
            The symmetric fuzzy k-NN graph the layout was optimised on.
        """
        n = index.data.shape[0]
        k = min(self.n_neighbors, n - 1)
        with stage_bar("k-NN graph", 1, self.verbose, unit="graph") as bar:
            if k >= 1:
                graph = fuzzy_neighbor_graph(*index.graph(k, device))
            else:
                graph = sparse.coo_matrix((n, n))
            bar.update(1)
        a, b = layout_curve_params(float(self.min_dist))
        nodes = torch.as_tensor(index.data, device=device)
        layout = _initial_layout(nodes, self.n_components, self.init, generator)
        batch_size, n_steps = self._schedule(graph.nnz)
        with stage_bar("layout", n_steps, self.verbose) as bar:
            layout = optimize_layout(
                layout,
                graph,
                n_steps=n_steps,
                batch_size=batch_size,
                negative_sample_rate=self.negative_sample_rate,
                learning_rate=float(self.learning_rate),
                a=a,
                b=b,
                generator=generator,
                progress=bar,
            )
        return layout, graph

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
        # Identical rows (in float32) are one node of the graph, laid out once and so
        # placed identically; a node's neighbours are other points, not its own copies.
        # Nodes carry no multiplicity weight (nor do umap-learn's): the memberships give
        # every point the same effective number of neighbours whatever the density, and
        # a weight would let a much-repeated row (a default or padding value) dominate
        # the edge sampling and drag its neighbours. The copies still count downstream,
        # where the clusterer sees every row at the node's position.
        self._scale = _power_of_two_scale(X[fit_indices])
        nodes, inverse = unique_rows(_scaled_float32(X[fit_indices], self._scale))
        method = self.neighbor_search
        if method == "auto":
            method = choose_method(nodes.shape[0], nodes.shape[1], device)
        index = NeighborIndex(nodes, method, random_state=seed)
        layout, graph = self._layout_nodes(index, device, generator)
        node_embedding = layout.cpu().numpy().astype(np.float64)
        if not np.all(np.isfinite(node_embedding)):  # pragma: no cover - guarded by the clip
            raise ValueError("The neighbour-embedding layout diverged (non-finite values).")
        self.embedding_ = node_embedding[inverse]
        self.graph_ = _rows_graph(graph, inverse)
        self._transform_seed = int(rng.randint(np.iinfo(np.int32).max))
        self.fit_indices_ = fit_indices
        self._index, self._node_embedding = index, node_embedding
        return self

    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return its embedding (the same as ``fit(X).transform(X)``).

        :meth:`transform` gives a training row its own embedding, so when the
        graph was built on every row the result is ``embedding_`` itself,
        without searching the rows' neighbours a second time (about a minute
        of a million-row fit); rows left out by ``max_samples`` go through
        :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The embedding of ``X``.
        """
        self.fit(X)
        if self.fit_indices_.shape[0] == _num_samples(X):  # every row is a training row
            return self.embedding_.copy()
        return self.transform(X)

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
            sample's embedding, and each sample's embedding depends on that
            sample alone, not on the rest of ``X``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        try:
            device = resolve_device(self.device)
        except ValueError:  # fitted on a GPU, unpickled where there is none
            device = torch.device("cpu")
        embedding = torch.as_tensor(self._node_embedding, device=device)
        # Identical rows are placed once, so they get the same embedding on any device.
        queries, inverse = unique_rows(_scaled_float32(X, self._scale))
        k = min(self.n_neighbors, embedding.shape[0])
        dist, index = self._index.query(queries, k, device)
        out = interpolate_embedding(dist, index, embedding)
        if self.transform_steps and embedding.shape[0] > 1:
            out = self._refine_new_points(out, dist, index, embedding)
        return out.cpu().numpy().astype(np.float64)[inverse]

    def _refine_new_points(self, placement, dist, index, embedding):
        """``transform_steps`` of the layout loss for the queries that are not training rows.

        The negatives are drawn from ``_transform_seed`` on every call, the same
        for every query; queries go in blocks of ``_TRANSFORM_BLOCK`` rows to
        bound the memory of the ``(block, negatives, n_components)`` differences.
        """
        n_negatives = self.negative_sample_rate * dist.shape[1]
        generator = torch.Generator().manual_seed(self._transform_seed)
        negatives = torch.randint(
            embedding.shape[0], (self.transform_steps, n_negatives), generator=generator
        ).to(embedding.device)
        a, b = layout_curve_params(float(self.min_dist))
        # The optimised move is scaled down linearly below the distance at which the
        # interpolation starts to snap to the nearest row (``near_distance``), so that
        # transform stays continuous at the training rows, which stay on their nodes.
        share = (dist[:, :1] / near_distance(dist)).clamp_(max=1.0).to(embedding.dtype)
        out = placement.clone()
        new = torch.nonzero(share[:, 0] > 0).flatten()
        for start in range(0, new.shape[0], _TRANSFORM_BLOCK):
            rows = new[start : start + _TRANSFORM_BLOCK]
            moved = refine_placement(
                placement[rows], dist[rows], index[rows], embedding, negatives,
                negative_sample_rate=self.negative_sample_rate,
                a=a, b=b, learning_rate=float(self.learning_rate),
            )
            moved = placement[rows] + share[rows] * (moved - placement[rows])
            # Vectorised and scalar pow differ in the last bit, and which elements take
            # which path depends on the block: rounding each row to float32 precision
            # (relative to its largest entry) makes the result independent of the batch.
            out[rows] = torch.as_tensor(round_rows(moved.cpu().numpy()), device=out.device)
        return out

    @property
    def _n_features_out(self):
        """Number of embedding dimensions (used by ``get_feature_names_out``).

        ``get_feature_names_out`` of ``ClassNamePrefixFeaturesOutMixin`` checks
        that this attribute exists; it is derived from ``embedding_``, so it
        exists exactly when the model is fitted (also for a model pickled
        before it was added).
        """
        return self.embedding_.shape[1]

    def __sklearn_tags__(self):
        """Declare that float64 input gives a float64 embedding.

        Returns
        -------
        sklearn.utils.Tags
            The estimator's tags.
        """
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


#: Queries optimised together by ``transform`` (memory: block x negatives x components).
_TRANSFORM_BLOCK = 4096

#: Queries are clipped to this many times the training data's largest |value|
#: (after scaling), so that their float32 squared distances stay finite.
_QUERY_CLIP = 2.0**50


def _rows_graph(graph: sparse.spmatrix, inverse: np.ndarray) -> sparse.csr_matrix:
    """The graph of the nodes as a graph of the rows (``inverse``: the node of each row).

    ``P @ graph @ P.T`` with ``P`` the rows' one-hot node memberships: each
    row gets the edges of its node, in float32 (the layout's weights were
    float64; float32 halves the memory of a graph of a million rows). Without
    copies the nodes are the rows, in order, and the graph is only converted.
    """
    n_rows, n_nodes = inverse.shape[0], graph.shape[0]
    if n_rows == n_nodes:  # unique_rows keeps distinct rows in their order
        return sparse.csr_matrix(graph, dtype=np.float32)
    member = sparse.csr_matrix(
        (np.ones(n_rows, dtype=np.float32), (np.arange(n_rows), inverse)), shape=(n_rows, n_nodes)
    )
    rows = (member @ sparse.csr_matrix(graph, dtype=np.float32) @ member.T).tocsr()
    rows.eliminate_zeros()
    return rows


def _power_of_two_scale(X: np.ndarray) -> float:
    """A power of two that brings the largest ``|X|`` into ``[1, 2)`` (1 for all zeros).

    Neighbours and memberships do not depend on a common scale of the data,
    but float32 squared distances overflow from about 1e19 and underflow
    below about 1e-19, and the bandwidth search starts at 1: scaling by a
    power of two, which is exact in floating point, keeps every scale of the
    data inside float32's range and otherwise changes nothing.
    """
    largest = float(np.max(np.abs(X))) if X.size else 0.0
    if largest == 0.0:
        return 1.0
    # At most 2**1023: a subnormal maximum (below 2**-1022) lands in [2**-51, 2) then.
    return math.ldexp(1.0, min(-math.floor(math.log2(largest)), 1023))


def _scaled_float32(X: np.ndarray, scale: float) -> np.ndarray:
    """``X * scale`` in float32 (scaled in float64 first, queries clipped to ``_QUERY_CLIP``)."""
    scaled = np.asarray(X, dtype=np.float64) * scale
    return np.clip(scaled, -_QUERY_CLIP, _QUERY_CLIP).astype(np.float32)
