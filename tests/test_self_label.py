"""Self-labelling: the classifier of the clusters behind ``labels_`` and ``predict``."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

from skdeepcluster import AutoencoderKMeans, NeighborEmbedding, _plan
from skdeepcluster.label import SelfLabel
from skdeepcluster.label._head import (
    LabelHead,
    draw_rows,
    label_steps,
    predict_labels,
    train_label_head,
)
from skdeepcluster.metrics import cluster_accuracy
from skdeepcluster.training import make_optimizer

from ._trained import check_trained
from .conftest import FAST, LABEL_FAST


@pytest.fixture
def data(blobs4):
    return blobs4


def fitted(data, seed=0, **params):
    X, _ = data
    return AutoencoderKMeans(n_clusters=4, random_state=seed, **{**LABEL_FAST, **params}).fit(X)


# ----------------------------------------------------------- the 'auto' rule
@pytest.mark.parametrize(
    ("params", "partial", "expected"),
    [
        ({}, False, True),  # network + neighbour embedding, no refinement
        ({}, True, False),  # partial_fit never self-labels
        ({"reducer": NeighborEmbedding()}, False, True),
        ({"reducer": PCA(3)}, False, False),
        ({"reducer": None, "refine": None}, False, False),
        ({"reducer": PCA(3), "self_label": True}, False, True),
        ({"self_label": False}, False, False),
        ({"architecture": "none"}, False, False),
    ],
)
def test_auto_rule(params, partial, expected):
    est = AutoencoderKMeans(n_clusters=3, **{"architecture": "mlp", **params})
    plan = _plan.resolve_plan(
        est, (1000, 20), stream=False, seeds=_plan.fit_seeds(0), partial=partial
    )
    assert (plan.self_label is not None) is expected


def test_self_label_true_needs_a_network(data):
    with pytest.raises(ValueError, match="self_label=True needs a network"):
        AutoencoderKMeans(n_clusters=4, architecture="none", self_label=True).fit(data[0])


def test_self_label_true_makes_auto_train_a_network():
    est = AutoencoderKMeans(n_clusters=3, self_label=True)
    assert _plan.resolve_architecture(est, (500, 10), partial=False) == "mlp"
    assert _plan.resolve_architecture(AutoencoderKMeans(3), (500, 10), partial=False) == "none"


# ----------------------------------------------------------- the estimator
def test_labels_come_from_the_head_and_equal_predict(data, train_seed):
    X, y = data
    model = fitted(data, train_seed)
    assert isinstance(model.label_head_, LabelHead)
    assert not model.label_head_.training
    head_labels = predict_labels(model.label_head_, X, device=model.device_)
    np.testing.assert_array_equal(model.labels_, head_labels)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.score(X) == pytest.approx(-model.inertia_)
    assert len(model.history_["self_label_loss"]) >= 1
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.995, max 1, mean 1 ± 0.0011
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)


def test_head_learns_the_clusterers_labels(data, train_seed):
    X, _ = data
    with_head = fitted(data, train_seed)
    without = fitted(data, train_seed, self_label=False)
    assert without.label_head_ is None
    # Same seeds for every stage before: the head reproduces the clusterer's labels.
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.995, max 1, mean 0.999 ± 0.0013
    check_trained(np.mean(with_head.labels_ == without.labels_), ">", 0.97)
    np.testing.assert_array_equal(with_head.transform(X), without.transform(X))


def test_predict_is_deterministic_batch_independent_and_pickles(data):
    X, _ = data
    model = fitted(data)
    again = fitted(data)
    np.testing.assert_array_equal(model.labels_, again.labels_)
    X_new = X[:50] + np.float32(0.05)
    whole = model.predict(X_new)
    np.testing.assert_array_equal(
        np.concatenate([model.predict(X_new[i : i + 7]) for i in range(0, 50, 7)]), whole
    )
    twins = np.repeat(X_new[:3], 4, axis=0)
    np.testing.assert_array_equal(model.predict(twins), np.repeat(whole[:3], 4))
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X_new), whole)


def test_partial_fit_drops_the_head(data):
    X, _ = data
    model = fitted(data)
    model.partial_fit(X)
    assert model.label_head_ is None
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_self_label_with_k_means_on_the_codes(data, train_seed):
    X, y = data
    model = fitted(data, train_seed, reducer=None, refine=None, self_label=True, batch_size=16)
    assert model.label_head_ is not None
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)


def test_streamed_memmap_fit_self_labels(tmp_path, data):
    X, _ = data
    path = tmp_path / "X.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    model = AutoencoderKMeans(n_clusters=4, random_state=0, streaming=True, **LABEL_FAST).fit(mm)
    assert model.label_head_ is not None
    np.testing.assert_array_equal(model.predict(mm), model.labels_)


# ----------------------------------------------------------- the pieces
def test_draw_rows_reads_a_memmap_like_an_array(tmp_path):
    X = np.arange(3000 * 3, dtype=np.float32).reshape(3000, 3)
    path = tmp_path / "X.f32"
    X.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    rows, sample = draw_rows(X, 500, np.random.default_rng(1))
    rows_mm, sample_mm = draw_rows(mm, 500, np.random.default_rng(1))
    np.testing.assert_array_equal(rows, rows_mm)
    np.testing.assert_array_equal(sample, sample_mm)
    np.testing.assert_array_equal(sample, X[rows])
    assert len(np.unique(rows)) == 500 and np.all(np.diff(rows) > 0)
    all_rows, everything = draw_rows(X, 10**6, np.random.default_rng(1))
    np.testing.assert_array_equal(all_rows, np.arange(3000))
    np.testing.assert_array_equal(everything, X)


def test_train_label_head_takes_the_step_budget_and_leaves_the_module(train_seed):
    X, y = make_blobs(n_samples=300, centers=3, n_features=5, random_state=0)
    X = X.astype(np.float32)
    module = AutoencoderKMeans(3, random_state=train_seed, **FAST).fit(X).autoencoder_
    before = {k: v.clone() for k, v in module.state_dict().items()}
    steps = []

    def factory(params):
        optimizer = make_optimizer("adam", params, learning_rate=1e-3)
        optimizer.register_step_post_hook(lambda *_: steps.append(1))
        return optimizer

    head, history = train_label_head(
        module, X, y, n_codes=3, n_clusters=3, batch_size=64, optimizer_factory=factory,
        seed=train_seed, device=torch.device("cpu"),
    )
    assert len(steps) == label_steps(300, 64) == 5 * 15  # 15 passes of 5 batches
    loss = history["self_label_loss"]
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.348, max 0.525, mean 0.446 ± 0.067
    check_trained(loss[-1] / loss[0], "<", 1.0)
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, before[k])
    accuracy = cluster_accuracy(y, predict_labels(head, X, device=torch.device("cpu")))
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.89, max 1, mean 0.987 ± 0.033
    check_trained(accuracy, ">", 0.8)
    again, _ = train_label_head(
        module, X, y, n_codes=3, n_clusters=3, batch_size=64, optimizer_factory=factory,
        seed=train_seed, device=torch.device("cpu"),
    )
    for k, v in head.state_dict().items():  # the seed fixes the weights, rows and batches
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("wrong", ["one cluster", "a few labels"])
def test_head_that_did_not_learn_the_clusters_is_dropped(data, monkeypatch, wrong):
    from skdeepcluster.label import _strategy

    X, _ = data
    reference = fitted(data)

    def head_labels(head, X, device):
        if wrong == "one cluster":
            return np.zeros(len(X), int)
        labels = reference.labels_.copy()
        labels[:30] = (labels[:30] + 1) % 4  # 92.5 % agreement
        return labels

    monkeypatch.setattr(_strategy, "predict_labels", head_labels)
    model = fitted(data)
    assert model.label_head_ is None
    assert len(np.unique(model.labels_)) == 4
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_diverging_head_is_dropped_with_a_warning(data):
    from sklearn.exceptions import ConvergenceWarning

    X, _ = data
    est = AutoencoderKMeans(n_clusters=4, random_state=0, **FAST).fit(X)
    with pytest.warns(ConvergenceWarning, match="self-labelling epoch .* labels are kept"):
        head, history = train_label_head(
            est.autoencoder_, X, est.labels_, n_codes=3, n_clusters=4, batch_size=64,
            optimizer_factory=lambda p: make_optimizer("sgd", p, learning_rate=1e30),
            seed=0, device=torch.device("cpu"),
        )
    assert head is None


def test_label_steps():
    assert label_steps(5000, 256) == SelfLabel().steps == 300  # 15 passes of 20 batches
    assert label_steps(10**6, 256) == 300
    assert label_steps(1000, 256) == 15 * 4
    assert label_steps(10, 256) == 15
