"""Tests of the autoencoder training loop and of batched inference."""

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from skdeepcluster._networks import ConvAutoencoder, MLPAutoencoder
from skdeepcluster._precision import round_rows
from skdeepcluster.training import (
    LOSSES,
    Callback,
    RandomAffine,
    decode_array,
    encode_array,
    make_optimizer,
    reconstruct_array,
    train_autoencoder,
)
from skdeepcluster.training._inference import to_tensor
from skdeepcluster.training._pretrain import _mean_loss

from ._trained import check_trained

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8))
    X = centers[rng.integers(3, size=120)] + 0.1 * rng.normal(size=(120, 8))
    return X.astype(np.float32)


def _train(module, X, *, lr=1e-2, seed=0, optimizer="adam", **kwargs):
    opt = make_optimizer(optimizer, module.parameters(), learning_rate=lr)
    kwargs.setdefault("epochs", 10)
    kwargs.setdefault("batch_size", 32)
    return train_autoencoder(
        module,
        X if isinstance(X, torch.Tensor) else to_tensor(X, CPU),
        optimizer=opt,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------ basics


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_training_loss_decreases(data, loss, train_seed):
    torch.manual_seed(train_seed)  # inside the autouse fixture's forked generator
    ae = MLPAutoencoder(8, (16,), 2)
    history = _train(ae, data, epochs=15, loss=loss, seed=train_seed)
    assert len(history["train_loss"]) == 15
    assert history["val_loss"] == []
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.0113, max 0.356, mean 0.0694 ± 0.08
    check_trained(history["train_loss"][-1] / history["train_loss"][0], "<", 0.5)
    assert history["best_epoch"] == int(np.argmin(history["train_loss"]))
    assert not ae.training


def test_conv_training_loss_decreases(data):
    ae = ConvAutoencoder((2, 2, 2), 2, channels=(8, 8))
    history = _train(ae, data, epochs=10)
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_zero_epochs(data):
    ae = MLPAutoencoder(8, (4,), 2)
    before = copy.deepcopy(ae)
    history = _train(ae, data, epochs=0)
    assert history == {"train_loss": [], "val_loss": [], "best_epoch": None}
    assert _states_equal(ae, before)


def test_same_seed_gives_identical_weights(data):
    init = MLPAutoencoder(8, (16,), 2, dropout=0.2)
    runs = []
    for seed in (0, 0, 1):
        ae = copy.deepcopy(init)
        with torch.random.fork_rng():
            torch.manual_seed(3)  # dropout draws from the global generator
            _train(ae, data, epochs=3, seed=seed, noise=0.1)
        runs.append(ae)
    assert _states_equal(runs[0], runs[1])
    assert not _states_equal(runs[0], runs[2])


def test_batch_norm_handles_singleton_last_batch(data):
    ae = MLPAutoencoder(8, (4,), 2, batch_norm=True)
    history = _train(ae, data[:33], epochs=2, batch_size=32)
    assert len(history["train_loss"]) == 2
    with pytest.raises(ValueError, match="at least 2 samples"):
        _train(MLPAutoencoder(8, (4,), 2, batch_norm=True), data[:1], epochs=1)


def test_verbose_progress_bar(data, capsys):
    _train(MLPAutoencoder(8, (4,), 2), data, epochs=2, verbose=1, X_val=to_tensor(data[:10], CPU))
    err = capsys.readouterr().err
    assert "val_loss" in err and "loss" in err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(noise=-0.1), "noise"),
        (dict(noise=1.0, noise_type="mask"), "noise"),
        (dict(noise=0.1, noise_type="salt"), "noise_type"),
        (dict(n_iter_no_change=0), "n_iter_no_change"),
        (dict(tol=-1.0), "tol"),
        (dict(clip_grad_norm=0.0), "clip_grad_norm"),
        (dict(lr_schedule="step"), "lr_schedule"),
        (dict(loss="bce"), "loss"),
        (dict(epochs=-1), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(X_val=torch.zeros(3, 7)), "X_val"),
    ],
)
def test_invalid_parameters(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _train(MLPAutoencoder(8, (4,), 2), data, **kwargs)


# ------------------------------------------------------------------- noise


class _Recorder(nn.Module):
    """Identity-like autoencoder that records its training inputs."""

    def __init__(self, n_features):
        super().__init__()
        self.lin = nn.Linear(n_features, n_features)
        self.inputs = []

    def encode(self, x):
        if self.training:
            self.inputs.append(x.detach().clone())
        return self.lin(x)

    def decode(self, z):
        return z

    def forward(self, x):
        return self.decode(self.encode(x))


@pytest.fixture
def recording_loss(monkeypatch):
    targets = []

    def loss(x_hat, target):
        targets.append(target.detach().clone())
        return nn.functional.mse_loss(x_hat, target)

    monkeypatch.setitem(LOSSES, "recording", loss)
    return targets


def _is_subset_of_rows(rows, X):
    return bool((rows[:, None, :] == X[None, :, :]).all(dim=-1).any(dim=1).all())


@pytest.mark.parametrize("noise_type", ["gaussian", "mask"])
def test_noise_corrupts_input_not_target(data, recording_loss, noise_type):
    X = to_tensor(data, CPU)
    ae = _Recorder(8)
    _train(ae, X, epochs=2, batch_size=40, loss="recording", noise=0.3, noise_type=noise_type)
    assert len(ae.inputs) == len(recording_loss) == 6
    for x_in, target in zip(ae.inputs, recording_loss, strict=True):
        assert _is_subset_of_rows(target, X)  # clean training rows
        assert not torch.equal(x_in, target)
        if noise_type == "mask":
            zeroed = x_in == 0
            assert torch.equal(x_in[~zeroed], target[~zeroed])
            assert 0.15 < zeroed.float().mean() < 0.45
        else:
            assert 0.2 < (x_in - target).std() < 0.4
    assert not torch.equal(ae.inputs[0], ae.inputs[3])  # fresh noise each epoch


def test_no_noise_by_default(data, recording_loss):
    ae = _Recorder(8)
    _train(ae, data, epochs=1, batch_size=120, loss="recording")
    assert torch.equal(ae.inputs[0], recording_loss[0])


@pytest.mark.parametrize("noise_type", ["gaussian", "mask"])
def test_noise_only_at_training(data, noise_type):
    ae = MLPAutoencoder(8, (16,), 2, dropout=0.3)
    _train(ae, data, epochs=3, noise=0.5, noise_type=noise_type)
    assert not ae.training
    codes = encode_array(ae, data, device=CPU)
    np.testing.assert_array_equal(codes, encode_array(ae, data, device=CPU))
    with torch.no_grad():
        direct = ae.encode(torch.from_numpy(data)).numpy()
    np.testing.assert_allclose(codes, direct, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------- early stopping


class _Scale(nn.Module):
    """``x -> w * x``: trained with a large Adam step, its loss overshoots."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return self.w * x

    def decode(self, z):
        return z

    def forward(self, x):
        return self.decode(self.encode(x))


def test_early_stopping_restores_best_weights(data):
    X = to_tensor(data, CPU)
    X_val = to_tensor(data[:40], CPU)
    ae = _Scale()
    history = _train(
        ae, X, lr=0.3, epochs=50, batch_size=120, X_val=X_val, n_iter_no_change=3, tol=0.0
    )
    val = history["val_loss"]
    assert len(val) == len(history["train_loss"]) < 50
    best = history["best_epoch"]
    assert best == int(np.argmin(val)) and best < len(val) - 1  # weights were rolled back
    assert len(val) - 1 - best == 3
    restored = float(_mean_loss(ae, X_val, LOSSES["mse"], 4096))
    assert restored == pytest.approx(min(val), rel=1e-6)
    assert restored < val[-1]


def test_early_stopping_on_training_loss_with_tol(data):
    ae = MLPAutoencoder(8, (16,), 2)
    history = _train(ae, data, epochs=30, n_iter_no_change=2, tol=1e6)
    # Nothing improves by 1e6: stop after the first epoch plus two without change.
    assert len(history["train_loss"]) == 3
    assert history["val_loss"] == []
    assert history["best_epoch"] == int(np.argmin(history["train_loss"]))


def test_without_early_stopping_last_weights_are_kept(data):
    X = to_tensor(data, CPU)
    ae = _Scale()
    history = _train(ae, X, lr=0.3, epochs=8, batch_size=120, X_val=X)
    assert len(history["val_loss"]) == 8
    final = float(_mean_loss(ae, X, LOSSES["mse"], 4096))
    assert final == pytest.approx(history["val_loss"][-1], rel=1e-6)


# ------------------------------------------------------------- divergence


def test_nan_loss_warns_and_keeps_finite_weights(data):
    ae = MLPAutoencoder(8, (16,), 2)
    with pytest.warns(ConvergenceWarning, match="loss became"):
        history = _train(ae, data, lr=1e10, optimizer="sgd", epochs=20)
    assert len(history["train_loss"]) < 20
    assert all(math.isfinite(v) for v in history["train_loss"])
    assert all(torch.isfinite(p).all() for p in ae.parameters())
    assert np.isfinite(encode_array(ae, data, device=CPU)).all()
    assert not ae.training


def test_inf_in_data_warns_and_restores_initial_weights(data):
    X = data.copy()
    X[3, 2] = np.inf
    ae = MLPAutoencoder(8, (4,), 2)
    init = copy.deepcopy(ae)
    with pytest.warns(ConvergenceWarning):
        history = _train(ae, X, epochs=3, n_iter_no_change=2)
    assert history == {"train_loss": [], "val_loss": [], "best_epoch": None}
    assert _states_equal(ae, init)


def test_nan_validation_loss_warns(data):
    X_val = data[:10].copy()
    X_val[0, 0] = np.nan
    ae = MLPAutoencoder(8, (4,), 2)
    with pytest.warns(ConvergenceWarning, match="validation loss"):
        _train(ae, data, epochs=3, X_val=to_tensor(X_val, CPU))
    assert all(torch.isfinite(p).all() for p in ae.parameters())


# ------------------------------------------------- clipping and schedules


def test_clip_grad_norm_limits_steps(data):
    ae = MLPAutoencoder(8, (16,), 2)
    init = copy.deepcopy(ae)
    _train(ae, data, lr=1.0, optimizer="sgd", epochs=2, clip_grad_norm=1e-6)
    # SGD with momentum 0.9: each step moves by at most 10 * lr * 1e-6.
    delta = torch.cat(
        [(p - q).flatten() for p, q in zip(ae.parameters(), init.parameters(), strict=True)]
    )
    assert 0 < delta.norm() < 8 * 10 * 1e-6


class _RecordLR(Callback):
    """Records the learning rate at the start of each epoch."""

    def __init__(self):
        self.lrs = []

    def on_epoch_begin(self, state):
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


def test_cosine_schedule_anneals_to_zero_and_restores_the_rate(data):
    ae = MLPAutoencoder(8, (4,), 2)
    opt = make_optimizer("adam", ae.parameters(), learning_rate=1e-2)
    record = _RecordLR()
    train_autoencoder(
        ae, to_tensor(data, CPU), epochs=4, batch_size=64, optimizer=opt, lr_schedule="cosine",
        callbacks=[record],
    )  # fmt: skip
    expected = [1e-2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert record.lrs == pytest.approx(expected)
    # The schedule spans one loop: the configured rate is back afterwards.
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2)


def test_plateau_schedule_reduces_lr(data):
    ae = MLPAutoencoder(8, (4,), 2)
    # So small a rate that the loss stalls from the start (but above the eps of 1e-8
    # below which ReduceLROnPlateau ignores a reduction).
    opt = make_optimizer("sgd", ae.parameters(), learning_rate=1e-6)
    record = _RecordLR()
    train_autoencoder(
        ae,
        to_tensor(data, CPU),
        epochs=8,
        batch_size=120,
        optimizer=opt,
        lr_schedule="plateau",
        n_iter_no_change=None,
        callbacks=[record],
    )
    # Patience 5: the first epoch sets the best loss, six more stalled ones reduce it.
    assert record.lrs == pytest.approx([1e-6] * 7 + [1e-7])
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)


# --------------------------------------------------------------- inference


def test_reconstruct_encode_decode_arrays(data):
    ae = ConvAutoencoder((1, 2, 4), 3, channels=(4,))
    _train(ae, data, epochs=1)
    rec = reconstruct_array(ae, data, device=CPU, batch_size=50)
    assert rec.shape == data.shape and rec.dtype == np.float64
    codes = encode_array(ae, data, device=CPU, batch_size=7)
    # The codes are rounded to float32 (so that a row's code does not depend on
    # its batch); decoding them is exact float64 inference of those codes ...
    assert codes.dtype == np.float64
    np.testing.assert_array_equal(codes, codes.astype(np.float32))
    decoded = decode_array(ae, codes, device=CPU)
    with torch.no_grad():
        direct_decoded = copy.deepcopy(ae).double().decode(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(decoded, direct_decoded, rtol=1e-10, atol=1e-12)
    # ... and differs from the float64 reconstruction by that rounding only.
    np.testing.assert_allclose(decoded, rec, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(codes[3:4], encode_array(ae, data[3:4], device=CPU))
    with torch.no_grad():
        direct = ae(torch.from_numpy(data)).numpy()
    np.testing.assert_allclose(rec, direct, rtol=1e-4, atol=1e-5)
    # Batch-size invariance of the float64 inference.
    np.testing.assert_allclose(rec[:1], reconstruct_array(ae, data[:1], device=CPU), atol=1e-12)


def test_random_affine_shifts_and_rotates_images():
    def gen():
        return torch.Generator().manual_seed(0)

    images = torch.zeros(64, 1, 9, 9)
    images[:, :, 4, 4] = 1.0  # one bright pixel in the centre
    flat = images.reshape(64, -1)
    out = RandomAffine((1, 9, 9), shift=0.25, rotation=0.0, generator=gen())(flat)
    assert out.shape == flat.shape
    assert not torch.equal(out, flat)
    # The mass moves by at most 0.25 * 9 pixels in each direction.
    mass = out.reshape(64, 9, 9)
    rows = (mass.sum(2) * torch.arange(9.0)).sum(1) / mass.sum((1, 2))
    assert rows.min() >= 4 - 2.25 - 1e-4 and rows.max() <= 4 + 2.25 + 1e-4
    assert rows.std() > 0.5  # each image gets its own shift
    # Same generator seed, same transforms; zero strength, the identity.
    again = RandomAffine((1, 9, 9), shift=0.25, rotation=0.0, generator=gen())(flat)
    torch.testing.assert_close(out, again)
    same = RandomAffine((1, 9, 9), shift=0.0, rotation=0.0, generator=gen())(flat)
    torch.testing.assert_close(same, flat)
    # A rotation about the centre leaves the centre pixel in place and moves the others.
    off = torch.zeros(64, 1, 9, 9)
    off[:, :, 4, 4] = off[:, :, 4, 8] = 1.0
    turned = RandomAffine((1, 9, 9), shift=0.0, rotation=60.0, generator=gen())(off.reshape(64, -1))
    turned = turned.reshape(64, 9, 9)
    torch.testing.assert_close(turned[:, 4, 4], torch.ones(64))
    assert (turned[:, 4, 8] < 0.9).float().mean() > 0.5


def test_augment_is_applied_to_input_and_target(data, recording_loss):
    """The loop reconstructs the augmented batch: both sides of the loss see it."""
    seen = []

    def augment(xb):
        out = xb + 1.0
        seen.append(out)
        return out

    ae = _Recorder(8)
    _train(ae, data, epochs=1, batch_size=40, loss="recording", augment=augment)
    assert len(seen) == len(recording_loss) == len(ae.inputs) == 3
    for batch, x_in, target in zip(seen, ae.inputs, recording_loss, strict=True):
        torch.testing.assert_close(target, batch)
        torch.testing.assert_close(x_in, batch)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_make_optimizer_uses_fused_kernels_where_supported(name):
    module = MLPAutoencoder(8, (16,), 2)
    opt = make_optimizer(name, module.parameters(), learning_rate=1e-3)
    assert opt.defaults["fused"] is True
    # Parameter groups are accepted too; a half-precision tensor turns fusing off.
    groups = [{"params": list(module.parameters())}, {"params": [torch.zeros(3).half()]}]
    opt = make_optimizer(name, groups, learning_rate=1e-3)
    assert not opt.defaults.get("fused")
    # The fused step is the same update rule as the plain one.
    a, b = MLPAutoencoder(8, (16,), 2), None
    b = copy.deepcopy(a)
    x = torch.randn(32, 8)
    fused = make_optimizer(name, a.parameters(), learning_rate=1e-2)
    plain_cls = type(fused)
    kwargs = {"lr": 1e-2, "weight_decay": 0.0, **({"momentum": 0.9} if name == "sgd" else {})}
    plain = plain_cls(b.parameters(), **kwargs)
    for module, opt in ((a, fused), (b, plain)):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.mse_loss(module(x), x).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "elu", "leaky_relu", "tanh"])
def test_inference_activations_in_place_give_the_same_bits(activation):
    """The inference copy's in-place activations change no bit, and not the trained module."""
    from skdeepcluster.training._inference import _activations_in_place

    torch.manual_seed(0)
    ae = MLPAutoencoder(12, (32, 16), 3, activation=activation)
    X = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32)
    codes = encode_array(ae, X, device=CPU)
    plain = copy.deepcopy(ae).double().eval()
    with torch.inference_mode():
        expected = plain.encode(torch.from_numpy(X.astype(np.float64))).numpy()
    np.testing.assert_array_equal(codes, round_rows(expected))
    assert not any(getattr(m, "inplace", False) for m in ae.modules())  # the user's module
    in_place = [m.inplace for m in _activations_in_place(plain).modules() if hasattr(m, "inplace")]
    assert all(in_place) and (activation == "tanh") == (not in_place)
