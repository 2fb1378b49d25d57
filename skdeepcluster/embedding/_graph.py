"""Fuzzy memberships of the k nearest neighbours and the symmetric fuzzy graph (UMAP)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import sparse

#: Bisection steps for the per-point bandwidths (float32 precision is reached well before).
_BANDWIDTH_STEPS = 64


def _membership(dist: torch.Tensor) -> torch.Tensor:
    """Fuzzy membership of each row's neighbours: ``exp(-(d - rho) / sigma)``.

    ``rho`` is the distance to the nearest neighbour and ``sigma`` is found
    by bisection so that each row's memberships sum to ``log2(k)``: every
    point then has the same effective number of neighbours, whatever the
    local density.

    Parameters
    ----------
    dist : torch.Tensor of shape (n_points, k)
        Distances to each point's ``k`` nearest neighbours, nearest first.

    Returns
    -------
    torch.Tensor of shape (n_points, k)
        Memberships in (0, 1], 1 for the nearest neighbour.
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

    ``A[i, j]`` is the membership of ``j`` among the neighbours of ``i``
    (see ``_membership``).

    Parameters
    ----------
    dist : torch.Tensor of shape (n, k)
        Distances to the ``k`` nearest neighbours of every point (itself
        excluded), nearest first.
    index : torch.Tensor of shape (n, k)
        Indices of those neighbours.

    Returns
    -------
    scipy.sparse.coo_matrix of shape (n, n)
        The symmetric graph, weights in (0, 1], no explicit zeros.
    """
    n, k = index.shape
    weights = _membership(dist).cpu().numpy().ravel().astype(np.float64)
    rows = np.repeat(np.arange(n), k)
    A = sparse.csr_matrix((weights, (rows, index.cpu().numpy().ravel())), shape=(n, n))
    graph = (A + A.T - A.multiply(A.T)).tocoo()
    graph.eliminate_zeros()
    return graph
