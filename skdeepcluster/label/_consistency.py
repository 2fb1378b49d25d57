"""Neighbour consistency: the self-labelling classifier trained on the neighbour graph (SCAN).

The self-labelling classifier (:mod:`skdeepcluster.label._head`) copies the
clusterer's labels, so it keeps the clusterer's mistakes. Where the clusters
the clusterer drew are a cut of the neighbour graph that the classes do not
follow (on clothes images, for example, the footwear split across clusters),
the graph itself still holds better information: a row's nearest neighbours in
the codes share its class more often than the clusters do. Neighbour
consistency, the clustering step of SCAN (W. Van Gansbeke et al., "SCAN:
Learning to Classify Images without Labels", ECCV 2020), trains the classifier
so that each row and one of its neighbours in the graph, drawn at random, get
the same cluster (the log of the dot product of their predicted
distributions), while an entropy term keeps the clusters' mean distribution
uniform (the clusters do not collapse).

It starts from the self-labelling classifier, not from a fresh linear layer
(which does worse), so the clusterer's partition is its starting point and the
graph corrects it. The entropy weight's default is SCAN's (5 for 10 clusters),
and the learning rate a tenth of the estimator's (SCAN's 1e-4 with Adam against
the estimator's default 1e-3): both are parameters of
:class:`~skdeepcluster.label.SelfLabel` (``entropy_weight``,
``consistency_learning_rate``). Measurements: the user guide's Self-labelling and
Neighbour consistency sections and ``benchmarks/results/suite.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .._data import TensorSource, read_sorted_rows
from .._device import torch_seed_context
from ._head import LabelHead, LabelObjective, _fit_head


class ConsistencyObjective(LabelObjective):
    """Loop objective: SCAN's loss over the rows of a neighbour graph, for a budget of steps.

    Each batch of anchor rows is paired with one neighbour per row, drawn
    uniformly among its neighbours in the graph (``indptr``/``indices``, a CSR
    graph over the rows of ``features``); both are augmented by ``augment``
    when set. The loss is the mean negative log of the dot product of the two
    rows' predicted distributions, minus ``entropy_weight`` times the entropy of
    the batch's mean distribution. A row without neighbours is its own.
    """

    def __init__(
        self, head: LabelHead, features: torch.Tensor, graph: sp.csr_matrix, n_steps: int,
        *, augment=None, generator: torch.Generator, entropy_weight: float = 5.0,
    ) -> None:
        super().__init__(head, None, n_steps, augment=augment, name="consistency_loss")
        self.entropy_weight = entropy_weight
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
        loss = consistency + self.entropy_weight * (mean * torch.log(mean)).sum()
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
    entropy_weight: float = 5.0,
) -> tuple[LabelHead | None, dict[str, list[float]]]:
    """``n_steps`` steps of neighbour consistency of a copy of ``head``.

    ``graph`` is a neighbour graph over ``X[rows]`` (``rows`` sorted: the
    neighbour embedding's ``graph_`` and ``fit_indices_``); those rows are read
    once and held on ``device``. ``optimizer_factory`` gives the optimizer (the
    estimator's, at ``SelfLabel``'s ``consistency_learning_rate`` share of its
    learning rate; constant); ``augment(seed)`` builds the batch augmentation
    (None: none); ``entropy_weight`` weighs the entropy term of
    :class:`ConsistencyObjective`. ``head`` is not changed; ``seed`` fixes the
    batches, the neighbours drawn, the augmentation and dropout. Returns the
    trained copy (eval mode; None when the training diverged) and its history
    (``'consistency_loss'``).
    """
    with torch_seed_context(seed, device):  # dropout, if the network has any
        generator = np.random.default_rng(seed)
        features = torch.from_numpy(read_sorted_rows(X, rows)).to(device)
        head = copy.deepcopy(head).train()
        batches, pairs, augmentation = (int(s) for s in generator.integers(2**31, size=3))
        objective = ConsistencyObjective(
            head, features, sp.csr_matrix(graph), n_steps,
            augment=None if augment is None else augment(augmentation),
            generator=torch.Generator().manual_seed(pairs), entropy_weight=entropy_weight,
        )
        tripped, history = _fit_head(
            objective, TensorSource(features), batch_size, optimizer_factory,
            torch.Generator().manual_seed(batches),
            desc="neighbour consistency" if verbose else None,
            hint="The self-labelling classifier's labels are kept (no neighbour consistency).",
        )
    return (None if tripped else head.eval()), history
