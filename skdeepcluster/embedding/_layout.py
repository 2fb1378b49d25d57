"""The low-dimensional layout: similarity curve, initial and optimised layout, interpolation."""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Iterator

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


def edge_batches(
    weights: np.ndarray, batch_size: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Endless batches of edge indices, each edge drawn in proportion to its weight.

    Stratified, in rounds (the batched form of UMAP's epochs-per-sample
    schedule): a round holds every edge ``floor(c * w) + Bernoulli(frac(c * w))``
    times, with ``c = n_edges / sum(w)``, so about ``n_edges`` draws whose
    counts are within one of their expectation, shuffled by ``randperm``.
    Batches are consecutive slices of the rounds. The work per round is
    ``O(n_edges)``, i.e. ``O(batch_size)`` per step, with no limit on the
    number of edges. Measured at 70,000 nodes (2.1 million edges, two
    threads): about 0.4 ms per step of 8,192 edges (the round's rounding, repeat and
    shuffle, spread over its 256 steps), where the binary search of a
    cumulative table (used before) took 1.9 ms and ``torch.multinomial``
    refuses more than ``2**24`` categories.

    Parameters
    ----------
    weights : ndarray of shape (n_edges,)
        Non-negative edge weights, not all zero.
    batch_size : int
        Edges per batch.
    generator : torch.Generator
        Source of the rounding and of the shuffles (a CPU generator, so that a
        seed gives the same edges on every device).

    Yields
    ------
    torch.Tensor of shape (batch_size,)
        Edge indices (int64, on the CPU).
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    total = w.sum()
    expected = w * (w.shape[0] / total) if total > 0 else torch.ones_like(w)
    ids = torch.arange(w.shape[0])
    carry = ids[:0]
    while True:
        jitter = torch.rand(w.shape[0], generator=generator, dtype=torch.float64)
        counts = (expected + jitter).floor_().long()
        draws = ids.repeat_interleave(counts)
        shuffle = torch.randperm(draws.shape[0], generator=generator)
        draws = torch.cat([carry, draws.index_select(0, shuffle)])
        n_full = draws.shape[0] // batch_size
        yield from draws[: n_full * batch_size].view(n_full, batch_size)
        carry = draws[n_full * batch_size :]


def _pull(diff: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Per pair, the gradient of ``log(1 + a d^2b)`` (attraction) at the head of ``diff``."""
    d2 = diff.new_empty((*diff.shape[:-1], 1))
    return _pull_into(diff, torch.empty_like(diff), d2, torch.empty_like(d2), a, b)


def _push(diff: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Per pair, the gradient of ``-log(1 - 1 / (1 + a d^2b))`` (repulsion) at the head.

    ``2ab d^2(b-1) (1 / (1 + a d^2b) - 1 / (a d^2b + eps)) * diff``, ``d^2`` clamped
    at 1e-12; :func:`_push_of_shared` is its mean over negatives shared by every row.
    """
    d2 = (diff * diff).sum(-1, keepdim=True).clamp_min(1e-12)
    adb = a * d2**b
    coef = 2.0 * a * b * d2 ** (b - 1.0) * (1.0 / (1.0 + adb) - 1.0 / (adb + _REPULSION_EPS))
    return coef * diff


def _clipped(grad: torch.Tensor) -> torch.Tensor:
    """``grad`` with non-finite entries zeroed and each coordinate clipped (in place)."""
    return grad.nan_to_num_(0.0).clamp_(-_GRAD_CLIP, _GRAD_CLIP)


#: Steps drawn together and run by one call of the step kernel (one progress update).
_CHUNK_STEPS = 64

#: Chunks of draws made ahead of the CPU kernel by a worker thread (``_prefetched``).
_PREFETCH_CHUNKS = 8


def _step_chunks(
    weights: np.ndarray, n: int, n_steps: int, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """The layout's random draws, in chunks of up to ``_CHUNK_STEPS`` steps.

    Yields
    ------
    first : int
        Index of the chunk's first step.
    edges : torch.Tensor of shape (n_chunk_steps, batch_size)
        Each step's edges (:func:`edge_batches`), int64 on the CPU.
    starts : torch.Tensor of shape (n_chunk_steps,)
        Each step's first slot of negatives, uniform in ``[0, n)``.
    """
    batches = edge_batches(weights, batch_size, generator)
    for first in range(0, n_steps, _CHUNK_STEPS):
        count = min(_CHUNK_STEPS, n_steps - first)
        edges = torch.stack([next(batches) for _ in range(count)])
        yield first, edges, torch.randint(n, (count,), generator=generator)


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
    kernel: str = "auto",
) -> torch.Tensor:
    """Stochastic layout of the graph (UMAP's cross-entropy, by mini-batches of edges).

    Each step takes ``batch_size`` edges, drawn in proportion to their weight
    (:func:`edge_batches`, ``O(batch_size)`` per step), and
    ``negative_sample_rate`` random points per edge (a run of consecutive slots
    of a random ordering of the points, read in memory order). The ends of each edge are
    pulled together (the gradient of ``log(1 + a d^2b)``) and each edge's head
    and its random points are pushed apart (the gradient of
    ``-log(1 - 1 / (1 + a d^2b))``; both move, unlike in UMAP, where the
    random point stays: with half the repulsion, two digit classes of one
    MNIST model merged, ACC 0.81 instead of 0.94 on every layout seed):
    plain SGD with closed-form gradients, summed per point and clipped per
    point and coordinate, and a learning rate decaying linearly to zero.
    Every step reads the layout before it writes.

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
        Its ``update`` is called with the number of steps done, every
        ``_CHUNK_STEPS`` steps.
    kernel : {'auto', 'numba', 'torch'}, default='auto'
        What runs the steps: a compiled loop (numba, CPU only) or torch
        operations (any device). ``'auto'``: numba on the CPU, torch
        elsewhere. Both do the same arithmetic on the same draws; their
        results differ by float rounding. The compiled loop computes in
        float32 (the estimator's layouts are float32) and returns the
        layout's dtype.

    Returns
    -------
    torch.Tensor of shape (n, n_components)
        The optimised layout (a new tensor).

    Examples
    --------
    Two pairs of linked points, laid out on a line: each pair ends up closer
    together than to the other pair, with either kernel.

    >>> import torch
    >>> from scipy import sparse
    >>> from skdeepcluster.embedding import layout_curve_params, optimize_layout
    >>> graph = sparse.coo_matrix(([1.0] * 4, ([0, 1, 2, 3], [1, 0, 3, 2])), shape=(4, 4))
    >>> start = torch.tensor([[0.0], [3.0], [1.0], [4.0]])
    >>> a, b = layout_curve_params(0.1)
    >>> for kernel in ("numba", "torch"):
    ...     y = optimize_layout(start, graph, n_steps=200, batch_size=4,
    ...                         negative_sample_rate=2, learning_rate=1.0, a=a, b=b,
    ...                         generator=torch.Generator().manual_seed(0), kernel=kernel)
    ...     d = torch.cdist(y, y)
    ...     print(bool(d[0, 1] < d[0, 2]), bool(d[2, 3] < d[1, 3]))
    True True
    True True
    """
    device = layout.device
    n, dim = layout.shape
    if kernel == "auto":
        kernel = "numba" if device.type == "cpu" else "torch"
    if kernel not in ("numba", "torch") or (kernel == "numba" and device.type != "cpu"):
        raise ValueError(f"kernel={kernel!r} is not available on {device}.")
    if n < 2 or graph.nnz == 0:
        return layout.clone()
    # The points are stored in a random order (``order``; ``rank`` maps a point to its
    # slot), so that a run of consecutive slots is a uniform sample of points: each
    # step's negatives are one such run, from a random start (wrapping around), read
    # and written in memory order instead of at random. With every point's negatives
    # random and independent of its edges, this is UMAP's uniform negative sampling.
    # Measured on random graphs (15 neighbours, 10-D, two threads, 1,000 steps of
    # 8,192 edges): 15.8 -> 11.2 ms per step at 1,000,000 nodes, 5.8 -> 4.5 ms at
    # 70,000, the same ACC on digits, signals, wine, blobs and MNIST's PCA scores
    # (benchmarks/results/large.md).
    order = torch.randperm(n, generator=generator)
    rank = torch.empty_like(order).index_copy_(0, order, torch.arange(n))
    chunks = _step_chunks(graph.data, n, n_steps, batch_size, generator)
    constants = (negative_sample_rate, n_steps, learning_rate, a, b)
    if kernel == "numba":
        run = _numba_layout(layout.index_select(0, order), graph, rank, chunks, constants, progress)
    else:
        run = _torch_layout(layout.index_select(0, order.to(device)), graph, rank, chunks,
                            constants, progress)  # fmt: skip
    return run.index_select(0, rank.to(device))  # back in the points' order


def _prefetched(iterator: Iterator, depth: int = _PREFETCH_CHUNKS) -> Iterator:
    """The items of ``iterator``, drawn by a worker thread up to ``depth`` items ahead.

    The layout's draws (a shuffled round of edges every ``n_edges / batch_size``
    steps, then each chunk's edge lists) are torch and numpy work that releases the
    GIL, as does the compiled step loop: drawing ahead while the kernel runs hides
    the draws, a round included when ``depth`` chunks take longer to run than a
    round takes to draw. One thread draws, in order, so the draws are the same as
    without it.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put(error)

    worker = threading.Thread(target=produce, name="skdeepcluster-layout-draws", daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _numba_layout(Y, graph, rank, chunks, constants, progress):
    """Run the steps with the compiled CPU loop (:mod:`._layout_kernel`), on numpy arrays.

    The next chunk's draws and edge lists are made by a worker thread while the
    kernel runs (:func:`_prefetched`).
    """
    from ._layout_kernel import sgd_steps  # numba is imported (and compiled) on first use

    # int32 slots where they fit: half the memory of the edge lists (480 MB at 30
    # million edges) and of the draws made ahead.
    rank = rank.numpy().astype(np.int32 if Y.shape[0] < 2**31 else np.int64)
    rows, cols = rank[graph.row], rank[graph.col]
    work = np.zeros((Y.shape[0], 2, Y.shape[1]), dtype=np.float32)
    work[:, 0] = Y.numpy()
    gathered = ((i, rows[e.numpy()], cols[e.numpy()], s.numpy()) for i, e, s in chunks)
    for first, heads, tails, starts in _prefetched(gathered):
        sgd_steps(work, heads, tails, starts, constants[0], first,
                  *constants[1:], _GRAD_CLIP, _REPULSION_EPS)  # fmt: skip
        if progress is not None:
            progress.update(len(starts))
    return torch.from_numpy(work[:, 0]).to(Y.dtype)  # a view: the caller reorders it


def _torch_layout(Y, graph, rank, chunks, constants, progress):
    """Run the steps with torch operations (any device); ``Y`` is updated in place."""
    device = Y.device
    rows = rank.index_select(0, torch.as_tensor(graph.row, dtype=torch.long)).to(device)
    cols = rank.index_select(0, torch.as_tensor(graph.col, dtype=torch.long)).to(device)
    grad = torch.zeros_like(Y)
    for first, edges, starts in chunks:
        edges = edges.to(device)
        heads = rows.index_select(0, edges.view(-1)).view(edges.shape)
        tails = cols.index_select(0, edges.view(-1)).view(edges.shape)
        _torch_steps(Y, grad, heads, tails, starts.to(device), first, *constants)
        if progress is not None:
            progress.update(len(starts))
    return Y


def _torch_steps(Y, grad, heads, tails, starts, first, rate, n_steps, learning_rate, a, b):
    """Run a chunk of steps with torch operations, in place on ``Y`` (any device).

    Each step gathers batch_size * (2 + rate) rows and sums their gradients per
    point in ``grad`` (one index_add_, which sums in a fixed order on the CPU, so
    runs are reproducible); each touched point then moves by its clipped sum.
    Clipping the sum, not each pair, matters on small graphs, where a batch touches
    a point many times: per-pair clipping let 200-row layouts blow up (ACC 0.45
    instead of 0.96 on blobs). Rows are gathered with index_select: advanced
    indexing (Y[idx]) was 2-3 times slower per step on the CPU.
    """
    n, dim = Y.shape
    run = torch.arange(heads.shape[1] * rate, device=Y.device)
    offsets = torch.arange(dim, device=Y.device)
    for s in range(heads.shape[0]):
        head, tail = heads[s], tails[s]
        y_head = Y.index_select(0, head)
        pull = _pull(y_head - Y.index_select(0, tail), a, b)
        negatives = (starts[s] + run).remainder_(n)
        y_negative = Y.index_select(0, negatives).view(-1, rate, dim)
        push = _push(y_head[:, None, :] - y_negative, a, b)
        touched = torch.cat([head, tail, negatives])
        # index_add_ of whole rows loops over the rows; on the flattened buffer it is
        # one vectorised pass: 0.4 vs 1.2 ms for 16,384 rows of 10 (two threads).
        update = torch.cat([pull + push.sum(1), -pull, -push.view(-1, dim)])
        grad.view(-1).index_add_(0, (touched[:, None] * dim + offsets).view(-1), update.view(-1))
        step_size = learning_rate * (1.0 - (first + s) / n_steps)
        # A point met twice gathers the same sum twice and writes the same value twice.
        moved = Y.index_select(0, touched) - step_size * _clipped(grad.index_select(0, touched))
        Y.index_copy_(0, touched, moved)
        grad.index_fill_(0, touched, 0.0)


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
    buffers = _RefineBuffers(Y, index.shape[1], n_negatives)
    for step in range(n_steps):
        negative_rows = embedding[negatives[step]].to(torch.float64)
        grad = _refine_step(
            Y, weights, total, targets, negative_rows, buffers, a, b, negative_sample_rate
        )
        Y.sub_(grad.mul_(learning_rate * (1.0 - step / n_steps)))
    return Y


class _RefineBuffers:
    """Work space of :func:`refine_placement`, allocated once per call.

    Every step writes into these tensors (``out=`` and in-place operations)
    instead of allocating temporaries. Measured reason: where the C library
    returns every large block to the system (glibc with
    ``MALLOC_TRIM_THRESHOLD_`` set, as Dask's nanny sets it for its workers),
    each temporary was a fresh ``mmap`` with its pages faulted in, and
    ``transform`` ran 2.8 times slower (``benchmarks/results/large.md``).
    The push works on ``queries x negatives`` matrices in float64
    (:func:`_push_of_shared`).
    """

    def __init__(self, Y: torch.Tensor, n_neighbors: int, n_negatives: int) -> None:
        n, c = Y.shape

        def empty(*shape, dtype=Y.dtype):
            return torch.empty(shape, dtype=dtype, device=Y.device)

        self.near = (empty(n, n_neighbors, c), empty(n, n_neighbors, c))
        self.near_d = (empty(n, n_neighbors, 1), empty(n, n_neighbors, 1))
        wide = torch.float64
        self.Y64, self.push64 = empty(n, c, dtype=wide), empty(n, c, dtype=wide)
        self.far = tuple(empty(n, n_negatives, dtype=wide) for _ in range(3))
        self.row = empty(n, 1, dtype=wide)
        self.grad = empty(n, c)


def _pull_into(diff, out, d2, coef, a: float, b: float) -> torch.Tensor:
    """:func:`_pull` of ``diff`` written into ``out``; ``d2`` and ``coef`` are scratch.

    The one place of the formula: ``2ab d^2(b-1) / (1 + a d^2b) * diff``, ``d^2``
    clamped at 1e-12.
    """
    torch.sum(torch.mul(diff, diff, out=out), -1, keepdim=True, out=d2).clamp_min_(1e-12)
    torch.pow(d2, b - 1.0, out=coef).mul_(2.0 * a * b)
    coef.div_(torch.pow(d2, b, out=d2).mul_(a).add_(1.0))
    return torch.mul(coef, diff, out=out)


def _push_of_shared(Y64, negatives, buffers, a: float, b: float) -> torch.Tensor:
    """The mean of :func:`_push` over ``negatives`` for every row of ``Y64`` (float64, n x c).

    The same coefficient as :func:`_push`, with ``d^2b`` taken as ``d^2(b-1) * d^2``
    (one power instead of two). Every query is pushed from the same rows, so the
    squared distances are
    ``|y|^2 + |n|^2 - 2 y.n`` and the mean push ``(y sum_j c_j - sum_j c_j n_j) / m``:
    two ``(queries x negatives)`` matrix products instead of ``queries x
    negatives x components`` differences. Measured reason: the refinement
    took 40 % of ``predict`` through the neighbour embedding, and a third of
    that time with products (``benchmarks/results/large.md``). In float64,
    the cancellation in the distances stays below the ``1e-12`` clamp.
    """
    d2, adb, coef = buffers.far
    torch.mm(Y64, negatives.T, out=d2).mul_(-2.0)
    # |y|^2 through buffers.push64 and buffers.row, both free until the products below.
    squares = torch.square(Y64, out=buffers.push64)
    d2.add_(torch.sum(squares, 1, keepdim=True, out=buffers.row))
    d2.add_(negatives.square().sum(1)).clamp_min_(1e-12)
    torch.pow(d2, b - 1.0, out=coef)  # d^2(b-1); a d^2b is a d^2(b-1) * d^2
    torch.mul(coef, d2, out=adb).mul_(a)
    torch.add(adb, 1.0, out=d2).reciprocal_()  # d2 is free from here
    d2.sub_(adb.add_(_REPULSION_EPS).reciprocal_())
    coef.mul_(d2).mul_(2.0 * a * b)
    push = torch.mm(coef, negatives, out=buffers.push64).neg_()
    push.addcmul_(Y64, torch.sum(coef, 1, keepdim=True, out=buffers.row))
    return push.div_(negatives.shape[0])


def _refine_step(Y, weights, total, targets, negative_rows, buffers, a, b, nsr) -> torch.Tensor:
    """The gradient of one :func:`refine_placement` step, clipped (``buffers.grad``)."""
    diff, scratch = buffers.near
    pull = _pull_into(torch.sub(Y[:, None, :], targets, out=diff), scratch, *buffers.near_d, a, b)
    grad = torch.sum(pull.mul_(weights[:, :, None]), 1, out=buffers.grad)
    buffers.Y64.copy_(Y)
    push = _push_of_shared(buffers.Y64, negative_rows, buffers, a, b)
    grad.add_(push.mul_(total).mul_(nsr).to(grad.dtype))
    return _clipped(grad.div_(total))
