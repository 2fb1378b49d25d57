"""Self-labelling: a classifier of the clusters, so that new data are labelled as well as the fit's.

The neighbour embedding lays the training rows out jointly, each pulled by its
own edges in both directions; a new row is placed afterwards against that fixed
layout, with only its edges to the training rows. So ``predict`` labels rows
that ``fit`` never saw less well than the training rows (umap-learn's
``transform`` has the same gap). Self-labelling (as in SCAN's last step, Van
Gansbeke et al., 2020) trains a copy of the encoder with a linear layer
(:class:`LabelHead`, :func:`train_label_head`) to predict the clusterer's labels
of the training rows, with label smoothing, for a fixed budget of steps;
``labels_`` and ``predict`` then come from this classifier, the same function
for training and new rows. It reproduces the clusterer's labels of the
training rows nearly exactly and closes most of the gap on new rows.

Self-training (:func:`self_train`) then goes beyond the clusterer: each round
trains the classifier on the rows it is most confident about, augmented when
asked, and relabels every row, so that what the classifier learnt from its
surest rows corrects the doubtful ones (as in SCAN's self-labelling, and the
self-training of semi-supervised learning).

The budgets and weights are parameters of :class:`~skdeepcluster.label.SelfLabel`
(the keyword defaults here are the same); measurements: the user guide's
Self-labelling section and ``benchmarks/results/suite.md``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .._data import TensorSource, batch_bounds, read_sorted_rows
from .._device import torch_seed_context
from .._precision import round_rows
from ..training._callbacks import NaNGuard, ProgressBar
from ..training._inference import _apply_batched
from ..training._loop import LoopState, fit_loop
from ..training._pretrain import has_batch_norm


class LabelHead(nn.Module):
    """A trained autoencoder's encoder with a linear layer giving one logit per cluster.

    Parameters
    ----------
    autoencoder : torch.nn.Module
        A module with ``encode`` (a copy of the estimator's network; its
        decoder is kept but not used).
    n_codes : int
        Width of the codes ``autoencoder.encode`` returns.
    n_clusters : int
        Number of logits.
    """

    def __init__(self, autoencoder: nn.Module, n_codes: int, n_clusters: int) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.linear = nn.Linear(n_codes, n_clusters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.autoencoder.encode(x))


class LabelObjective:
    """Loop objective: label-smoothed cross-entropy of the head, for a budget of steps.

    ``augment`` (a batch transform, or None) is applied to each batch;
    ``label_smoothing`` is that of the cross-entropy. With ``cosine``, the
    learning rate follows a cosine from the optimizer's rate to 0 over the
    steps (set per step here, not by the epoch-stepped
    :class:`~skdeepcluster.training.LRScheduler`: a round's budget is in steps,
    and a few long epochs of a large sample would anneal in coarse jumps).
    """

    def __init__(
        self, head: LabelHead, labels: torch.Tensor, n_steps: int, *, augment=None,
        cosine: bool = False, name: str = "self_label_loss", label_smoothing: float = 0.1,
    ) -> None:
        self.head, self.labels, self.n_steps, self.step = head, labels, n_steps, 0
        self.augment, self.cosine, self.name = augment, cosine, name
        self.label_smoothing = label_smoothing
        self.base_lrs = None

    def before_batch(self, state, idx) -> bool:
        if self.step >= self.n_steps:
            return False  # ends the epoch; end_epoch then stops the loop
        if self.cosine:
            if self.base_lrs is None:
                self.base_lrs = [group["lr"] for group in state.optimizer.param_groups]
            factor = 0.5 * (1.0 + math.cos(math.pi * self.step / self.n_steps))
            for group, lr in zip(state.optimizer.param_groups, self.base_lrs, strict=True):
                group["lr"] = lr * factor
        self.step += 1
        return True

    def batch_loss(self, idx, xb):
        if self.augment is not None:
            xb = self.augment(xb)
        logits = self.head(xb)
        loss = nn.functional.cross_entropy(
            logits, self.labels[idx], label_smoothing=self.label_smoothing
        )
        return loss, {self.name: loss.detach()}

    def end_epoch(self, state, totals, n_seen) -> dict[str, float]:
        if self.step >= self.n_steps:
            state.stop = True
        return {k: float(v) / max(n_seen, 1) for k, v in totals.items()}


def label_steps(
    n_samples: int,
    batch_size: int,
    steps: int = 300,
    max_epochs: int = 15,
) -> int:
    """A training's steps over ``n_samples`` rows: ``steps``, at most ``max_epochs`` passes.

    The defaults are the self-labelling classifier's budget (``SelfLabel``'s
    ``steps`` and ``max_epochs``); a self-training round passes its
    ``round_steps`` and ``round_max_epochs``.
    """
    batches = -(-n_samples // max(1, min(batch_size, n_samples)))
    return min(steps, max_epochs * batches)


def draw_rows(X, n_rows: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_rows`` rows of ``X`` drawn without replacement (all when fewer), in row order.

    Returns the row indices and the rows as a fresh float32 array (read with
    :func:`~skdeepcluster._data.read_sorted_rows`: a memmap only where the
    rows lie, its pages released after).
    """
    n_samples = X.shape[0]
    if n_rows < n_samples:
        rows = np.sort(generator.permutation(n_samples)[:n_rows])
    else:
        rows = np.arange(n_samples)
    return rows, read_sorted_rows(X, rows)


