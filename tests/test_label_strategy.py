"""The self-labelling strategy ``SelfLabel``: its parameters, and ``fit_labels`` on its own."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.neighbors import kneighbors_graph
from sklearn.utils._param_validation import InvalidParameterError

from skdeepcluster import MLPAutoencoder
from skdeepcluster.label import LabelHead, SelfLabel, _strategy
from skdeepcluster.label._head import predict_labels
from skdeepcluster.training import train_autoencoder

CPU = torch.device("cpu")
SEEDS = SimpleNamespace(self_label=0, consistency=1, self_train=2)
DEFAULTS = dict(
    steps=300, max_epochs=15, label_smoothing=0.1, min_agreement=0.95, consistency=0,
    consistency_learning_rate=0.1, entropy_weight=5.0, rounds=0, round_steps=1000,
    round_max_epochs=50, first_share=0.5, share_step=0.1, augment="auto",
)


class Augment:
    """An augmentation object: anything with ``make``."""

    def make(self, image_shape, n_features, seed):
        return lambda xb: xb


# ----------------------------------------------------------- parameters
def test_defaults_get_set_params_and_clone():
    strategy = SelfLabel()
    assert strategy.get_params() == DEFAULTS
    assert strategy.set_params(rounds=6, consistency=3000) is strategy
    copy = clone(strategy)
    assert copy is not strategy and copy.get_params() == {
        **DEFAULTS, "rounds": 6, "consistency": 3000
    }
    assert copy._requested_further() == "self_label__consistency=3000 and self_label__rounds=6"
    assert SelfLabel()._requested_further() is None
    augment = Augment()
    assert SelfLabel(augment=augment).get_params()["augment"] is augment


BAD = {
    "negative rounds": {"rounds": -1},
    "negative consistency": {"consistency": -5},
    "no steps": {"steps": 0},
    "min_agreement above 1": {"min_agreement": 1.5},
    "label_smoothing 1": {"label_smoothing": 1.0},
    "no consistency learning rate": {"consistency_learning_rate": 0.0},
    "no first share": {"first_share": 0.0},
    "fractional rounds": {"rounds": 1.5},
    "augment string": {"augment": "yes"},
    "augment without make": {"augment": object()},
}


@pytest.mark.parametrize("params", BAD.values(), ids=BAD.keys())
def test_validate_params_refuses_bad_values(params):
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        SelfLabel(**params)._validate_params()


@pytest.mark.parametrize("augment", ["auto", None, Augment()], ids=["auto", "None", "object"])
def test_validate_params_accepts_the_augment_kinds(augment):
    SelfLabel(augment=augment, min_agreement=1, share_step=0)._validate_params()


# ----------------------------------------------------------- fit_labels
@pytest.fixture(scope="module")
def module_and_data():
    """A small pre-trained network, and 300 rows in 3 blobs with their labels (no estimator)."""
    X, y = make_blobs(n_samples=300, centers=3, n_features=5, random_state=0)
    X = X.astype(np.float32)
    with torch.random.fork_rng():  # the weights, without touching the caller's torch state
        torch.manual_seed(0)
        module = MLPAutoencoder(5, (32, 16), 3)
        train_autoencoder(
            module, torch.from_numpy(X), epochs=5, batch_size=64,
            optimizer=torch.optim.Adam(module.parameters(), lr=1e-3),
            generator=torch.Generator().manual_seed(0),
        )
    return module.eval(), X, y.astype(np.int64)


def recording_factory(scales):
    def factory(params, learning_rate_scale=1.0):
        scales.append(learning_rate_scale)
        return torch.optim.Adam(params, lr=1e-3 * learning_rate_scale)

    return factory


def fit_labels(strategy, module, X, clusters, **kwargs):
    kwargs = {
        "optimizer_factory": recording_factory([]), "augmenter": None, "graph": None,
        **kwargs,
    }
    return strategy.fit_labels(
        module, X, clusters, n_codes=3, n_clusters=3, batch_size=64, seeds=SEEDS,
        device=CPU, **kwargs,
    )


def test_fit_labels_learns_the_clusters_and_leaves_the_module(module_and_data):
    module, X, y = module_and_data
    before = {k: v.clone() for k, v in module.state_dict().items()}
    warned = []
    head, labels, history = fit_labels(SelfLabel(), module, X, y, warn=warned.append)
    assert isinstance(head, LabelHead) and not head.training
    assert labels.shape == (300,) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, predict_labels(head, X, device=CPU))
    assert np.mean(labels == y) >= 0.95  # kept: it reached min_agreement
    assert list(history) == ["self_label_loss"] and warned == []
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    _, again, _ = fit_labels(SelfLabel(), module, X, y)  # the seeds fix everything
    np.testing.assert_array_equal(again, labels)


def test_fit_labels_drops_a_classifier_that_did_not_learn_and_warns(module_and_data):
    module, X, _ = module_and_data
    noise = np.random.default_rng(0).integers(0, 3, size=X.shape[0])  # nothing to learn
    warned = []
    head, labels, history = fit_labels(
        SelfLabel(), module, X, noise, warn=lambda *args: warned.append(args)
    )
    assert head is None and labels is noise and "self_label_loss" in history
    ((what, failure, kept),) = warned
    assert what == "the self-labelling classifier" and kept == "the clusterer's"
    assert failure.startswith("it gives only ") and "below the 0.95 it must reach" in failure


def test_fit_labels_runs_consistency_then_rounds(module_and_data):
    module, X, y = module_and_data
    graph = (kneighbors_graph(X, 5, include_self=False).tocsr(), np.arange(X.shape[0]))
    scales, seeds = [], []

    def augmenter(seed):
        seeds.append(seed)
        return lambda xb: xb + 0.01

    strategy = SelfLabel(consistency=10, rounds=1, round_steps=10)
    head, labels, history = fit_labels(
        strategy, module, X, y, optimizer_factory=recording_factory(scales),
        augmenter=augmenter, graph=graph,
    )
    assert isinstance(head, LabelHead) and labels.shape == (300,)
    assert list(history) == ["self_label_loss", "consistency_loss", "self_train_loss"]
    assert scales == [1.0, 0.1, 1.0]  # the classifier, the consistency, the round
    assert len(seeds) == 2 and all(isinstance(s, int) for s in seeds)


def test_fit_labels_keeps_the_first_classifier_when_a_round_fails(module_and_data, monkeypatch):
    module, X, y = module_and_data
    first, first_labels, _ = fit_labels(SelfLabel(), module, X, y)
    monkeypatch.setattr(_strategy, "self_train", lambda *a, **k: (None, {"self_train_loss": []}))
    warned = []
    head, labels, history = fit_labels(
        SelfLabel(rounds=2), module, X, y, warn=lambda *args: warned.append(args)
    )
    assert warned == [(
        "the classifier trained by self_label__rounds=2", "its training diverged",
        "the self-labelling classifier's",
    )]
    np.testing.assert_array_equal(labels, first_labels)
    for k, v in first.state_dict().items():
        torch.testing.assert_close(head.state_dict()[k], v, rtol=0, atol=0)
    assert history["self_train_loss"] == []


def test_fit_labels_consistency_needs_the_graph(module_and_data):
    module, X, y = module_and_data
    with pytest.raises(ValueError, match="consistency=5 trains on the neighbour .* graph is None"):
        fit_labels(SelfLabel(consistency=5), module, X, y)
    with pytest.raises(InvalidParameterError, match="rounds"):
        fit_labels(SelfLabel(rounds=-1), module, X, y)
