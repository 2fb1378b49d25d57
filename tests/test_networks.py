"""Tests of the torch autoencoders and of the module contract checks."""

import copy

import pytest
import torch
from torch import nn

from skdeepcluster._networks import (
    ConvAutoencoder,
    MLPAutoencoder,
    build_module,
    check_autoencoder,
    resolve_image_shape,
)


@pytest.fixture(autouse=True)
def _seed():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


# --------------------------------------------------------------------- MLP


@pytest.mark.parametrize("hidden", [(), (8,), (16, 8, 4)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_shapes(hidden, batch_norm):
    ae = MLPAutoencoder(12, hidden, 3, dropout=0.1, batch_norm=batch_norm)
    x = torch.randn(5, 12)
    assert ae.encode(x).shape == (5, 3)
    assert ae.decode(ae.encode(x)).shape == (5, 12)
    assert ae(x).shape == (5, 12)
    assert check_autoencoder(ae, 12) == 3


def test_mlp_backward_compatible_positional_signature():
    ae = MLPAutoencoder(6, (4,), 2, "tanh")
    assert [type(m) for m in ae.encoder] == [nn.Linear, nn.Tanh, nn.Linear]
    assert [type(m) for m in ae.decoder] == [nn.Linear, nn.Tanh, nn.Linear]


def test_mlp_dropout_and_batch_norm_only_between_hidden_layers():
    ae = MLPAutoencoder(6, (5, 4), 2, dropout=0.5, batch_norm=True)
    # The bottleneck and the output are plain linear layers.
    assert isinstance(ae.encoder[-1], nn.Linear)
    assert isinstance(ae.decoder[-1], nn.Linear)
    for seq in (ae.encoder, ae.decoder):
        assert sum(isinstance(m, nn.Dropout) for m in seq) == 2
        assert sum(isinstance(m, nn.BatchNorm1d) for m in seq) == 2


@pytest.mark.parametrize(
    "kind, make",
    [
        ("mlp", lambda act: MLPAutoencoder(6, (8,), 2, output_activation=act)),
        ("conv", lambda act: ConvAutoencoder((1, 2, 3), 2, channels=(4,), output_activation=act)),
    ],
)
def test_output_activation_ranges(kind, make):
    x = 100 * torch.randn(50, 6)
    for act, (lo, hi) in {"sigmoid": (0, 1), "tanh": (-1, 1)}.items():
        out = make(act).eval()(x)
        assert out.min() >= lo and out.max() <= hi
    # Without an output activation, the output is not bounded.
    ae = make(None)
    with torch.no_grad():
        for p in ae.parameters():
            p.fill_(1.0)
    assert ae(x.abs()).max() > 1


@pytest.mark.parametrize("cls_kwargs", [dict(), dict(image_shape=(1, 2, 3))])
def test_dropout_is_off_in_eval_mode(cls_kwargs):
    if cls_kwargs:
        ae = ConvAutoencoder(latent_dim=2, channels=(4,), dropout=0.5, **cls_kwargs)
    else:
        ae = MLPAutoencoder(6, (32,), 2, dropout=0.5)
    x = torch.randn(4, 6)
    ae.eval()
    assert torch.equal(ae(x), ae(x))
    ae.train()
    assert not torch.equal(ae(x), ae(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_features=0, hidden_layer_sizes=(), latent_dim=2), "n_features"),
        (dict(n_features=4, hidden_layer_sizes=(0,), latent_dim=2), "hidden_layer_sizes"),
        (dict(n_features=4, hidden_layer_sizes=(), latent_dim=2.5), "latent_dim"),
        (dict(n_features=4, hidden_layer_sizes=(), latent_dim=2, dropout=1.0), "dropout"),
        (dict(n_features=4, hidden_layer_sizes=(), latent_dim=2, activation="x"), "activation"),
        (
            dict(n_features=4, hidden_layer_sizes=(), latent_dim=2, output_activation="relu"),
            "output_activation",
        ),
    ],
)
def test_mlp_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPAutoencoder(**kwargs)


