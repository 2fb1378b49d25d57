"""Callbacks of the training loop: what every loop needs, each in one small class.

A callback is an instance of :class:`Callback` (whose hooks do nothing until
overridden), or any object with all of its hooks (``HOOKS``); each
hook receives the :class:`~skdeepcluster.training.LoopState` and may change it
(``state.stop = True`` ends training after the epoch). The classes here are
scikit-learn estimators as far as parameters go (``get_params``, ``clone``),
so a list of them is an ordinary parameter of
:class:`~skdeepcluster.AutoencoderKMeans` (``callbacks=[...]``).
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._loop import LoopState, is_finite

#: How a metric is named in warnings.
_METRIC_NAMES = {
    "train_loss": "training loss",
    "val_loss": "validation loss",
    "refine_loss": "refinement loss",
}


#: The hooks of a callback, which the loop calls on every callback (see :class:`Callback`).
HOOKS = ("on_train_begin", "on_epoch_begin", "on_grad_computed", "on_epoch_end", "on_train_end")


#: How an epoch of each stage is named in warnings.
_STAGE_NAMES = {"pretrain": "", "refine": "refinement ", "self_label": "self-labelling "}


class Callback(BaseEstimator):
    """Base class of the training-loop callbacks; every hook does nothing.

    Subclass it and override the hooks you need. Set ``stage`` (an
    ``__init__`` parameter of your subclass, or a class attribute) to
    ``'pretrain'`` or ``'refine'`` to run in that stage only; None runs in
    every loop.

    Examples
    --------
    >>> from skdeepcluster.training import Callback
    >>> class StopAtLoss(Callback):
    ...     def __init__(self, threshold=0.05):
    ...         self.threshold = threshold
    ...     def on_epoch_end(self, state):
    ...         if state.logs.get("train_loss", 1.0) < self.threshold:
    ...             state.stop = True
    >>> StopAtLoss(threshold=0.01)
    StopAtLoss(threshold=0.01)
    """

    stage = None
    _parameter_constraints: dict = {}

    def on_train_begin(self, state: LoopState) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, state: LoopState) -> None:
        """Before each epoch."""

    def on_grad_computed(self, state: LoopState) -> None:
        """After each ``backward``, before the optimizer's step."""

    def on_epoch_end(self, state: LoopState) -> None:
        """After each epoch, with its metrics in ``state.logs``."""

    def on_train_end(self, state: LoopState) -> None:
        """After the last epoch, also when training stopped early or failed."""


def _finite_params(state: LoopState) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in state.params)


def _monitored(state: LoopState, monitor: str) -> float:
    """The metric that ``monitor`` names; ``'auto'``: the validation loss, else the first."""
    if monitor != "auto":
        return state.logs[monitor]
    if "val_loss" in state.logs:
        return state.logs["val_loss"]
    return next(iter(state.logs.values()))


class NaNGuard(Callback):
    """Stop when a metric becomes NaN or infinite, and restore the last finite weights.

    Keeps a copy of the weights (and centres) after every finite epoch. When a
    metric of an epoch is not finite, or the weights are not finite at the
    end of training, the copy is restored, a
    :class:`~sklearn.exceptions.ConvergenceWarning` says so and training
    stops: the module is never left with NaN weights. The loops add it
    first, themselves.

    Parameters
    ----------
    hint : str, default='Lower the learning rate or scale the input.'
        Advice appended to the warning.
    """

    def __init__(self, hint="Lower the learning rate or scale the input."):
        self.hint = hint

    def on_train_begin(self, state):
        self.last_good_ = state.snapshot()
        self.tripped_ = False

    def on_epoch_end(self, state):
        if not is_finite(state.logs):
            name, value = next((k, v) for k, v in state.logs.items() if not math.isfinite(v))
            self._restore(state, f"The {_METRIC_NAMES.get(name, name)} became {value}")
        elif not _finite_params(state):
            # The epoch's last step can break the weights after its loss was measured.
            self._restore(state, "The weights became NaN or infinite")
        else:
            self.last_good_ = state.snapshot()
            return
        state.logs = None

    def on_train_end(self, state):
        if not self.tripped_ and not _finite_params(state):
            self._restore(state, "The weights became NaN or infinite")

    def _restore(self, state, what):
        state.restore(self.last_good_)
        state.stop = self.tripped_ = True
        kept = "weights and centres" if state.extra else "weights"
        warnings.warn(
            f"{what} at {_STAGE_NAMES[state.stage]}epoch {state.epoch + 1}; training stopped "
            f"and the {kept} of the last finite epoch were restored. {self.hint}",
            ConvergenceWarning,
            stacklevel=5,
        )


