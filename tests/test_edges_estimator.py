"""Edge cases of :class:`AutoencoderKMeans` from an adversarial report, one section each.

Bad callbacks, a ``module`` with ``encode``/``decode`` only, self-labelling that
was asked for but not kept, network parameters that a kept network cannot
take, the scale warning without a network, and ``refine__<name>`` on a
string shortcut of ``refine``.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from torch import nn

from skdeepcluster import MLP, AutoencoderKMeans, NeighborEmbedding, SelfLabel, _stages
from skdeepcluster._data import STANDARDIZED_SCALE_RANGE, warn_if_badly_scaled
from skdeepcluster._networks import EncodeDecodeAutoencoder
from skdeepcluster.label import _strategy
from skdeepcluster.refine import DEC, IDEC, KMeansLoss
from skdeepcluster.training import Callback, GradientNormClipping, LRScheduler

from .conftest import FAST


@pytest.fixture(scope="module")
def data():
    X, y = make_blobs(n_samples=150, centers=3, n_features=6, random_state=0)
    return X.astype(np.float64), y


def make(**params):
    return AutoencoderKMeans(**{"n_clusters": 3, "random_state": 0, **FAST, **params})


def assert_unfitted(model):
    assert [k for k in vars(model) if k.endswith("_") and not k.startswith("__")] == []


@pytest.fixture
def no_training(monkeypatch):
    """Pre-training fails loudly: a check that should come first must raise before it."""

    def train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(_stages, "train_autoencoder", train)


def messages(caught, text):
    return [str(w.message) for w in caught if text in str(w.message)]


# ---------------------------------------------------------- 2. callbacks
@pytest.mark.parametrize("bad", ["cosine", None, object(), LRScheduler])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_callback_that_is_none_is_refused_before_training(data, no_training, bad, method):
    est = make(callbacks=[GradientNormClipping(1.0), bad])
    with pytest.raises(TypeError, match=r"callbacks\[1\]=") as info:
        getattr(est, method)(data[0])
    assert repr(bad) in str(info.value)
    if bad is LRScheduler:
        assert "is a class; pass an instance, e.g. LRScheduler()" in str(info.value)
    else:
        assert "is not a training callback" in str(info.value)
    assert_unfitted(est)


class _AllHooks:
    """A callback by duck typing: every hook of ``Callback``, no base class."""

    def __init__(self):
        self.epochs = 0

    def on_train_begin(self, state):
        pass

    def on_epoch_begin(self, state):
        self.epochs += 1

    def on_grad_computed(self, state):
        pass

    def on_epoch_end(self, state):
        pass

    def on_train_end(self, state):
        pass


class _StopAtOnce(Callback):
    stage = "pretrain"

    def on_epoch_end(self, state):
        state.stop = True


def test_callback_instances_and_duck_typed_callbacks_still_train(data):
    est = make(callbacks=[_StopAtOnce(), _AllHooks()], reducer=None, refine=None).fit(data[0])
    assert est.n_iter_ == 1


# ------------------------------------------------- 3. encode/decode only
class EncodeDecodeOnly(nn.Module):
    """The contract of the ``module`` docstring: ``encode`` and ``decode``, no ``forward``."""

    def __init__(self, n_features=6, latent_dim=2):
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, 8), nn.ReLU(), nn.Linear(8, n_features))

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


class EncodeOnly(nn.Module):
    def __init__(self, n_features=6):
        super().__init__()
        self.enc = nn.Linear(n_features, 2)

    def encode(self, x):
        return self.enc(x)


@pytest.mark.parametrize(
    "module", [EncodeDecodeOnly, EncodeDecodeOnly(6)], ids=["class", "instance"]
)
def test_module_with_encode_and_decode_only_fits_predicts_and_pickles(data, module):
    X, _ = data
    est = make(module=module, epochs=3, reducer=None, refine=None).fit(X)
    ae = est.autoencoder_
    assert isinstance(ae, EncodeDecodeAutoencoder) and isinstance(ae.inner, EncodeDecodeOnly)
    assert ae.latent_dim == 2  # the wrapped module's attributes read through
    codes = ae.encode(torch.zeros(4, 6, dtype=next(ae.parameters()).dtype))
    assert codes.shape == (4, 2)
    assert est.architecture_ == "module" and len(est.history_["train_loss"]) == 3
    labels = est.predict(X)
    np.testing.assert_array_equal(labels, est.labels_)
    assert est.reconstruct(X[:5]).shape == (5, 6)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X), labels)
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


@pytest.mark.parametrize("module", [EncodeOnly, EncodeOnly(6)], ids=["class", "instance"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_module_without_decode_is_refused_before_training(data, no_training, module, method):
    est = make(module=module)
    with pytest.raises(TypeError, match=r"module=EncodeOnly has no callable decode\(\) method"):
        getattr(est, method)(data[0])
    assert_unfitted(est)


# --------------------------------------- 4. self-labelling not kept
#: A second stage that self-labels quickly: a short neighbour embedding, k-means on it.
SELF = dict(reducer=NeighborEmbedding(n_epochs=10), clusterer="kmeans")

#: What asked for self-labelling, and how the warning names it.
REQUESTS = [
    ({"self_label": SelfLabel(min_agreement=1.0)}, "self_label=SelfLabel(min_agreement=1.0)"),
    (
        {"self_label": SelfLabel(min_agreement=1.0, rounds=2)},
        "self_label=SelfLabel(min_agreement=1.0, rounds=2)",
    ),
    (
        {"self_label": SelfLabel(consistency=100, min_agreement=1.0)},
        "self_label=SelfLabel(consistency=100, min_agreement=1.0)",
    ),
]


def _one_row_off(monkeypatch):
    """The classifier's labels, with the first row's moved to the next cluster."""
    real = _strategy.predict_labels

    def off(head, X, device):
        labels = real(head, X, device=device).copy()
        labels[0] = (labels[0] + 1) % head.linear.out_features
        return labels

    monkeypatch.setattr(_strategy, "predict_labels", off)


@pytest.mark.parametrize(("params", "named"), REQUESTS, ids=lambda v: str(v))
def test_requested_self_labelling_that_is_dropped_warns(data, monkeypatch, params, named):
    _one_row_off(monkeypatch)  # no classifier can reach min_agreement=1.0
    X, _ = data
    with pytest.warns(UserWarning, match="asked for self-labelling") as caught:
        est = make(**SELF, **params).fit(X)
    (message,) = messages(caught, "asked for self-labelling")
    assert message.startswith(f"{named} asked for self-labelling, but the self-labelling "
                              "classifier was not kept: it gives only ")
    assert "below the 1 it must reach" in message
    assert "labels_ and predict are the clusterer's labels" in message
    assert est.label_head_ is None
    np.testing.assert_array_equal(est.predict(X), est.labels_)


@pytest.mark.parametrize("failure", ["diverged", "empty"])
def test_the_warning_says_why_the_classifier_was_dropped(data, monkeypatch, failure):
    if failure == "diverged":
        monkeypatch.setattr(
            _strategy, "train_label_head", lambda *a, **k: (None, {"self_label_loss": []})
        )
        reason = "its training diverged"
    else:
        monkeypatch.setattr(
            _strategy, "predict_labels", lambda head, X, device: np.zeros(len(X), np.int64)
        )
        reason = "it leaves 2 of the 3 clusters empty"
    with pytest.warns(UserWarning, match=f"self_label=True asked .* not kept: {reason}"):
        est = make(**SELF, self_label=True).fit(data[0])
    assert est.label_head_ is None


def test_self_training_that_is_dropped_warns_and_keeps_the_classifier(data, monkeypatch):
    monkeypatch.setattr(
        _strategy, "self_train", lambda *a, **k: (None, {"self_train_loss": []})
    )
    with pytest.warns(
        UserWarning,
        match="the classifier trained by self_label__rounds=1 was not kept: its training "
        "diverged. labels_ and predict are the self-labelling classifier's labels",
    ):
        # min_agreement=0: the first classifier is kept
        est = make(**SELF, self_label=SelfLabel(rounds=1, min_agreement=0.0)).fit(data[0])
    assert est.label_head_ is not None


def test_auto_self_labelling_is_dropped_silently(data, monkeypatch):
    monkeypatch.setattr(  # a classifier that leaves clusters empty
        _strategy, "predict_labels", lambda head, X, device: np.zeros(len(X), np.int64)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = make(**SELF).fit(data[0])  # self_label='auto' chose to self-label
    assert est.label_head_ is None
    assert messages(caught, "self-labelling") == []


# ------------------------------------- 5. a kept network keeps its shape
SHAPE_CHANGE = dict(latent_dim=2, architecture=MLP((32, 32)))
SHAPE_WARNING = (
    r"trains the fitted network further, and it was built with "
    r"latent_dim=3, architecture__hidden_layer_sizes=\(32, 16\): it does not have the new "
    r"latent_dim=2, architecture__hidden_layer_sizes=\(32, 32\)\. Fit with warm_start=False "
    r"\(or a fresh estimator\) to build a new network\."
)


def _widths(module):
    return [m.out_features for m in module.encoder if isinstance(m, nn.Linear)]


def test_warm_start_warns_about_network_parameters_it_cannot_take(data):
    X, _ = data
    est = make(warm_start=True, reducer=None, refine=None).fit(X)
    est.set_params(**SHAPE_CHANGE)
    with pytest.warns(UserWarning, match="warm_start=True " + SHAPE_WARNING):
        est.fit(X)
    assert _widths(est.autoencoder_) == [32, 16, 3]  # the kept network
    with pytest.warns(UserWarning, match="warm_start=True " + SHAPE_WARNING):
        est.fit(X)  # still not built with them: warned again
    est.set_params(warm_start=False).fit(X)
    assert _widths(est.autoencoder_) == [32, 32, 2]


@pytest.mark.parametrize("first", ["fit", "partial_fit"])
def test_partial_fit_warns_about_network_parameters_it_cannot_take(data, first):
    X, _ = data
    est = make(reducer=None, refine=None)
    getattr(est, first)(X)
    est.set_params(**SHAPE_CHANGE)
    with pytest.warns(UserWarning, match="partial_fit " + SHAPE_WARNING):
        est.partial_fit(X)
    assert _widths(est.autoencoder_) == [32, 16, 3]


def test_no_warning_when_the_kept_network_has_the_values(data):
    X, _ = data
    est = make(warm_start=True, reducer=None, refine=None).fit(X)
    # The same values, spelled differently, and parameters of the training only.
    est.set_params(architecture=MLP([32, 16], dropout=0), epochs=2, learning_rate=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X)
        est.partial_fit(X)
    assert messages(caught, "fitted network further") == []


# ------------------------------------- 9. the scale warning, no network
def test_no_network_standardized_input_of_any_scale_does_not_warn(data):
    X, _ = data
    reference = AutoencoderKMeans(3, random_state=0).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny = AutoencoderKMeans(3, random_state=0).fit(X * 1e-30)
    assert tiny.architecture_ == "none"
    assert messages(caught, "badly scaled") == []
    # Harmless indeed: the scaler removes the scale, the clusters stay.
    assert adjusted_rand_score(reference.labels_, tiny.labels_) == 1.0


def test_scale_warning_with_a_network_speaks_of_its_training(data):
    with pytest.warns(UserWarning, match="badly scaled") as caught:
        est = make(reducer=None, refine=None).fit(data[0] * 1e-8)
    assert est.architecture_ == "mlp"
    (message,) = messages(caught, "badly scaled")
    assert "the largest |X| is 1.15e-07, while the network expects features of order 1" in message
    assert "training would learn nothing useful" in message


def test_scale_warning_without_a_network_says_what_goes_wrong(data):
    X, _ = data
    params = dict(n_clusters=3, architecture="none", reducer=None, random_state=0)
    with pytest.warns(UserWarning, match="badly scaled") as caught:
        AutoencoderKMeans(**params, standardize=False).fit(X * 1e-30)
    (message,) = messages(caught, "badly scaled")
    assert "no network is trained (architecture 'none') and standardize=False" in message
    assert "the clusterer work on X as given" in message and "network expects" not in message
    assert "Set standardize=True" in message
    with pytest.warns(UserWarning, match="badly scaled") as caught:
        AutoencoderKMeans(**params).fit(X * 1e-45)  # below float32's smallest normal
    (message,) = messages(caught, "badly scaled")
    assert "outside float32's normal range" in message and "network expects" not in message


@pytest.mark.parametrize(
    ("max_abs", "network", "standardize", "warns"),
    [
        (1e-30, True, True, True),
        (1e-30, False, True, False),
        (1e30, False, True, False),
        (1e-30, False, False, True),
        (STANDARDIZED_SCALE_RANGE[0] / 2, False, True, True),
        (STANDARDIZED_SCALE_RANGE[1] * 2, False, True, True),
        (0.0, False, True, True),
        (1.0, False, False, False),
    ],
)
def test_warn_if_badly_scaled_ranges(max_abs, network, standardize, warns):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_badly_scaled(max_abs, network=network, standardize=standardize)
    assert bool(messages(caught, "badly scaled")) is warns


# ------------------------------------- 10. refine__<name> on a shortcut
def test_grid_search_over_refine_gamma_with_a_shortcut(data):
    X, y = data
    est = make(refine="idec", reducer=None)
    search = GridSearchCV(
        est, {"refine__gamma": [0.1, 1.0], "refine__epochs": [2]}, cv=2
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert isinstance(best.refine, IDEC) and best.refine.epochs == 2
    assert best.refine.gamma == search.best_params_["refine__gamma"]
    assert best.history_["refine_loss"]  # refinement ran
    assert est.refine == "idec"  # the searched estimator is left alone


@pytest.mark.parametrize(("shortcut", "strategy"), [("kmeans", KMeansLoss), ("dec", DEC)])
def test_set_params_turns_a_shortcut_into_its_strategy(shortcut, strategy):
    est = AutoencoderKMeans(refine=shortcut).set_params(refine__epochs=3)
    assert type(est.refine) is strategy and est.refine.epochs == 3
    assert est.get_params()["refine__epochs"] == 3
    copy = clone(est)
    assert type(copy.refine) is strategy and copy.get_params()["refine__epochs"] == 3
    # A shortcut and its parameter in one call; a plain shortcut stays a string.
    est.set_params(refine="idec", refine__gamma=0.5)
    assert isinstance(est.refine, IDEC) and est.refine.gamma == 0.5
    assert AutoencoderKMeans().set_params(refine="dec").refine == "dec"


@pytest.mark.parametrize("refine", ["auto", None])
def test_set_params_refine_parameter_without_a_strategy_is_refused(refine):
    est = AutoencoderKMeans(refine=refine)
    with pytest.raises(ValueError, match=r"refine__gamma .* refine=IDEC\(\)"):
        est.set_params(refine__gamma=0.1)
    assert est.refine == refine
    with pytest.raises(ValueError, match="refine__gamma"):
        AutoencoderKMeans(refine="idec").set_params(refine=refine, refine__gamma=0.1)


def test_set_params_unknown_refine_parameter_leaves_the_shortcut():
    est = AutoencoderKMeans(refine="idec")
    with pytest.raises(ValueError, match="no_such"):
        est.set_params(refine__no_such=1)
    assert est.refine == "idec"