def train_label_head(
    module: nn.Module,
    X,
    labels: np.ndarray,
    *,
    n_codes: int,
    n_clusters: int,
    batch_size: int,
    optimizer_factory: Callable[[list], torch.optim.Optimizer],
    seed: int,
    device: torch.device,
    verbose: int = 0,
    steps: int = 300,
    max_epochs: int = 15,
    label_smoothing: float = 0.1,
) -> tuple[LabelHead, dict[str, list[float]]]:
    """Train a :class:`LabelHead` on a copy of ``module`` to predict ``labels`` of ``X``'s rows.

    :func:`label_steps` steps of ``batch_size`` rows (``steps``, at most
    ``max_epochs`` passes), drawn from at most ``steps * batch_size`` rows of
    ``X`` (so a large or streamed ``X`` costs no more memory than that
    sample), with label-smoothed cross-entropy and the shared training
    loop (stage ``'self_label'``, the NaN guard, a progress bar when
    ``verbose``). ``module`` is not changed; ``seed`` fixes the rows, the
    head's initial weights and the batches. Returns the head (eval mode) and
    its history (``'self_label_loss'``); the head is None when its training
    diverged (the NaN guard tripped).
    """
    with torch_seed_context(seed, device):  # the head's weights (torch's global state)
        return _train_label_head(
            module, X, labels, n_codes=n_codes, n_clusters=n_clusters,
            batch_size=batch_size, optimizer_factory=optimizer_factory, seed=seed,
            device=device, verbose=verbose, steps=steps, max_epochs=max_epochs,
            label_smoothing=label_smoothing,
        )


def _train_label_head(
    module, X, labels, *, n_codes, n_clusters, batch_size, optimizer_factory, seed, device,
    verbose, steps, max_epochs, label_smoothing,
):
    generator = np.random.default_rng(seed)
    n_steps = label_steps(X.shape[0], batch_size, steps, max_epochs)
    rows, sample = draw_rows(X, n_steps * batch_size, generator)
    source = TensorSource(torch.from_numpy(sample).to(device))
    target = torch.as_tensor(labels[rows], dtype=torch.int64, device=device)
    head = LabelHead(copy.deepcopy(module), n_codes, n_clusters).to(device)
    batches = torch.Generator().manual_seed(int(generator.integers(2**31)))
    objective = LabelObjective(head, target, n_steps, label_smoothing=label_smoothing)
    tripped, history = _fit_head(
        objective, source, batch_size, optimizer_factory, batches,
        desc="self-labelling" if verbose else None,
        hint="The clusterer's labels are kept (no self-labelling).",
    )
    return (None if tripped else head.eval()), history