class EarlyStopping(Callback):
    """Stop when the monitored loss stalls, and restore the best weights.

    Also records ``history['best_epoch']``, the epoch with the lowest
    monitored loss, whether or not it stops training.

    Parameters
    ----------
    patience : int or None, default=5
        Stop when the monitored loss has not improved by at least ``tol`` for
        this many epochs, then restore the weights of the best epoch. None
        only records the best epoch.
    tol : float, default=1e-4
        Minimum improvement.
    monitor : str, default='auto'
        The metric of ``state.logs`` to watch; ``'auto'`` is the validation
        loss when there is one, else the training loss.
    stage : {'pretrain', 'refine'} or None, default='pretrain'
        The loop it acts in (None: all).

    Examples
    --------
    >>> from skdeepcluster import AutoencoderKMeans
    >>> from skdeepcluster.training import EarlyStopping
    >>> model = AutoencoderKMeans(validation_fraction=0.1,
    ...                           callbacks=[EarlyStopping(patience=3)])
    """

    _parameter_constraints: dict = {
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "monitor": [str],
        "stage": [StrOptions({"pretrain", "refine"}), None],
    }

    def __init__(self, patience=5, tol=1e-4, monitor="auto", stage="pretrain"):
        self.patience = patience
        self.tol = tol
        self.monitor = monitor
        self.stage = stage

    def on_train_begin(self, state):
        self.best_ = self.reference_ = math.inf
        self.n_no_change_ = 0
        self.best_state_ = None
        state.history.setdefault("best_epoch", None)

    def on_epoch_end(self, state):
        monitored = _monitored(state, self.monitor)
        if monitored < self.best_:
            self.best_ = monitored
            state.history["best_epoch"] = state.epoch
            if self.patience is not None:
                self.best_state_ = state.snapshot()
        if monitored < self.reference_ - self.tol:
            self.reference_ = monitored
            self.n_no_change_ = 0
        else:
            self.n_no_change_ += 1
        if self.patience is not None and self.n_no_change_ >= self.patience:
            state.stop = True

    def on_train_end(self, state):
        if self.best_state_ is not None:
            state.restore(self.best_state_)


class LRScheduler(Callback):
    """A learning-rate schedule, stepped once per epoch.

    The schedule spans one training loop: the optimizer's learning rates are
    restored when the loop ends, so ``partial_fit`` (one epoch per call)
    starts each call at the configured rate.

    Parameters
    ----------
    policy : {'cosine', 'plateau'}, default='cosine'
        ``'cosine'`` anneals the learning rate to 0 over the loop's epochs
        (:class:`~torch.optim.lr_scheduler.CosineAnnealingLR`; a lower final
        loss for the same number of epochs); ``'plateau'`` divides it by 10
        when the monitored loss has not improved for ``patience`` epochs
        (:class:`~torch.optim.lr_scheduler.ReduceLROnPlateau`).
    patience : int, default=5
        ``'plateau'`` only.
    monitor : str, default='auto'
        ``'plateau'`` only: the metric to watch (see :class:`EarlyStopping`).
    stage : {'pretrain', 'refine'} or None, default='pretrain'
        The loop it acts in (None: all).

    Examples
    --------
    >>> from skdeepcluster.training import LRScheduler
    >>> from skdeepcluster import AutoencoderKMeans
    >>> model = AutoencoderKMeans(callbacks=[LRScheduler("cosine")])
    """

    _parameter_constraints: dict = {
        "policy": [StrOptions({"cosine", "plateau"})],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "monitor": [str],
        "stage": [StrOptions({"pretrain", "refine"}), None],
    }

    def __init__(self, policy="cosine", patience=5, monitor="auto", stage="pretrain"):
        self.policy = policy
        self.patience = patience
        self.monitor = monitor
        self.stage = stage

    def on_train_begin(self, state):
        self.initial_lrs_ = [group["lr"] for group in state.optimizer.param_groups]
        if self.policy == "cosine":
            self.scheduler_ = torch.optim.lr_scheduler.CosineAnnealingLR(
                state.optimizer, T_max=max(state.n_epochs, 1)
            )
        elif self.policy == "plateau":
            self.scheduler_ = torch.optim.lr_scheduler.ReduceLROnPlateau(
                state.optimizer, mode="min", factor=0.1, patience=self.patience
            )
        else:
            raise ValueError(f"Unknown policy {self.policy!r}; expected 'cosine' or 'plateau'.")

    def on_epoch_end(self, state):
        if self.policy == "plateau":
            self.scheduler_.step(_monitored(state, self.monitor))
        else:
            self.scheduler_.step()

    def on_train_end(self, state):
        # The schedule belongs to one loop: an optimizer that lives on (partial_fit
        # keeps it between calls) starts the next loop at its own learning rate.
        for group, lr in zip(state.optimizer.param_groups, self.initial_lrs_, strict=True):
            group["lr"] = lr


class GradientNormClipping(Callback):
    """Clip the global norm of the gradients before each step.

    Numerical safety for aggressive learning rates, in pre-training and
    refinement alike (``stage=None``).

    Parameters
    ----------
    max_norm : float, default=1.0
        Largest global gradient norm (:func:`torch.nn.utils.clip_grad_norm_`).
    stage : {'pretrain', 'refine'} or None, default=None
        The loop it acts in (None: all).

    Examples
    --------
    >>> from skdeepcluster import AutoencoderKMeans
    >>> from skdeepcluster.training import GradientNormClipping
    >>> model = AutoencoderKMeans(callbacks=[GradientNormClipping(max_norm=1.0)])
    """

    _parameter_constraints: dict = {
        "max_norm": [Interval(Real, 0, None, closed="neither")],
        "stage": [StrOptions({"pretrain", "refine"}), None],
    }

    def __init__(self, max_norm=1.0, stage=None):
        self.max_norm = max_norm
        self.stage = stage

    def on_grad_computed(self, state):
        nn.utils.clip_grad_norm_(state.params, self.max_norm)


class ProgressBar(Callback):
    """A tqdm progress bar, one step per epoch, with the epoch's metrics.

    The estimators add one per loop when ``verbose > 0``.

    Parameters
    ----------
    desc : str or None, default=None
        Label of the bar (the stage when None).
    """

    def __init__(self, desc=None):
        self.desc = desc

    def on_train_begin(self, state):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(
            total=state.n_epochs, desc=self.desc or state.stage, unit="epoch", leave=True
        )

    def on_epoch_end(self, state):
        self.bar_.update(1)
        self.bar_.set_postfix({k: f"{v:.4g}" for k, v in state.logs.items()})

    def on_train_end(self, state):
        self.bar_.close()
