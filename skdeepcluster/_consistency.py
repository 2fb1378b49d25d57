"""Neighbour consistency: the self-labelling classifier trained on the neighbour graph (SCAN).

The self-labelling classifier (:mod:`skdeepcluster._self_label`) copies the
clusterer's labels, so it keeps the clusterer's mistakes. Where the clusters
the clusterer drew are a cut of the neighbour graph that the classes do not
follow, the graph itself still holds better information: on Fashion-MNIST,
80 % of each row's nearest neighbours in the codes share its class, while the
clusterer's best labels are 70 % right, and its other mode (sandals and
sneakers mixed, ankle boots joined to them) 64 %. Neighbour consistency, the
clustering step of SCAN (W. Van Gansbeke et al., "SCAN: Learning to Classify
Images without Labels", ECCV 2020), trains the classifier so that each row and
one of its neighbours in the graph, drawn at random, get the same cluster
(the log of the dot product of their predicted distributions), while an entropy
term keeps the clusters' mean distribution uniform (the clusters do not
collapse).

It starts from the self-labelling classifier (from a fresh linear layer it
lost: Fashion-MNIST 0.578 after nine passes, against 0.70), so the clusterer's
partition is its starting point and the graph corrects it. Measured on
Fashion-MNIST (``benchmarks/results/suite.md``, "Neighbour consistency"):
the defaults' fit of seed 1 (0.636, the footwear mixed) went to 0.70 in seven
passes, that of seed 0 (0.700) to 0.714 in twelve.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ._data import TensorSource, read_sorted_rows
from ._device import torch_seed_context
from ._self_label import LabelHead, LabelObjective, _fit_head

#: Weight of the entropy of the clusters' mean distribution against the
#: consistency term: SCAN's value (5 for 10 clusters), kept as measured.
ENTROPY_WEIGHT = 5.0

#: The learning rate of the consistency training, as a share of the estimator's
#: ``learning_rate``: SCAN's 1e-4 with Adam, against our default 1e-3.
LEARNING_RATE_SHARE = 0.1


class ConsistencyObjective(LabelObjective):
    """Loop objective: SCAN's loss over the rows of a neighbour graph, for a budget of steps.

    Each batch of anchor rows is paired with one neighbour per row, drawn
    uniformly among its neighbours in the graph (``indptr``/``indices``, a CSR
    graph over the rows of ``features``); both are augmented by ``augment``
    when set. The loss is the mean negative log of the dot product of the two
    rows' predicted distributions, minus ``ENTROPY_WEIGHT`` times the entropy of
    the batch's mean distribution. A row without neighbours is its own.
    """

    def __init__(
        self, head: LabelHead, features: torch.Tensor, graph: sp.csr_matrix, n_steps: int,
        *, augment=None, generator: torch.Generator,
    ) -> None:
        super().__init__(head, None, n_steps, augment=augment, name="consistency_loss")
        device = features.device
        self.features, self.generator = features, generator
        self.indptr = torch.as_tensor(graph.indptr, dtype=torch.int64, device=device)
        self.indices = torch.as_tensor(graph.indices, dtype=torch.int64, device=device)
        self.degree = self.indptr[1:] - self.indptr[:-1]

    def neighbours(self, idx: torch.Tensor) -> torch.Tensor:
        """One neighbour of each row of ``idx``, drawn uniformly (the row itself if none)."""
        u = torch.rand(idx.shape[0], generator=self.generator).to(idx.device)
        if self.indices.numel() == 0:  # a graph without edges (every row the same)
            return idx
        degree = self.degree[idx]
        offset = torch.minimum((u * degree).long(), (degree - 1).clamp_min(0))
        drawn = self.indices[(self.indptr[idx] + offset).clamp_max(self.indices.numel() - 1)]
        return torch.where(degree > 0, drawn, idx)

    def batch_loss(self, idx, xb):
        neighbours = self.features[self.neighbours(idx)]
        if self.augment is not None:
            xb, neighbours = self.augment(xb), self.augment(neighbours)
        p_anchor = nn.functional.softmax(self.head(xb), dim=1)
        p_neighbour = nn.functional.softmax(self.head(neighbours), dim=1)
        agreement = (p_anchor * p_neighbour).sum(dim=1).clamp_min(1e-8)
        consistency = -torch.log(agreement).mean()
        mean = p_anchor.mean(dim=0).clamp_min(1e-8)
        loss = consistency + ENTROPY_WEIGHT * (mean * torch.log(mean)).sum()
        return loss, {self.name: loss.detach()}


def train_consistency(
    head: LabelHead,
    X,
    graph: sp.csr_matrix,
    rows: np.ndarray,
    *,
    n_steps: int,
    batch_size: int,
    optimizer_factory: Callable[[list], torch.optim.Optimizer],
    augment: Callable[[int], Callable] | None,
    seed: int,
    device: torch.device,
    verbose: int = 0,
) -> tuple[LabelHead | None, dict[str, list[float]]]:
    """``n_steps`` steps of neighbour consistency of a copy of ``head``.

    ``graph`` is a neighbour graph over ``X[rows]`` (``rows`` sorted: the
    neighbour embedding's ``graph_`` and ``fit_indices_``); those rows are read
    once and held on ``device``. ``optimizer_factory`` gives the optimizer (the
    estimator's, at ``LEARNING_RATE_SHARE`` of its learning rate; constant);
    ``augment(seed)`` builds the batch augmentation (None: none). ``head`` is
    not changed; ``seed`` fixes the batches, the neighbours drawn, the
    augmentation and dropout. Returns the trained copy (eval mode; None when
    the training diverged) and its history (``'consistency_loss'``).
    """
    with torch_seed_context(seed, device):  # dropout, if the network has any
        generator = np.random.default_rng(seed)
        features = torch.from_numpy(read_sorted_rows(X, rows)).to(device)
        head = copy.deepcopy(head).train()
        batches, pairs, augmentation = (int(s) for s in generator.integers(2**31, size=3))
        objective = ConsistencyObjective(
            head, features, sp.csr_matrix(graph), n_steps,
            augment=None if augment is None else augment(augmentation),
            generator=torch.Generator().manual_seed(pairs),
        )
        tripped, history = _fit_head(
            objective, TensorSource(features), batch_size, optimizer_factory,
            torch.Generator().manual_seed(batches),
            desc="neighbour consistency" if verbose else None,
            hint="The self-labelling classifier's labels are kept (no neighbour consistency).",
        )
    return (None if tripped else head.eval()), history