def _fit_head(
    objective, source, batch_size, optimizer_factory, batches, *, desc, hint
) -> tuple[bool, dict[str, list[float]]]:
    """Run ``objective`` (a :class:`LabelObjective`) on the shared loop.

    ``batches`` is the batch order's generator, ``desc`` names the progress
    bar (None: no bar), ``hint`` ends the NaN guard's warning. Returns whether
    the training diverged (the NaN guard tripped) and the loop's history.
    """
    head = objective.head
    params = [p for p in head.parameters() if p.requires_grad]
    batch_size = min(batch_size, source.n_samples)
    avoid_singleton = has_batch_norm(head)
    n_batches = len(batch_bounds(source.n_samples, batch_size, avoid_singleton=avoid_singleton)) - 1
    state = LoopState(
        stage="self_label",
        module=head,
        optimizer=optimizer_factory(params),
        params=params,
        # The epochs the steps take (the last one cut at the budget by the objective),
        # so that the progress bar ends full.
        n_epochs=-(-objective.n_steps // n_batches),
        history={objective.name: []},
    )
    guard = NaNGuard(hint=hint)
    callbacks = [guard] + ([ProgressBar(desc)] if desc else [])
    fit_loop(
        objective,
        state,
        lambda: source.batches(batch_size, batches, avoid_singleton=avoid_singleton),
        callbacks,
    )
    return guard.tripped_, state.history


def confident_rows(logits: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` of each cluster's rows with the most probable label (sorted indices).

    A row's cluster is the argmax of its ``logits``, its confidence the
    softmax probability of that cluster; each cluster keeps at least one row.
    """
    labels = logits.argmax(axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    confidence = 1.0 / np.exp(shifted).sum(axis=1)  # the largest softmax probability
    keep = []
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        n_keep = max(1, int(round(share * members.size)))
        keep.append(members[np.argsort(-confidence[members], kind="stable")[:n_keep]])
    return np.sort(np.concatenate(keep))


def self_train(
    head: LabelHead,
    X,
    *,
    n_rounds: int,
    batch_size: int,
    optimizer_factory: Callable[[list], torch.optim.Optimizer],
    augment: Callable[[int], Callable] | None,
    seed: int,
    device: torch.device,
    verbose: int = 0,
    steps: int = 1000,
    max_epochs: int = 50,
    first_share: float = 0.5,
    share_step: float = 0.1,
    label_smoothing: float = 0.1,
) -> tuple[LabelHead | None, dict[str, list[float]]]:
    """``n_rounds`` rounds of self-training of a copy of ``head`` on ``X``'s rows.

    Round ``r`` labels the rows with the classifier, keeps the most confident
    ``min(1, first_share + r * share_step)`` of each cluster
    (:func:`confident_rows`) and trains on them for ``steps`` steps (at most
    ``max_epochs`` passes), with a cosine learning rate from
    ``optimizer_factory``'s, cross-entropy smoothed by ``label_smoothing``,
    and the batch augmentation ``augment(seed)`` builds (None: none). The rows
    are at most ``steps * batch_size`` of ``X`` drawn once. ``head`` is not
    changed. Returns the trained copy (eval mode; None when a round diverged)
    and its history (``'self_train_loss'``, per epoch of every round).
    """
    with torch_seed_context(seed, device):  # dropout, if the network has any
        return _self_train(
            head, X, n_rounds=n_rounds, batch_size=batch_size,
            optimizer_factory=optimizer_factory, augment=augment, seed=seed, device=device,
            verbose=verbose, steps=steps, max_epochs=max_epochs, first_share=first_share,
            share_step=share_step, label_smoothing=label_smoothing,
        )


def _self_train(
    head, X, *, n_rounds, batch_size, optimizer_factory, augment, seed, device, verbose, steps,
    max_epochs, first_share, share_step, label_smoothing,
):
    generator = np.random.default_rng(seed)
    _, sample = draw_rows(X, steps * batch_size, generator)
    rows_on_device = torch.from_numpy(sample).to(device)
    batches = torch.Generator().manual_seed(int(generator.integers(2**31)))
    transform = None if augment is None else augment(int(generator.integers(2**31)))
    head = copy.deepcopy(head)
    history: dict[str, list[float]] = {"self_train_loss": []}
    for round_ in range(n_rounds):
        logits = predict_logits(head, sample, device=device)
        rows = confident_rows(logits, min(1.0, first_share + round_ * share_step))
        source = TensorSource(rows_on_device[torch.from_numpy(rows).to(device)])
        objective = LabelObjective(
            head,
            torch.as_tensor(logits[rows].argmax(axis=1), dtype=torch.int64, device=device),
            label_steps(rows.size, batch_size, steps, max_epochs),
            augment=transform, cosine=True, name="self_train_loss",
            label_smoothing=label_smoothing,
        )
        desc = f"self-training {round_ + 1}/{n_rounds}" if verbose else None
        tripped, round_history = _fit_head(
            objective, source, batch_size, optimizer_factory, batches, desc=desc,
            hint="The self-labelling classifier's labels are kept (no self-training).",
        )
        if tripped:
            return None, history
        history["self_train_loss"].extend(round_history["self_train_loss"])
    return head.eval(), history


def predict_labels(head: LabelHead, X, *, device: torch.device) -> np.ndarray:
    """The head's cluster of each row of ``X`` (an array or a memmap), in batches.

    The logits are computed in float64 and rounded row by row to float32
    precision (as the codes are), so that a row's label does not depend on
    the rest of the batch and identical rows get identical labels.
    """
    if X.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(predict_logits(head, X, device=device).argmax(axis=1), dtype=np.int64)


def predict_logits(head: LabelHead, X, *, device: torch.device) -> np.ndarray:
    """The head's logits of ``X``'s rows: float64 inference, rounded row by row to float32."""
    return round_rows(_apply_batched("forward", head, X, device=device))
