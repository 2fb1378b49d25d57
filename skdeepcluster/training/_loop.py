"""The one training loop: batches -> loss -> step, with callbacks for the rest.

Pre-training (:func:`~skdeepcluster.training.train_autoencoder`), k-means-loss
refinement and DEC/IDEC refinement all run :func:`fit_loop`. What differs
between them is an *objective* (the loss of a batch and the bookkeeping at the
end of an epoch); what they share -- the NaN guard, early stopping, learning-
rate schedules, gradient clipping, progress bars, and any callback of the user
-- are callbacks (see :mod:`skdeepcluster.training._callbacks`), in the spirit
of skorch's ``NeuralNet.fit_loop``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

logger = logging.getLogger("skdeepcluster.training")


@dataclass(eq=False)
class LoopState:
    """What callbacks see and may change while a loop runs.

    Attributes
    ----------
    stage : str
        ``'pretrain'``, ``'refine'`` or ``'self_label'``.
    module : torch.nn.Module
        The network being trained (possibly DDP-wrapped).
    optimizer : torch.optim.Optimizer
        Its optimizer.
    params : list of torch.Tensor
        The tensors the optimizer updates (the network's, plus the centres
        in DEC/IDEC refinement); gradient clipping acts on them.
    n_epochs : int
        Maximum number of epochs of this loop.
    epoch : int
        The current (0-based) epoch.
    logs : dict or None
        The metrics of the epoch that just ended (e.g. ``'train_loss'``),
        appended to ``history`` after the ``on_epoch_end`` callbacks; a
        callback that sets it to None discards the epoch, and the later
        callbacks are not called for it.
    history : dict
        Lists of the metrics of the earlier epochs, and ``'best_epoch'``.
    stop : bool
        Set to True to end training after the current epoch.
    extra : dict
        Further tensors that belong to the model (e.g. ``'centers'``); they
        are saved and restored with the weights by the NaN guard and early
        stopping.
    """

    stage: str
    module: nn.Module
    optimizer: torch.optim.Optimizer
    params: list
    n_epochs: int
    epoch: int = 0
    logs: dict[str, float] | None = None
    history: dict[str, Any] = field(default_factory=dict)
    stop: bool = False
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def snapshot(self) -> dict[str, dict[str, torch.Tensor]]:
        """A copy of the weights (and ``extra`` tensors) to restore later."""
        return {
            "module": _snapshot(self.module),
            "extra": {k: v.detach().clone() for k, v in self.extra.items()},
        }

    def restore(self, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
        """Load a :meth:`snapshot` back, in place."""
        self.module.load_state_dict(snapshot["module"])
        with torch.no_grad():
            for name, value in snapshot["extra"].items():
                self.extra[name].copy_(value)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class Objective(Protocol):
    """What a loop trains for: the loss of a batch and the end-of-epoch metrics."""

    def before_batch(self, state: LoopState, idx: torch.Tensor) -> bool:
        """Called before each step; False ends the epoch (without this step)."""

    def batch_loss(
        self, idx: torch.Tensor, xb: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to minimise and named, detached parts to average over the epoch."""

    def end_epoch(
        self, state: LoopState, totals: dict[str, torch.Tensor], n_seen: int
    ) -> dict[str, float]:
        """The epoch's logs from the row-weighted sums of the batch parts."""


def _call(callbacks: Iterable, hook: str, state: LoopState) -> None:
    for callback in callbacks:
        if hook == "on_epoch_end" and not state.logs:
            break  # nothing measured, or the epoch was discarded (e.g. by the NaN guard)
        stage = getattr(callback, "stage", None)
        if stage is not None and stage != state.stage:
            continue
        getattr(callback, hook)(state)


def fit_loop(
    objective: Objective,
    state: LoopState,
    batches,
    callbacks: Sequence,
) -> dict[str, Any]:
    """Run ``state.n_epochs`` epochs of ``objective`` over ``batches``.

    Parameters
    ----------
    objective : Objective
        Batch loss and epoch bookkeeping.
    state : LoopState
        Module, optimizer and parameters; callbacks read and change it.
    batches : callable
        ``batches()`` returns an iterator of ``(row_indices, batch)`` for one
        epoch (a fresh permutation each call).
    callbacks : sequence of Callback
        Called in order at each hook: ``on_train_begin``, ``on_epoch_begin``,
        ``on_grad_computed`` (after ``backward``, before the step),
        ``on_epoch_end`` and ``on_train_end`` (also after an error). A
        callback whose ``stage`` attribute is set runs in that stage only.

    Returns
    -------
    history : dict
        ``state.history``. The module is left in eval mode.
    """
    _call(callbacks, "on_train_begin", state)
    try:
        for epoch in range(state.n_epochs):
            state.epoch = epoch
            _call(callbacks, "on_epoch_begin", state)
            totals, n_seen = _run_epoch(objective, state, batches, callbacks)
            state.logs = objective.end_epoch(state, totals, n_seen)
            _call(callbacks, "on_epoch_end", state)
            for name, value in (state.logs or {}).items():
                state.history.setdefault(name, []).append(value)
            if state.logs:
                logger.debug(
                    "%s epoch %d: %s",
                    state.stage,
                    epoch + 1,
                    " ".join(f"{k}={v:.6g}" for k, v in state.logs.items()),
                )
            if state.stop:
                break
    finally:
        _call(callbacks, "on_train_end", state)
        state.module.eval()
    return state.history


def _run_epoch(objective, state: LoopState, batches, callbacks) -> tuple[dict, int]:
    """One pass over the batches: the row-weighted sums of the loss parts, and the rows."""
    state.module.train()
    totals: dict[str, torch.Tensor] = {}
    n_seen = 0
    for idx, xb in batches():
        if not objective.before_batch(state, idx):
            break
        state.optimizer.zero_grad(set_to_none=True)
        loss, parts = objective.batch_loss(idx, xb)
        loss.backward()
        _call(callbacks, "on_grad_computed", state)
        state.optimizer.step()
        n = xb.shape[0]
        n_seen += n
        for name, value in parts.items():
            totals[name] = totals[name] + value * n if name in totals else value * n
    return totals, n_seen


def is_finite(logs: dict[str, float] | None) -> bool:
    """Whether every value of ``logs`` is a finite number."""
    return all(math.isfinite(v) for v in (logs or {}).values())