# -------------------------------------------------------------------- conv


@pytest.mark.parametrize(
    "image_shape",
    [(1, 28, 28), (3, 32, 32), (1, 8, 8), (1, 1, 1), (1, 1, 5), (2, 3, 1), (1, 7, 13)],
)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_conv_shapes(image_shape, batch_norm):
    c, h, w = image_shape
    n_features = c * h * w
    channels = (32, 64, 128) if image_shape == (1, 28, 28) else (4, 8, 8)
    ae = ConvAutoencoder(image_shape, 5, channels=channels, batch_norm=batch_norm, dropout=0.1)
    x = torch.randn(3, n_features)
    assert ae.encode(x).shape == (3, 5)
    assert ae(x).shape == (3, n_features)
    assert check_autoencoder(ae, n_features) == 5
    assert ae.spatial_sizes[0] == (h, w)


def test_conv_default_architecture_on_mnist_size():
    ae = ConvAutoencoder((28, 28), 10)
    assert ae.image_shape == (1, 28, 28)
    assert ae.spatial_sizes == [(28, 28), (14, 14), (7, 7), (4, 4)]
    assert ae(torch.zeros(2, 784)).shape == (2, 784)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_conv_kernel_sizes(kernel_size):
    ae = ConvAutoencoder((1, 9, 6), 2, channels=(4, 4), kernel_size=kernel_size)
    assert ae(torch.zeros(2, 54)).shape == (2, 54)


def test_conv_infers_minus_one_from_n_features():
    ae = ConvAutoencoder((1, 1, -1), 2, n_features=7, channels=(4,))
    assert ae.image_shape == (1, 1, 7)
    with pytest.raises(ValueError, match="-1"):
        ConvAutoencoder((1, 1, -1), 2)


def test_conv_invalid_parameters():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvAutoencoder((1, 4, 4), 2, kernel_size=4)
    with pytest.raises(ValueError, match="channels"):
        ConvAutoencoder((1, 4, 4), 2, channels=())
    with pytest.raises(ValueError, match="n_features=15"):
        ConvAutoencoder((1, 4, 4), 2, n_features=15)


# ----------------------------------------------------- resolve_image_shape


@pytest.mark.parametrize(
    "image_shape, n_features, expected",
    [
        ((1, 28, 28), 784, (1, 28, 28)),
        ((28, 28), 784, (1, 28, 28)),
        ((1, 1, -1), 5, (1, 1, 5)),
        ((3, -1, 32), 3072, (3, 32, 32)),
        ([2, 3, 1], 6, (2, 3, 1)),
        ((-1, 4), 8, (1, 2, 4)),
    ],
)
def test_resolve_image_shape(image_shape, n_features, expected):
    assert resolve_image_shape(image_shape, n_features) == expected


@pytest.mark.parametrize(
    "image_shape, n_features",
    [
        ((1, 28, 28), 783),
        ((1, -1, -1), 784),
        ((1, 0, 5), 0),
        ((1, 0, 5), 5),
        ((1, -2, 5), 10),
        ((1, 3, -1), 10),
        ((784,), 784),
        ((1, 1, 1, 784), 784),
        ("28x28", 784),
        (28, 784),
        ((1.0, 28, 28), 784),
        ((True, 28, 28), 784),
    ],
)
def test_resolve_image_shape_errors(image_shape, n_features):
    with pytest.raises(ValueError, match=r"image_shape|n_features"):
        resolve_image_shape(image_shape, n_features)


def test_resolve_image_shape_error_names_both_values():
    with pytest.raises(ValueError, match=r"image_shape=\(1, 28, 28\).*n_features=783"):
        resolve_image_shape((1, 28, 28), 783)


# ------------------------------------------------------- check_autoencoder


class _NoDecode(nn.Module):
    def encode(self, x):
        return x


class _Wrong3DCodes(nn.Module):
    def __init__(self, n_features=4):
        super().__init__()
        self.lin = nn.Linear(n_features, 2)

    def encode(self, x):
        return self.lin(x)[:, :, None]

    def decode(self, z):
        return z


