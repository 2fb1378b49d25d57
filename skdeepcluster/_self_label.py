"""Self-labelling: a classifier of the clusters, so that new data are labelled as well as the fit's.

The neighbour embedding lays the training rows out jointly, each pulled by its
own edges in both directions; a new row is placed afterwards against that fixed
layout, with only its edges to the training rows. So ``predict`` labelled rows
that ``fit`` never saw less well than the training rows: on 5,000-row halves
of the MNIST test set, 0.911 against 0.932 (umap-learn's ``transform`` has the
same gap). Self-labelling (as in SCAN's last step, Van Gansbeke et al., 2020)
trains a copy of the encoder with a linear layer to predict the clusterer's
labels of the training rows, with label smoothing, for ``SELF_LABEL_STEPS``
steps; ``labels_`` and ``predict`` then come from this classifier, the same
function for training and new rows. Measured (``benchmarks/results/large.md``,
"New data: self-labelling"): on the six halves of seeds 0-2 the unseen halves'
ACC 0.911 -> 0.928 with the defaults, the training halves unchanged (the
classifier reproduces 99.96-100 % of the clusterer's labels), the gap to them
-0.022 -> -0.004. Exploratory variants on the same fits: without label smoothing
0.913, 150 steps 0.923, 300 steps 0.927, 600 steps 0.929.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ._data import TensorSource, read_sorted_rows
from ._device import torch_seed_context
from ._precision import round_rows
from .training._callbacks import NaNGuard, ProgressBar
from .training._inference import _apply_batched
from .training._loop import LoopState, fit_loop
from .training._pretrain import has_batch_norm

#: Optimisation steps of the classifier (batches of the estimator's ``batch_size``),
#: whatever the number of rows: the labels are a function of the codes that the
#: trained encoder already nearly separates, so the steps do not grow with the data.
SELF_LABEL_STEPS = 300

#: ... but at most this many passes over the rows: 300 steps are 15 passes over the
#: 5,000 rows where they were measured. Without the cap a few hundred rows would take
#: hundreds of passes: the test suite's small fits took 405 s in all instead of 210 s.
SELF_LABEL_MAX_EPOCHS = 15

#: The classifier is kept only when it gives at least this share of the training rows
#: the clusterer's label: it then learnt the clustering (MNIST test set 0.998-1.000,
#: its halves 0.9996-1.000, Fashion-MNIST 0.965); below, it did not (a few steps
#: on tiny data, clusters it cannot tell apart), and the clusterer's labels stay.
MIN_AGREEMENT = 0.95

#: Label smoothing of the cross-entropy: the classifier does not chase the last
#: training labels with ever larger logits, which is what makes it generalise
#: (unseen halves 0.913 without, 0.927 with 0.1; 0.1-0.3 within 0.002).
LABEL_SMOOTHING = 0.1


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
    """Loop objective: label-smoothed cross-entropy of the head, for a budget of steps."""

    def __init__(self, head: LabelHead, labels: torch.Tensor, n_steps: int) -> None:
        self.head, self.labels, self.n_steps, self.step = head, labels, n_steps, 0

    def before_batch(self, state, idx) -> bool:
        if self.step >= self.n_steps:
            return False  # ends the epoch; end_epoch then stops the loop
        self.step += 1
        return True

    def batch_loss(self, idx, xb):
        logits = self.head(xb)
        loss = nn.functional.cross_entropy(
            logits, self.labels[idx], label_smoothing=LABEL_SMOOTHING
        )
        return loss, {"self_label_loss": loss.detach()}

    def end_epoch(self, state, totals, n_seen) -> dict[str, float]:
        if self.step >= self.n_steps:
            state.stop = True
        return {k: float(v) / max(n_seen, 1) for k, v in totals.items()}


def label_steps(n_samples: int, batch_size: int) -> int:
    """The classifier's steps: ``SELF_LABEL_STEPS``, at most ``SELF_LABEL_MAX_EPOCHS`` passes."""
    batches = -(-n_samples // max(1, min(batch_size, n_samples)))
    return min(SELF_LABEL_STEPS, SELF_LABEL_MAX_EPOCHS * batches)


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
) -> tuple[LabelHead, dict[str, list[float]]]:
    """Train a :class:`LabelHead` on a copy of ``module`` to predict ``labels`` of ``X``'s rows.

    :func:`label_steps` steps of ``batch_size`` rows, drawn from at most
    ``SELF_LABEL_STEPS * batch_size`` rows of ``X`` (so a large or streamed
    ``X`` costs no more memory than that sample), with the shared training
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
            device=device, verbose=verbose,
        )


def _train_label_head(
    module, X, labels, *, n_codes, n_clusters, batch_size, optimizer_factory, seed, device,
    verbose,
):
    generator = np.random.default_rng(seed)
    n_steps = label_steps(X.shape[0], batch_size)
    rows, sample = draw_rows(X, n_steps * batch_size, generator)
    source = TensorSource(torch.from_numpy(sample).to(device))
    target = torch.as_tensor(labels[rows], dtype=torch.int64, device=device)
    head = LabelHead(copy.deepcopy(module), n_codes, n_clusters).to(device)
    params = [p for p in head.parameters() if p.requires_grad]
    batch_size = min(batch_size, source.n_samples)
    state = LoopState(
        stage="self_label",
        module=head,
        optimizer=optimizer_factory(params),
        params=params,
        # Enough epochs of the sample for the steps; the objective stops at the budget.
        n_epochs=-(-n_steps * batch_size // source.n_samples) + 1,
        history={"self_label_loss": []},
    )
    guard = NaNGuard(hint="The clusterer's labels are kept (no self-labelling).")
    callbacks = [guard]
    if verbose:
        callbacks.append(ProgressBar("self-labelling"))
    batches = torch.Generator().manual_seed(int(generator.integers(2**31)))
    fit_loop(
        LabelObjective(head, target, n_steps),
        state,
        lambda: source.batches(batch_size, batches, avoid_singleton=has_batch_norm(head)),
        callbacks,
    )
    return (None if guard.tripped_ else head.eval()), state.history


def predict_labels(head: LabelHead, X, *, device: torch.device) -> np.ndarray:
    """The head's cluster of each row of ``X`` (an array or a memmap), in batches.

    The logits are computed in float64 and rounded row by row to float32
    precision (as the codes are), so that a row's label does not depend on
    the rest of the batch and identical rows get identical labels.
    """
    if X.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    logits = round_rows(_apply_batched("forward", head, X, device=device))
    return np.asarray(logits.argmax(axis=1), dtype=np.int64)
