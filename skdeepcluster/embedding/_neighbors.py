"""Exact Euclidean k-nearest-neighbour search, in tiles, on any torch device."""

from __future__ import annotations

import math

import torch

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
    # Bounds both the (block, n_data) distances and the (block, k, n_features) differences.
    block = max(64, _KNN_BLOCK_ENTRIES // max(data.shape[0], n_candidates * data.shape[1], 1))
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
    exact = ((q[:, None, :] - data[candidates]) ** 2).sum(-1)
    exact, order = torch.sort(exact, dim=1, stable=True)
    return exact.sqrt(), candidates.gather(1, order)