class _WrongDecodeShape(nn.Module):
    def __init__(self, n_features=4):
        super().__init__()
        self.enc = nn.Linear(n_features, 2)
        self.dec = nn.Linear(2, n_features + 1)

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


class _Broken(nn.Module):
    def encode(self, x):
        raise RuntimeError("boom")

    def decode(self, z):
        return z


class _ReturnsArray(nn.Module):
    def encode(self, x):
        return x.numpy()

    def decode(self, z):
        return z


class TinyAE(nn.Module):
    """User-style autoencoder taking n_features."""

    def __init__(self, n_features, latent_dim=2, width=8):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, latent_dim)
        )
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, n_features)
        )

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x):
        return self.decode(self.encode(x))


class FixedAE(nn.Module):
    """User-style autoencoder without an n_features argument."""

    def __init__(self, latent_dim=3):
        super().__init__()
        self.enc = nn.Linear(4, latent_dim)
        self.dec = nn.Linear(latent_dim, 4)

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x):
        return self.decode(self.encode(x))


@pytest.mark.parametrize(
    "module, error, match",
    [
        ("not a module", TypeError, "torch.nn.Module"),
        (nn.Linear(4, 4), TypeError, "encode"),
        (_NoDecode(), TypeError, "decode"),
        (_Wrong3DCodes(), ValueError, "2-D"),
        (_WrongDecodeShape(), ValueError, r"\(2, 4\)"),
        (_Broken(), ValueError, "boom"),
        (_ReturnsArray(), ValueError, "2-D"),
    ],
)
def test_check_autoencoder_errors(module, error, match):
    with pytest.raises(error, match=match):
        check_autoencoder(module, 4)


def test_check_autoencoder_wrong_n_features():
    with pytest.raises(ValueError, match="encode failed"):
        check_autoencoder(TinyAE(5), 4)


def test_check_autoencoder_leaves_module_untouched():
    ae = MLPAutoencoder(4, (6,), 2, batch_norm=True, dropout=0.5)
    ae.train()
    before = copy.deepcopy(ae.state_dict())
    assert check_autoencoder(ae, 4) == 2
    assert ae.training
    after = ae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------ build_module


def test_build_module_from_class_with_n_features():
    ae = build_module(TinyAE, {"latent_dim": 3}, 7)
    assert isinstance(ae, TinyAE)
    assert ae.encode(torch.zeros(1, 7)).shape == (1, 3)


def test_build_module_from_class_without_n_features():
    ae = build_module(FixedAE, None, 4)
    assert isinstance(ae, FixedAE)
    with pytest.raises(ValueError, match="encode failed"):
        build_module(FixedAE, None, 5)


def test_build_module_builtin_classes():
    assert isinstance(
        build_module(MLPAutoencoder, dict(hidden_layer_sizes=(4,), latent_dim=2), 6),
        MLPAutoencoder,
    )
    conv = build_module(ConvAutoencoder, dict(image_shape=(1, 1, -1), latent_dim=2), 5)
    assert conv.image_shape == (1, 1, 5)


def test_build_module_instance_is_copied():
    original = TinyAE(4)
    before = copy.deepcopy(original.state_dict())
    built = build_module(original, None, 4)
    assert built is not original
    with torch.no_grad():
        for p in built.parameters():
            p.add_(1.0)
    after = original.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_build_module_errors():
    with pytest.raises(ValueError, match="module_kwargs"):
        build_module(TinyAE(4), {"latent_dim": 2}, 4)
    with pytest.raises(ValueError, match="n_features=5"):
        build_module(TinyAE, {"n_features": 5}, 4)
    with pytest.raises(TypeError, match="Could not build"):
        build_module(TinyAE, {"no_such_argument": 1}, 4)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        build_module(42, None, 4)
    with pytest.raises(TypeError, match="encode"):
        build_module(nn.Linear, {"in_features": 4, "out_features": 4}, 4)
