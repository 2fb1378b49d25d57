"""Tests of the training loop (``fit_loop``) and of its callbacks, each on its own."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from torch import nn

from skdeepcluster import MLP
from skdeepcluster._networks import MLPAutoencoder
from skdeepcluster.metrics import cluster_accuracy_scorer
from skdeepcluster.refine import KMeansLoss
from skdeepcluster.training import (
    Callback,
    EarlyStopping,
    GradientNormClipping,
    LoopState,
    LRScheduler,
    NaNGuard,
    ProgressBar,
    make_optimizer,
    train_autoencoder,
)
from skdeepcluster.training._loop import fit_loop

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


# ----------------------------------------------------------------- helpers
def _state(module=None, *, stage="pretrain", n_epochs=5, lr=0.1, extra=None, history=None):
    module = nn.Linear(3, 2) if module is None else module
    params = [p for p in module.parameters() if p.requires_grad]
    if extra:
        params = [*params, *extra.values()]
    return LoopState(
        stage=stage,
        module=module,
        optimizer=torch.optim.SGD(params, lr=lr),
        params=params,
        n_epochs=n_epochs,
        history={} if history is None else history,
        extra=dict(extra or {}),
    )


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Scripted:
    """Objective with a real gradient step per batch and scripted epoch logs.

    ``logs[e]`` is returned as the logs of epoch ``e`` (a dict, or a float for
    ``{'train_loss': value}``); the module's weights at the end of each epoch
    are kept in ``weights``.
    """

    def __init__(self, module, logs, *, n_batches=2):
        self.module = module
        self.logs = logs
        self.n_batches = n_batches
        self.X = torch.randn(4 * n_batches, module.in_features)
        self.weights = []

    def batches(self):
        for b in range(self.n_batches):
            idx = torch.arange(4 * b, 4 * b + 4)
            yield idx, self.X[idx]

    def before_batch(self, state, idx):
        return True

    def batch_loss(self, idx, xb):
        loss = (self.module(xb) - 1.0).pow(2).mean()
        return loss, {"loss": loss.detach()}

    def end_epoch(self, state, totals, n_seen):
        self.weights.append(_weights(self.module))
        logs = self.logs[state.epoch]
        return dict(logs) if isinstance(logs, dict) else {"train_loss": float(logs)}


def _run(logs, callbacks, *, stage="pretrain", n_epochs=None, lr=0.1, history=None):
    state = _state(
        stage=stage, n_epochs=len(logs) if n_epochs is None else n_epochs, lr=lr, history=history
    )
    objective = _Scripted(state.module, logs)
    history = fit_loop(objective, state, objective.batches, callbacks)
    return state, objective, history


class Recorder(Callback):
    """Records every hook it sees (with the epoch, the stage and the module's mode)."""

    def __init__(self, stage=None):
        self.stage = stage

    def on_train_begin(self, state):
        self.calls_ = [("on_train_begin", None)]
        self.stages_ = [state.stage]
        self.training_ = []
        self.history_lengths_ = []

    def on_epoch_begin(self, state):
        self.calls_.append(("on_epoch_begin", state.epoch))

    def on_grad_computed(self, state):
        self.calls_.append(("on_grad_computed", state.epoch))
        self.training_.append(state.module.training)

    def on_epoch_end(self, state):
        self.calls_.append(("on_epoch_end", state.epoch))
        self.history_lengths_.append(len(state.history.get("train_loss", [])))

    def on_train_end(self, state):
        self.calls_.append(("on_train_end", None))


class StopAfter(Callback):
    """Ends training after ``n_epochs`` epochs of any loop."""

    def __init__(self, n_epochs=1, stage=None):
        self.n_epochs = n_epochs
        self.stage = stage

    def on_epoch_end(self, state):
        if state.epoch + 1 >= self.n_epochs:
            state.stop = True


#: Stages of the loops that :class:`StageLog` saw (a module-level list, so that
#: it survives the estimator cloning its callbacks).
_STAGES_SEEN = []


class StageLog(Callback):
    def on_train_begin(self, state):
        _STAGES_SEEN.append(state.stage)


# ------------------------------------------------------------------ fit_loop
def test_fit_loop_calls_the_hooks_in_order():
    first, second = Recorder(), Recorder()
    state, _, history = _run([3.0, 2.0], [first, second])
    grads = [("on_grad_computed", 0)] * 2
    assert first.calls_ == [
        ("on_train_begin", None),
        ("on_epoch_begin", 0),
        *grads,
        ("on_epoch_end", 0),
        ("on_epoch_begin", 1),
        *[("on_grad_computed", 1)] * 2,
        ("on_epoch_end", 1),
        ("on_train_end", None),
    ]
    assert second.calls_ == first.calls_
    assert first.training_ == [True] * 4  # train mode during the steps ...
    assert not state.module.training  # ... eval mode after
    assert history == {"train_loss": [3.0, 2.0]}
    assert history is state.history


def test_fit_loop_callbacks_run_in_list_order():
    order = []

    class Named(Callback):
        def __init__(self, name=""):
            self.name = name

        def on_epoch_end(self, state):
            order.append(self.name)

    _run([1.0], [Named("a"), Named("b"), Named("c")])
    assert order == ["a", "b", "c"]


def test_fit_loop_on_train_end_runs_after_an_error():
    recorder = Recorder()
    state = _state()
    objective = _Scripted(state.module, [1.0])

    def failing(idx, xb):
        raise RuntimeError("boom")

    objective.batch_loss = failing
    with pytest.raises(RuntimeError, match="boom"):
        fit_loop(objective, state, objective.batches, [recorder])
    assert recorder.calls_[-1] == ("on_train_end", None)
    assert not state.module.training


def test_history_appended_after_on_epoch_end():
    class AddMetric(Callback):
        def on_epoch_end(self, state):
            state.logs["doubled"] = 2 * state.logs["train_loss"]

    recorder = Recorder()
    _, _, history = _run([3.0, 2.0, 1.0], [recorder, AddMetric()])
    # While on_epoch_end runs, the current epoch is not in the history yet.
    assert recorder.history_lengths_ == [0, 1, 2]
    assert history == {"train_loss": [3.0, 2.0, 1.0], "doubled": [6.0, 4.0, 2.0]}


def test_discarded_epoch_is_not_recorded_and_skips_later_callbacks():
    class DiscardSecond(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 1:
                state.logs = None

    recorder = Recorder()
    state, _, history = _run([3.0, 2.0, 1.0], [DiscardSecond(), recorder])
    assert history == {"train_loss": [3.0, 1.0]}
    ends = [epoch for hook, epoch in recorder.calls_ if hook == "on_epoch_end"]
    assert ends == [0, 2]
    assert recorder.calls_[-1] == ("on_train_end", None)
    assert not state.stop


def test_empty_logs_skip_on_epoch_end():
    recorder = Recorder()
    _, _, history = _run([{}, 1.0], [recorder])
    assert [e for hook, e in recorder.calls_ if hook == "on_epoch_end"] == [1]
    assert history == {"train_loss": [1.0]}


def test_stage_attribute_filters_callbacks():
    pretrain, refine, every = Recorder("pretrain"), Recorder("refine"), Recorder(None)
    _run([1.0], [pretrain, refine, every], stage="refine")
    assert not hasattr(pretrain, "calls_")
    assert refine.stages_ == every.stages_ == ["refine"]


def test_user_callback_stops_the_loop():
    recorder = Recorder()
    _, _, history = _run([5.0, 4.0, 3.0, 2.0], [StopAfter(2), recorder])
    assert history["train_loss"] == [5.0, 4.0]
    assert recorder.calls_[-2:] == [("on_epoch_end", 1), ("on_train_end", None)]


def test_zero_epochs():
    recorder = Recorder()
    _, _, history = _run([], [recorder], n_epochs=0)
    assert history == {}
    assert recorder.calls_ == [("on_train_begin", None), ("on_train_end", None)]


# ----------------------------------------------------------------- NaNGuard
def test_nan_guard_restores_snapshot_on_nan_logs():
    state = _state()
    guard = NaNGuard()
    initial = _weights(state.module)
    guard.on_train_begin(state)
    with torch.no_grad():
        state.module.weight.add_(1.0)  # an epoch of training
    state.epoch, state.logs = 0, {"train_loss": float("nan")}
    with pytest.warns(ConvergenceWarning) as record:
        guard.on_epoch_end(state)
    assert _same(_weights(state.module), initial)
    assert state.stop and state.logs is None and guard.tripped_
    message = str(record[0].message)
    assert message.startswith(
        "The training loss became nan at epoch 1; training stopped and the weights of the "
        "last finite epoch were restored. "
    )
    assert message.endswith(guard.hint)


def test_nan_guard_keeps_the_last_finite_epoch_and_extra_tensors():
    centers = torch.zeros(2, 2)
    state = _state(stage="refine", extra={"centers": centers})
    guard = NaNGuard(hint="Try again.")
    guard.on_train_begin(state)
    with torch.no_grad():
        state.module.weight.add_(1.0)
        centers.add_(1.0)
    state.epoch, state.logs = 0, {"refine_loss": 1.0}
    guard.on_epoch_end(state)  # finite: a new snapshot
    assert not state.stop and state.logs == {"refine_loss": 1.0}
    good_weights, good_centers = _weights(state.module), centers.clone()
    with torch.no_grad():
        state.module.weight.fill_(float("inf"))
        centers.fill_(float("nan"))
    state.epoch, state.logs = 1, {"refine_loss": 0.5, "refine_recon_loss": float("inf")}
    with pytest.warns(ConvergenceWarning) as record:
        guard.on_epoch_end(state)
    assert _same(_weights(state.module), good_weights)
    assert torch.equal(centers, good_centers)  # restored in place
    assert state.extra["centers"] is centers
    # The first non-finite metric is named (by its key, when it has no name).
    assert str(record[0].message) == (
        "The refine_recon_loss became inf at refinement epoch 2; training stopped and "
        "the weights and centres of the last finite epoch were restored. Try again."
    )


def test_nan_guard_refinement_loss_message():
    state = _state(stage="refine", extra={"centers": torch.zeros(2, 2)})
    guard = NaNGuard(hint="Hint.")
    guard.on_train_begin(state)
    state.epoch, state.logs = 2, {"refine_loss": float("nan")}
    with pytest.warns(ConvergenceWarning) as record:
        guard.on_epoch_end(state)
    assert str(record[0].message) == (
        "The refinement loss became nan at refinement epoch 3; training stopped and the "
        "weights and centres of the last finite epoch were restored. Hint."
    )


def test_nan_guard_restores_when_params_are_not_finite_at_train_end():
    state = _state()
    guard = NaNGuard()
    initial = _weights(state.module)
    guard.on_train_begin(state)
    with torch.no_grad():
        state.module.bias.fill_(float("nan"))
    state.epoch = 0
    with pytest.warns(ConvergenceWarning, match="The weights became NaN or infinite at epoch 1"):
        guard.on_train_end(state)
    assert _same(_weights(state.module), initial)
    assert state.stop


def test_nan_guard_warns_once():
    state = _state()
    guard = NaNGuard()
    guard.on_train_begin(state)
    with torch.no_grad():
        state.module.bias.fill_(float("nan"))
    state.logs = {"train_loss": float("nan")}
    with pytest.warns(ConvergenceWarning) as record:
        guard.on_epoch_end(state)
        guard.on_train_end(state)
    assert len(record) == 1
    assert all(bool(torch.isfinite(p).all()) for p in state.module.parameters())


def test_nan_guard_is_silent_when_everything_is_finite():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state, objective, history = _run([3.0, 2.0], [NaNGuard()])
    assert history == {"train_loss": [3.0, 2.0]} and not state.stop
    assert _same(_weights(state.module), objective.weights[-1])  # nothing restored


def test_nan_guard_in_fit_loop_stops_and_drops_the_epoch():
    recorder = Recorder()
    with pytest.warns(ConvergenceWarning, match="training loss became inf at epoch 2"):
        state, objective, history = _run([3.0, math.inf, 1.0, 0.5], [NaNGuard(), recorder])
    assert history == {"train_loss": [3.0]}
    # The later callback did not see the discarded epoch.
    assert [e for hook, e in recorder.calls_ if hook == "on_epoch_end"] == [0]
    assert recorder.calls_[-1] == ("on_train_end", None)
    assert _same(_weights(state.module), objective.weights[0])
    assert len(objective.weights) == 2  # stopped right after the non-finite epoch


# ------------------------------------------------------------ EarlyStopping
def test_early_stopping_records_best_epoch_without_patience():
    stopper = EarlyStopping(patience=None)
    state, objective, history = _run([3.0, 2.0, 2.5, 1.0, 1.5], [stopper])
    assert len(history["train_loss"]) == 5 and not state.stop
    assert history["best_epoch"] == 3
    assert _same(_weights(state.module), objective.weights[-1])  # last weights kept


def test_early_stopping_patience_restores_best_weights():
    stopper = EarlyStopping(patience=3, tol=0.0)
    state, objective, history = _run([3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 0.5], [stopper])
    # Epochs 2, 3 and 4 did not improve on epoch 1: stop after epoch 4.
    assert history["train_loss"] == [3.0, 2.0, 2.5, 2.6, 2.7]
    assert history["best_epoch"] == 1 and state.stop
    assert _same(_weights(state.module), objective.weights[1])
    assert not _same(objective.weights[1], objective.weights[-1])


def test_early_stopping_tol():
    losses = [1.0, 0.99, 0.98, 0.97, 0.96, 0.95]
    state, _, history = _run(losses, [EarlyStopping(patience=2, tol=0.05)])
    # 0.99 and 0.98 improve on 1.0 by less than tol: stop after epoch 2 ...
    assert len(history["train_loss"]) == 3
    # ... but the best epoch is still the lowest loss.
    assert history["best_epoch"] == 2
    _, _, history = _run(losses, [EarlyStopping(patience=2, tol=0.0)])
    assert len(history["train_loss"]) == 6 and history["best_epoch"] == 5


def test_early_stopping_tol_resets_the_counter():
    # 2.0 improves on 3.0 by more than tol; the count then restarts.
    losses = [3.0, 2.95, 2.0, 1.99, 1.98, 0.0]
    _, _, history = _run(losses, [EarlyStopping(patience=2, tol=0.5)])
    assert history["train_loss"] == [3.0, 2.95, 2.0, 1.99, 1.98]


@pytest.mark.parametrize("monitor, best", [("auto", 2), ("val_loss", 2), ("train_loss", 1)])
def test_early_stopping_monitor(monitor, best):
    logs = [
        {"train_loss": 3.0, "val_loss": 3.0},
        {"train_loss": 1.0, "val_loss": 2.5},
        {"train_loss": 2.0, "val_loss": 0.5},
    ]
    _, _, history = _run(logs, [EarlyStopping(patience=None, monitor=monitor)])
    assert history["best_epoch"] == best


def test_early_stopping_monitor_auto_without_validation():
    _, _, history = _run(
        [{"refine_loss": 3.0, "n_changed": 0.0}, {"refine_loss": 1.0, "n_changed": 0.5}],
        [EarlyStopping(patience=None, monitor="auto", stage=None)],
        stage="refine",
    )
    assert history["best_epoch"] == 1  # the first metric, not n_changed


def test_early_stopping_stage_filtering():
    losses = [1.0, 2.0, 3.0, 4.0]
    # The default stage is pre-training: no effect in a refinement loop.
    state, _, history = _run(losses, [EarlyStopping(patience=1)], stage="refine")
    assert "best_epoch" not in history and len(history["train_loss"]) == 4
    state, objective, history = _run(
        losses, [EarlyStopping(patience=1, stage="refine")], stage="refine"
    )
    assert history["best_epoch"] == 0 and len(history["train_loss"]) == 2 and state.stop
    assert _same(_weights(state.module), objective.weights[0])
    _, _, history = _run(losses, [EarlyStopping(patience=1, stage=None)], stage="refine")
    assert len(history["train_loss"]) == 2


def test_early_stopping_restores_extra_tensors():
    centers = torch.zeros(2, 2)
    state = _state(stage="refine", extra={"centers": centers})
    stopper = EarlyStopping(patience=1, stage="refine")
    stopper.on_train_begin(state)
    state.epoch, state.logs = 0, {"refine_loss": 1.0}
    stopper.on_epoch_end(state)
    with torch.no_grad():
        centers.add_(5.0)
    state.epoch, state.logs = 1, {"refine_loss": 2.0}
    stopper.on_epoch_end(state)
    assert state.stop
    stopper.on_train_end(state)
    assert torch.equal(centers, torch.zeros(2, 2))


# -------------------------------------------------------------- LRScheduler
class _RecordLR(Callback):
    """The learning rate after each epoch's callbacks before it (schedulers) have run."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, state):
        self.seen.append(state.optimizer.param_groups[0]["lr"])


def test_cosine_schedule_reaches_zero_at_the_end_and_restores_the_rate():
    record = _RecordLR()
    state, _, _ = _run([1.0] * 4, [LRScheduler("cosine"), record], lr=0.1)
    assert record.seen[-1] == pytest.approx(0.0, abs=1e-12)
    # The schedule spans one loop: the optimizer leaves it at its own rate.
    assert state.optimizer.param_groups[0]["lr"] == 0.1


def test_cosine_schedule_midway():
    seen = []

    class LR(Callback):
        def on_epoch_begin(self, state):
            seen.append(state.optimizer.param_groups[0]["lr"])

    _run([1.0] * 4, [LRScheduler("cosine"), LR()], lr=0.1)
    expected = [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(seen, expected, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("patience", [1, 3])
def test_plateau_schedule_divides_by_ten_after_patience(patience):
    lrs = []

    class LR(Callback):
        def on_epoch_end(self, state):
            lrs.append(state.optimizer.param_groups[0]["lr"])

    _run([1.0] * (patience + 3), [LRScheduler("plateau", patience=patience), LR()], lr=0.1)
    # Epoch 0 sets the best loss; ``patience`` further epochs without improvement
    # are tolerated, and the next one divides the learning rate by 10.
    expected = [0.1] * (patience + 1) + [0.01, 0.01]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_plateau_schedule_monitors_validation_loss():
    logs = [{"train_loss": 1.0 - 0.1 * e, "val_loss": 1.0} for e in range(4)]
    # The validation loss stalls: one reduction after epoch 2 (then the count restarts).
    record = _RecordLR()
    _run(logs, [LRScheduler("plateau", patience=1), record], lr=0.1)
    assert record.seen[-1] == pytest.approx(0.01)
    record = _RecordLR()
    _run(logs, [LRScheduler("plateau", patience=1, monitor="train_loss"), record], lr=0.1)
    assert record.seen[-1] == pytest.approx(0.1)


def test_lr_scheduler_stage_and_policy():
    record = _RecordLR()
    _run([1.0] * 3, [LRScheduler("cosine"), record], stage="refine", lr=0.1)
    assert record.seen == [0.1] * 3  # pre-training only by default
    with pytest.raises(ValueError, match="policy"):
        LRScheduler("step").on_train_begin(_state())


# ---------------------------------------------------- GradientNormClipping
def test_gradient_norm_clipping_unit():
    state = _state()
    x = 100.0 * torch.randn(16, 3)
    state.module(x).pow(2).sum().backward()
    before = torch.cat([p.grad.flatten() for p in state.params])
    assert before.norm() > 1.0
    GradientNormClipping(max_norm=0.5).on_grad_computed(state)
    after = torch.cat([p.grad.flatten() for p in state.params])
    assert after.norm() <= 0.5 + 1e-6
    # Rescaled, not truncated: the direction is kept.
    torch.testing.assert_close(after / after.norm(), before / before.norm())


def test_gradient_norm_clipping_leaves_small_gradients():
    state = _state()
    state.module(torch.randn(4, 3)).sum().backward()
    before = [p.grad.clone() for p in state.params]
    GradientNormClipping(max_norm=1e6).on_grad_computed(state)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, state.params, strict=True))


def test_gradient_norm_clipping_in_the_loop_and_extra_params():
    norms = []

    class Norm(Callback):
        def on_grad_computed(self, state):
            grads = [p.grad.flatten() for p in state.params if p.grad is not None]
            norms.append(float(torch.cat(grads).norm()))

    # stage=None by default: also in refinement.
    _run([1.0] * 3, [GradientNormClipping(1e-3), Norm()], stage="refine", lr=10.0)
    assert len(norms) == 6 and max(norms) <= 1e-3 * (1 + 1e-5)


def test_gradient_norm_clipping_in_train_autoencoder():
    ae = MLPAutoencoder(8, (8,), 2)
    norms = []

    class Norm(Callback):
        def on_grad_computed(self, state):
            norms.append(float(torch.cat([p.grad.flatten() for p in state.params]).norm()))

    X = 50.0 * torch.randn(64, 8)
    train_autoencoder(
        ae,
        X,
        epochs=2,
        batch_size=32,
        optimizer=make_optimizer("sgd", ae.parameters(), learning_rate=1e-4),
        callbacks=[GradientNormClipping(0.1), Norm()],
    )
    assert len(norms) == 4 and max(norms) <= 0.1 * (1 + 1e-5)


# --------------------------------------------------------------- ProgressBar
def test_progress_bar_writes_to_stderr(capsys):
    _run([3.0, 2.0, 1.0], [ProgressBar("my-bar")])
    captured = capsys.readouterr()
    assert "my-bar" in captured.err and "3/3" in captured.err
    assert "train_loss" in captured.err and "1" in captured.err
    assert captured.out == ""


def test_progress_bar_defaults_to_the_stage(capsys):
    _run([{"refine_loss": 0.25}], [ProgressBar()], stage="refine")
    err = capsys.readouterr().err
    assert "refine" in err and "refine_loss=0.25" in err and "1/1" in err


def test_progress_bar_closes_when_stopped_early(capsys):
    bar = ProgressBar()
    _run([1.0] * 5, [bar, StopAfter(2)])
    assert bar.bar_.n == 2
    err = capsys.readouterr().err
    assert "2/5" in err and "3/5" not in err


# ------------------------------------------------ train_autoencoder, refine
def test_user_callback_stops_train_autoencoder():
    ae = MLPAutoencoder(8, (8,), 2)
    recorder = Recorder()
    history = train_autoencoder(
        ae,
        torch.randn(64, 8),
        epochs=20,
        batch_size=32,
        optimizer=make_optimizer("adam", ae.parameters(), learning_rate=1e-3),
        callbacks=[StopAfter(2), recorder],
    )
    assert len(history["train_loss"]) == 2
    assert recorder.stages_ == ["pretrain"]
    assert recorder.calls_[-1] == ("on_train_end", None)
    assert not ae.training


def test_callbacks_reach_refinement():
    X = torch.randn(60, 8)
    ae = MLPAutoencoder(8, (8,), 2)
    recorder = Recorder()
    _, history = KMeansLoss(epochs=10, tol=0.0).refine(
        ae,
        X,
        X[:3, :2].clone(),
        embed=None,
        batch_size=32,
        optimizer_factory=lambda groups: torch.optim.SGD(groups, lr=1e-3),
        callbacks=[StopAfter(1), recorder, StopAfter(1, stage="pretrain")],
    )
    assert len(history["refine_loss"]) == 1
    assert recorder.stages_ == ["refine"]
    ae = MLPAutoencoder(8, (8,), 2)
    _, history = KMeansLoss(epochs=3, tol=0.0).refine(
        ae,
        X,
        X[:3, :2].clone(),
        embed=None,
        batch_size=32,
        optimizer_factory=lambda groups: torch.optim.SGD(groups, lr=1e-3),
        callbacks=[StopAfter(1, stage="pretrain")],
    )
    assert len(history["refine_loss"]) == 3  # a pre-training callback does nothing here


# -------------------------------------------------------------- sklearn API
@pytest.mark.parametrize(
    "callback",
    [
        NaNGuard(hint="custom"),
        EarlyStopping(patience=3, tol=0.1, monitor="val_loss", stage=None),
        LRScheduler("plateau", patience=2, monitor="train_loss", stage="refine"),
        GradientNormClipping(max_norm=0.5, stage="pretrain"),
        ProgressBar(desc="bar"),
        StopAfter(4, stage="refine"),
    ],
)
def test_callbacks_are_clonable(callback):
    params = callback.get_params()
    assert params  # every constructor argument is a parameter
    copy = clone(callback)
    assert type(copy) is type(callback) and copy is not callback
    assert copy.get_params() == params
    # A fitted callback clones without its state.
    callback.on_train_begin(_state())
    assert not [k for k in vars(clone(callback)) if k.endswith("_")]
    assert repr(copy).startswith(type(callback).__name__ + "(")


def test_callback_set_params():
    stopper = EarlyStopping().set_params(patience=7, stage="refine")
    assert stopper.patience == 7 and stopper.stage == "refine"
    assert GradientNormClipping().get_params() == {"max_norm": 1.0, "stage": None}
    assert Callback().get_params() == {} and Callback.stage is None


# ----------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def blobs_small():
    X, y = make_blobs(n_samples=120, centers=3, n_features=6, random_state=0)
    return X, y


def test_estimator_user_callback_stops_training(blobs_small):
    from skdeepcluster import AutoencoderKMeans

    X, _ = blobs_small
    model = AutoencoderKMeans(
        n_clusters=3,
        architecture=MLP((16,)),
        latent_dim=2,
        epochs=50,
        reducer=None,
        refine=None,
        callbacks=[StopAfter(2)],
        random_state=0,
    ).fit(X)
    assert model.n_iter_ == 2
    assert len(model.history_["train_loss"]) == 2
    assert model.labels_.shape == (120,)


def test_estimator_callbacks_in_every_loop(blobs_small):
    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.refine import KMeansLoss

    X, _ = blobs_small
    _STAGES_SEEN.clear()
    callbacks = [StageLog(), StopAfter(1, stage="pretrain")]
    model = AutoencoderKMeans(
        n_clusters=3,
        architecture=MLP((16,)),
        latent_dim=2,
        epochs=20,
        reducer=None,
        refine=KMeansLoss(epochs=2, tol=0.0, warmup_epochs=0),
        callbacks=callbacks,
        random_state=0,
    ).fit(X)
    assert _STAGES_SEEN == ["pretrain", "refine"]
    assert model.n_iter_ == 1  # the pre-training-only stop
    assert len(model.history_["refine_loss"]) == 2  # did not act in refinement
    assert model.get_params()["callbacks"] is callbacks


def test_grid_search_over_a_refinement_strategy_parameter(blobs_small):
    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.refine import IDEC

    X, y = blobs_small
    model = AutoencoderKMeans(
        n_clusters=3,
        architecture=MLP((16,)),
        latent_dim=2,
        epochs=3,
        reducer=None,
        refine=IDEC(epochs=2),
        random_state=0,
    )
    assert model.get_params()["refine__gamma"] == 1.0
    search = GridSearchCV(
        model, {"refine__gamma": [0.1, 1.0]}, cv=2, scoring=cluster_accuracy_scorer
    ).fit(X, y)
    assert set(search.best_params_) == {"refine__gamma"}
    assert search.best_params_["refine__gamma"] in (0.1, 1.0)
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.refine.gamma == search.best_params_["refine__gamma"]
    assert search.best_estimator_.history_["refine_loss"]  # refinement ran
    assert model.refine.gamma == 1.0  # the original is left alone
