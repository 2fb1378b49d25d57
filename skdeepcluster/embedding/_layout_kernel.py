"""The layout's SGD steps on the CPU, compiled with numba.

Hand-written, with a measured reason: on the CPU the layout is bound by memory
latency, not arithmetic. A step of 8,192 edges and 40,960 negatives touches
about 16,000 random rows of the layout, and the torch step (gathers, a scatter-add
into a gradient buffer, a clipped update, a reset) reads and writes those rows
five to seven times over, through temporaries. This loop does the same arithmetic
in one pass over the pairs and one over the touched points. Measured on a random
graph of 1,000,000 nodes (15 neighbours, 10-D, steps of 8,192 edges, two cores,
``benchmarks/bench_layout_step.py``): 10.3 / 9.6 ms per step against torch's
28.1 / 19.5 ms; 3.9 / 4.2 against 9.7 / 10.2 ms at 70,000 nodes
(``benchmarks/results/large.md``, "The layout's steps as a compiled loop").
numba comes with pynndescent, a core dependency; on a GPU the torch step runs.
The loop is single-threaded, so its result does not depend on the number of
threads; a worker thread draws the next steps' edges meanwhile. It is compiled on
first use (about 1.5 s) and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sgd_steps(
    W, heads, tails, starts, rate, first_step, n_steps, learning_rate, a, b, clip, eps
):  # pragma: no cover - compiled; tested through optimize_layout against the torch step
    """Run ``heads.shape[0]`` layout steps in place on ``W[:, 0]`` (see ``optimize_layout``).

    Parameters
    ----------
    W : ndarray of shape (n, 2, dim), float32
        ``W[:, 0]``: the layout, points in slot order, updated in place;
        ``W[:, 1]``: zeros, a work buffer for the gradients, left zero. One
        buffer rather than two arrays: a point's gradient lies next to its
        coordinates (measured no faster than two arrays at 1,000,000 nodes,
        12.9 against 13.1 ms per step, and no slower).
    heads, tails : ndarray of shape (n_chunk_steps, batch_size), int
        Slots of each step's edges.
    starts : ndarray of shape (n_chunk_steps,), int
        First slot of each step's run of negatives.
    rate : int
        Negatives per edge.
    first_step, n_steps : int
        Index of the first of these steps and the total number of steps
        (the learning rate decays linearly to zero over ``n_steps``).
    learning_rate, a, b, clip, eps : float
        Initial step size, similarity curve, per-coordinate clip, repulsion floor.
    """
    for s in range(heads.shape[0]):
        step_size = learning_rate * (1.0 - (first_step + s) / n_steps)
        _accumulate(W, heads[s], tails[s], starts[s], rate, a, b, eps)
        _apply(W, heads[s], tails[s], starts[s], rate, step_size, clip)


@numba.njit(cache=True, nogil=True, inline="always")
def _accumulate(W, head, tail, start, rate, a, b, eps):  # pragma: no cover
    """Sum each pair's gradient into ``W[:, 1]``: attraction per edge, repulsion per negative."""
    n = W.shape[0]
    two_ab = 2.0 * a * b
    bf = np.float32(b)
    for i in range(head.shape[0]):
        h, t = head[i], tail[i]
        d2 = _squared_distance(W, h, t)
        # float32 pow: 20 % faster per step than float64, well within the layout's noise.
        p = np.float32(d2) ** bf
        _exchange(W, h, t, two_ab * (p / d2) / (1.0 + a * p))
        s = (start + i * rate) % n
        for _ in range(rate):
            d2 = _squared_distance(W, h, s)
            p = np.float32(d2) ** bf
            adb = a * p
            _exchange(W, h, s, two_ab * (p / d2) * (1.0 / (1.0 + adb) - 1.0 / (adb + eps)))
            s += 1
            if s == n:
                s = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _squared_distance(W, i, j):  # pragma: no cover
    """Squared distance of points ``i`` and ``j`` in the layout, at least ``1e-12``."""
    d2 = 0.0
    for k in range(W.shape[2]):
        d = W[i, 0, k] - W[j, 0, k]
        d2 += d * d
    return max(d2, 1e-12)


@numba.njit(cache=True, nogil=True, inline="always")
def _exchange(W, i, j, coef):  # pragma: no cover
    """Add ``coef * (y_i - y_j)`` to point ``i``'s gradient and take it from ``j``'s."""
    for k in range(W.shape[2]):
        g = coef * (W[i, 0, k] - W[j, 0, k])
        W[i, 1, k] += g
        W[j, 1, k] -= g


@numba.njit(cache=True, nogil=True, inline="always")
def _apply(W, head, tail, start, rate, step_size, clip):  # pragma: no cover
    """Move every touched point once by its clipped summed gradient, and zero it.

    A point touched twice is moved on its first visit; its gradient is zero by the
    second, so the second moves it by nothing.
    """
    n = W.shape[0]
    for i in range(head.shape[0]):
        _move(W, head[i], step_size, clip)
        _move(W, tail[i], step_size, clip)
    s = start % n
    for _ in range(head.shape[0] * rate):
        _move(W, s, step_size, clip)
        s += 1
        if s == n:
            s = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _move(W, p, step_size, clip):  # pragma: no cover
    for k in range(W.shape[2]):
        g = W[p, 1, k]
        if g != g:  # NaN, as torch.nan_to_num; infinities are clipped
            g = 0.0
        W[p, 0, k] -= step_size * min(max(g, -clip), clip)
        W[p, 1, k] = 0.0
