"""The low-dimensional layout: similarity curve, initial and optimised layout, interpolation."""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import curve_fit

from ._graph import _membership

#: The layout is initialised inside this box, as UMAP does.
_INIT_SCALE = 10.0

#: Per-coordinate clip of the layout's gradient (stability of the first steps).
_GRAD_CLIP = 4.0

#: Keeps the repulsion finite for coincident points.
_REPULSION_EPS = 1e-3

#: Below this fraction of the farthest neighbour's distance, a query's nearest neighbour
#: outweighs the others in proportion to its closeness (continuity at the data points).
_NEAR_FRACTION = 1e-3


@functools.lru_cache(maxsize=32)
def layout_curve_params(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """``(a, b)`` of the low-dimensional similarity ``1 / (1 + a * d ** (2 * b))``.

    Fitted by least squares to ``1`` for ``d < min_dist`` and
    ``exp(-(d - min_dist) / spread)`` beyond, as in UMAP.

    Parameters
    ----------
    min_dist : float
        Distance below which embedded points count as fully similar.
    spread : float, default=1.0
        Scale of the exponential decay beyond ``min_dist``.

    Returns
    -------
    a : float
        Scale of the curve.
    b : float
        Exponent of the curve.
    """
    d = np.linspace(0.0, 3.0 * spread, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = curve_fit(
        lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), d, target, p0=(1.0, 1.0), maxfev=10_000
    )
    return float(a), float(b)


def _initial_layout(
    X: torch.Tensor, n_components: int, init: str, generator: torch.Generator
) -> torch.Tensor:
    """Starting coordinates in ``[0, 10]``: the principal components of ``X``, or random.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features)
        The points to lay out.
    n_components : int
        Dimension of the layout.
    init : {'pca', 'random'}
        Principal components (with a little jitter, which also fills the
        dimensions beyond the rank of ``X``) or uniform random coordinates.
    generator : torch.Generator
        Source of the random coordinates and of the jitter.

    Returns
    -------
    torch.Tensor of shape (n, n_components)
        The layout, float32, on the device of ``X``.
    """
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


def cumulative_weights(weights: np.ndarray) -> torch.Tensor:
    """The table that :func:`sample_edges` draws from: running sums of ``weights``.

    Parameters
    ----------
    weights : ndarray of shape (n_edges,)
        Non-negative edge weights, not all zero.

    Returns
    -------
    torch.Tensor of shape (n_edges,)
        ``cumsum(weights)`` in float64 (exact enough for hundreds of millions of
        edges), on the CPU: the binary search of a batch is cheap there, the
        draws do not depend on the device, and MPS has no float64.
    """
    return torch.as_tensor(np.cumsum(weights, dtype=np.float64))


def sample_edges(
    cumulative: torch.Tensor, n_samples: int, generator: torch.Generator, device=None
) -> torch.Tensor:
    """Draw ``n_samples`` edges with replacement, each with probability proportional to its weight.

    Inverse-transform sampling: uniform numbers in ``[0, total)`` are looked up
    in the running sums by binary search, ``O(n_samples * log(n_edges))`` per
    call and no limit on the number of edges. ``torch.multinomial``, used
    before, costs ``O(n_edges)`` per call and refuses more than ``2**24``
    categories, i.e. graphs of about a million rows.

    Parameters
    ----------
    cumulative : torch.Tensor of shape (n_edges,)
        Running sums of the weights (:func:`cumulative_weights`).
    n_samples : int
        Edges to draw.
    generator : torch.Generator
        Source of the uniform numbers (a CPU generator, so that a seed gives
        the same edges on every device).
    device : torch.device, optional
        Where the indices go (default: the CPU).

    Returns
    -------
    torch.Tensor of shape (n_samples,)
        Indices of the drawn edges (int64).
    """
    u = torch.rand(n_samples, generator=generator, dtype=torch.float64)
    edges = torch.searchsorted(cumulative, u * cumulative[-1], right=True)
    # u * total < total, so edges < n_edges but for rounding at the very top.
    return edges.clamp_max_(cumulative.shape[0] - 1).to(device)


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
    their weight (:func:`sample_edges`, ``O(batch_size * log(n_edges))``)
    and ``negative_sample_rate`` random points per edge. The
    ends of each edge are pulled together (the gradient of
    ``log(1 + a d^2b)``) and each edge's head and its random points are
    pushed apart (the gradient of ``-log(1 - 1 / (1 + a d^2b))``): plain SGD with
    closed-form gradients, summed per point and clipped per coordinate, and a learning
    rate decaying linearly to zero.

    Parameters
    ----------
    layout : torch.Tensor of shape (n, n_components)
        Initial coordinates (left unchanged).
    graph : scipy.sparse.coo_matrix of shape (n, n)
        Weighted edges, as made by :func:`fuzzy_neighbor_graph`.
    n_steps : int
        Optimisation steps.
    batch_size : int
        Edges sampled per step.
    negative_sample_rate : int
        Random points drawn per sampled edge.
    learning_rate : float
        Initial step size.
    a, b : float
        Parameters of the low-dimensional similarity (:func:`layout_curve_params`).
    generator : torch.Generator
        Source of the edge and negative samples (a CPU generator).
    progress : tqdm-like, optional
        Its ``update(1)`` is called after every step.

    Returns
    -------
    torch.Tensor of shape (n, n_components)
        The optimised layout (a new tensor).
    """
    device = layout.device
    n = layout.shape[0]
    rows = torch.as_tensor(graph.row, dtype=torch.long, device=device)
    cols = torch.as_tensor(graph.col, dtype=torch.long, device=device)
    Y = layout.clone()
    if n < 2 or rows.numel() == 0:
        return Y
    cumulative = cumulative_weights(graph.data)
    grad = torch.zeros_like(Y)
    # Row gathers and writes use index_select / index_copy_, which copy whole rows;
    # advanced indexing (Y[idx]) was 2-3 times slower per step on the CPU (measured
    # at 60,000 nodes: benchmarks/results/large.md).
    for step in range(n_steps):
        edges = sample_edges(cumulative, batch_size, generator, device)
        head, tail = rows.index_select(0, edges), cols.index_select(0, edges)
        heads = head.repeat_interleave(negative_sample_rate)
        negatives = torch.randint(n, (heads.shape[0],), generator=generator).to(device)
        # Attraction along the edges, d/dy_head of log(1 + a d^2b) ...
        diff = Y.index_select(0, head) - Y.index_select(0, tail)
        d2 = (diff * diff).sum(1, keepdim=True).clamp_min(1e-12)
        pull = 2.0 * a * b * d2 ** (b - 1.0) / (1.0 + a * d2**b) * diff
        # ... and repulsion from random points, d/dy_head of -log(1 - 1 / (1 + a d^2b)).
        diff = Y.index_select(0, heads) - Y.index_select(0, negatives)
        d2 = (diff * diff).sum(1, keepdim=True).clamp_min(1e-12)
        adb = a * d2**b
        push = 2.0 * a * b * d2 ** (b - 1.0) * (1.0 / (1.0 + adb) - 1.0 / (adb + _REPULSION_EPS))
        push = push * diff
        # One accumulation of every pair's gradient (index_add_ sums in a fixed order
        # on the CPU, so runs are reproducible), clipped per point and coordinate, and
        # applied to the touched points only: O(batch) work per step, whatever n.
        # A point met twice gathers the same sum twice and writes the same value twice.
        touched = torch.cat([head, tail, heads, negatives])
        grad.index_add_(0, touched, torch.cat([pull, -pull, push, -push]))
        step_size = learning_rate * (1.0 - step / n_steps)
        update = grad.index_select(0, touched).nan_to_num_(0.0).clamp_(-_GRAD_CLIP, _GRAD_CLIP)
        Y.index_copy_(0, touched, Y.index_select(0, touched) - step_size * update)
        grad.index_fill_(0, touched, 0.0)
        if progress is not None:
            progress.update(1)
    return Y


def near_distance(dist: torch.Tensor) -> torch.Tensor:
    """Per query, the distance below which its nearest row outweighs the others: ``tau``.

    ``_NEAR_FRACTION`` of the farthest neighbour's distance, shape ``(n_queries, 1)``
    (see :func:`interpolate_embedding`).
    """
    return _NEAR_FRACTION * dist[:, -1:]


def interpolate_embedding(
    dist: torch.Tensor, index: torch.Tensor, embedding: torch.Tensor
) -> torch.Tensor:
    """Place queries by the fuzzy-weighted mean embedding of their nearest data rows.

    The weights are the fuzzy memberships of the query's nearest rows; a
    query equal to one or more rows gets the mean embedding of those rows
    exactly. So that a query close to a row is placed close to it (a
    difference that survives the float32 conversion, 1e-17 on a zero
    coordinate, would otherwise move it by a fraction of its neighbourhood),
    the nearest row's weight becomes ``tau / d`` at a distance ``d`` below
    ``tau``, ``1e-3`` of the farthest neighbour's distance: the placement
    goes continuously to the row's embedding as ``d`` goes to 0, and is
    unchanged beyond ``tau``.

    Parameters
    ----------
    dist : torch.Tensor of shape (n_queries, n_neighbors)
        Distances of each query to its nearest data rows, nearest first (as
        returned by :func:`knn_search` or :meth:`NeighborIndex.query`).
    index : torch.Tensor of shape (n_queries, n_neighbors)
        Those rows.
    embedding : torch.Tensor of shape (n_data, n_components)
        The embedding of the data rows.

    Returns
    -------
    torch.Tensor of shape (n_queries, n_components)
        Embedding of the queries, with the dtype of ``embedding``.
    """
    weights = _membership(dist)
    nearest, tau = dist[:, :1], near_distance(dist)
    near = (nearest > 0) & (nearest < tau)
    boost = (tau / torch.where(near, nearest, tau)).clamp_max(torch.finfo(dist.dtype).max)
    weights = torch.cat([torch.where(near, boost, weights[:, :1]), weights[:, 1:]], dim=1)
    # A query equal to a row finds it first (NeighborIndex.query); other rows at
    # distance 0 are distinct rows whose float32 distance underflowed, not copies.
    exact = torch.zeros_like(weights)
    exact[:, 0] = 1.0
    weights = torch.where(nearest == 0, exact, weights)
    weights = (weights / weights.sum(1, keepdim=True)).to(embedding.dtype)
    return (weights[:, :, None] * embedding[index]).sum(1)


def refine_placement(
    placement: torch.Tensor,
    dist: torch.Tensor,
    index: torch.Tensor,
    embedding: torch.Tensor,
    negatives: torch.Tensor,
    *,
    negative_sample_rate: int,
    a: float,
    b: float,
    learning_rate: float,
) -> torch.Tensor:
    """Optimise new points against the fixed layout, with the layout's own loss.

    The new points start at ``placement`` and take full-gradient steps of
    UMAP's cross-entropy: each is pulled towards its nearest data rows
    (weighted by their fuzzy memberships, as the graph's edges are) and
    pushed away from the random rows ``negatives`` (``negative_sample_rate``
    pushes per unit of membership, as in the layout); the data rows
    do not move. Unlike umap-learn's stochastic ``transform``, every step
    uses all of a point's neighbours and the same negatives for every point,
    so the result of a point depends on that point alone: deterministic and
    independent of the batch.

    Parameters
    ----------
    placement : torch.Tensor of shape (n_queries, n_components)
        Starting positions (:func:`interpolate_embedding`).
    dist, index : torch.Tensor of shape (n_queries, n_neighbors)
        The queries' nearest data rows, nearest first.
    embedding : torch.Tensor of shape (n_data, n_components)
        The fixed layout of the data rows.
    negatives : torch.Tensor of shape (n_steps, n_negatives)
        The rows each step pushes every point away from.
    negative_sample_rate : int
        Pushes per unit of membership (their mean over ``negatives``).
    a, b : float
        Parameters of the low-dimensional similarity (:func:`layout_curve_params`).
    learning_rate : float
        Initial step size (per unit of membership), decaying linearly to zero.

    Returns
    -------
    torch.Tensor of shape (n_queries, n_components)
        The optimised positions (a new tensor).
    """
    weights = _membership(dist).to(embedding.dtype)
    total = weights.sum(1, keepdim=True)
    targets = embedding[index]
    n_steps, n_negatives = negatives.shape
    Y = placement.clone()
    for step in range(n_steps):
        diff = Y[:, None, :] - targets
        d2 = (diff * diff).sum(2, keepdim=True).clamp_min(1e-12)
        coef = 2.0 * a * b * d2 ** (b - 1.0) / (1.0 + a * d2**b)
        grad = (weights[:, :, None] * coef * diff).sum(1)
        diff = Y[:, None, :] - embedding[negatives[step]][None]
        d2 = (diff * diff).sum(2, keepdim=True).clamp_min(1e-12)
        adb = a * d2**b
        coef = 2.0 * a * b * d2 ** (b - 1.0) * (1.0 / (1.0 + adb) - 1.0 / (adb + _REPULSION_EPS))
        grad = grad + total * (coef * diff).mean(1) * negative_sample_rate
        grad = (grad / total).nan_to_num_(0.0).clamp_(-_GRAD_CLIP, _GRAD_CLIP)
        Y = Y - learning_rate * (1.0 - step / n_steps) * grad
    return Y
