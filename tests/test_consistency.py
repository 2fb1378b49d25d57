"""Neighbour consistency (``SelfLabel(consistency=...)``): the classifier trained on the graph."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import PCA
from sklearn.neighbors import kneighbors_graph

from skdeepcluster import AutoencoderKMeans, ImageAugment, SelfLabel, _plan
from skdeepcluster.label._consistency import ConsistencyObjective, train_consistency
from skdeepcluster.label._head import LabelHead, predict_labels
from skdeepcluster.metrics import cluster_accuracy
from skdeepcluster.training import make_optimizer
from skdeepcluster.training._pretrain import RandomAffine

from ._trained import check_trained
from .conftest import LABEL_FAST

CPU = torch.device("cpu")

#: The entropy term's default weight (``ConsistencyObjective``'s is ``SelfLabel``'s).
ENTROPY_WEIGHT = SelfLabel().entropy_weight


def adam(params):
    return make_optimizer("adam", params, learning_rate=1e-3)


@pytest.fixture(scope="module")
def head_graph_and_data(label_head_and_blobs):
    head, X, y = label_head_and_blobs
    return head, kneighbors_graph(X, 5, include_self=False).tocsr(), X, y


# ----------------------------------------------------------- the objective
def test_neighbours_are_drawn_from_the_graph_and_a_lonely_row_is_its_own():
    graph = sp.csr_matrix(
        (np.ones(4, dtype=np.float32), ([0, 0, 1, 2], [1, 2, 0, 0])), shape=(4, 4)
    )
    head = LabelHead(torch.nn.Identity(), 2, 2)
    head.autoencoder.encode = lambda x: x
    objective = ConsistencyObjective(
        head, torch.zeros(4, 2), graph, 10, generator=torch.Generator().manual_seed(0)
    )
    idx = torch.tensor([0] * 200 + [1, 2, 3])
    drawn = objective.neighbours(idx).numpy()
    assert set(drawn[:200]) == {1, 2}  # both of row 0's neighbours, nothing else
    np.testing.assert_array_equal(drawn[200:], [0, 0, 3])
    empty = ConsistencyObjective(
        head, torch.zeros(4, 2), sp.csr_matrix((4, 4), dtype=np.float32), 10,
        generator=torch.Generator().manual_seed(0),
    )
    np.testing.assert_array_equal(empty.neighbours(torch.tensor([3, 1])).numpy(), [3, 1])


def test_loss_rewards_agreeing_neighbours_and_even_clusters():
    graph = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]))
    head = LabelHead(torch.nn.Identity(), 2, 2)
    head.autoencoder.encode = lambda x: x
    with torch.no_grad():
        head.linear.weight.copy_(torch.eye(2) * 50)
        head.linear.bias.zero_()
    idx = torch.arange(4)

    def loss(features):
        objective = ConsistencyObjective(
            head, features, graph, 10, generator=torch.Generator().manual_seed(0)
        )
        return float(objective.batch_loss(idx, features[idx])[0].detach())

    # Rows 0-1 and 2-3 are neighbours. Agreeing pairs in two even clusters: the
    # consistency is ~0 and the entropy term at its least, -ENTROPY_WEIGHT * log 2.
    good = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    assert loss(good) == pytest.approx(-ENTROPY_WEIGHT * np.log(2), abs=1e-3)
    split = torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]])  # each pair split
    one_cluster = torch.tensor([[1.0, 0], [1, 0], [1, 0], [1, 0]])  # agreeing, collapsed
    assert loss(good) < loss(one_cluster) < loss(split)


# ----------------------------------------------------------- train_consistency
def test_train_consistency_takes_its_steps_and_leaves_the_head(head_graph_and_data, train_seed):
    head, graph, X, y = head_graph_and_data
    before = {k: v.clone() for k, v in head.state_dict().items()}
    steps = []

    def factory(params):
        optimizer = adam(params)
        optimizer.register_step_post_hook(lambda *_: steps.append(1))
        return optimizer

    rows = np.arange(X.shape[0])
    trained, history = train_consistency(
        head, X, graph, rows, n_steps=40, batch_size=64, optimizer_factory=factory,
        augment=None, seed=train_seed, device=CPU,
    )
    assert len(steps) == 40
    # 300 rows are 5 batches of 64: 8 whole epochs, the progress bar's total.
    assert len(history["consistency_loss"]) == 8
    assert trained is not head and not trained.training
    for k, v in head.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert history["consistency_loss"] and np.isfinite(history["consistency_loss"]).all()
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, predict_labels(trained, X, device=CPU)), ">", 0.95)
    again, _ = train_consistency(
        head, X, graph, rows, n_steps=40, batch_size=64, optimizer_factory=adam,
        augment=None, seed=train_seed, device=CPU,
    )
    for k, v in trained.state_dict().items():  # the seed fixes batches and neighbours
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0)


def test_train_consistency_reads_the_graphs_rows_and_augments_both_sides(head_graph_and_data):
    head, _, X, _ = head_graph_and_data
    rows = np.arange(0, X.shape[0], 3)  # a graph over a third of the rows
    graph = kneighbors_graph(X[rows], 4, include_self=False).tocsr()
    seeds, calls = [], []

    def augment(seed):
        seeds.append(seed)

        def transform(xb):
            calls.append(xb.shape[0])
            assert xb.shape[1] == X.shape[1]
            return xb + 0.01

        return transform

    train_consistency(
        head, X, graph, rows, n_steps=5, batch_size=32, optimizer_factory=adam,
        augment=augment, seed=0, device=CPU,
    )
    assert len(seeds) == 1 and isinstance(seeds[0], int)
    assert len(calls) == 2 * 5  # the anchors and their neighbours, every step


def test_train_consistency_that_diverges_gives_none(head_graph_and_data):
    from sklearn.exceptions import ConvergenceWarning

    head, graph, X, _ = head_graph_and_data
    with pytest.warns(ConvergenceWarning):
        trained, _ = train_consistency(
            head, X, graph, np.arange(X.shape[0]), n_steps=20, batch_size=64,
            optimizer_factory=lambda p: make_optimizer("sgd", p, learning_rate=1e30),
            augment=None, seed=0, device=CPU,
        )
    assert trained is None


# ----------------------------------------------------------- flips
def test_random_affine_flip_mirrors_about_half_of_the_images():
    images = torch.arange(200 * 6, dtype=torch.float32).reshape(200, 6)
    flip = RandomAffine(
        (1, 2, 3), shift=0.0, rotation=0.0, flip=True, generator=torch.Generator().manual_seed(0)
    )
    out = flip(images).reshape(200, 2, 3)
    same = torch.isclose(out, images.reshape(200, 2, 3), atol=1e-4).all(dim=(1, 2))
    mirrored = torch.isclose(out, images.reshape(200, 2, 3).flip(2), atol=1e-4).all(dim=(1, 2))
    assert bool((same | mirrored).all())
    assert 60 < int(mirrored.sum()) < 140
    plain = RandomAffine((1, 2, 3), shift=0.0, rotation=0.0)
    torch.testing.assert_close(plain(images), images, atol=1e-4, rtol=0)


# ----------------------------------------------------------- the estimator
@pytest.mark.parametrize(
    "params, loss",
    [
        ({"self_label": SelfLabel(consistency=30)}, "consistency_loss"),
        ({"self_label": SelfLabel(rounds=2)}, "self_train_loss"),
    ],
)
def test_further_training_of_the_estimators_classifier(blobs4, params, loss, train_seed):
    X, y = blobs4
    model = AutoencoderKMeans(n_clusters=4, random_state=train_seed, **params, **LABEL_FAST).fit(X)
    assert isinstance(model.label_head_, LabelHead)
    assert len(model.history_[loss]) >= 1
    assert not hasattr(model.reducer_, "graph_")  # the fitted model keeps no graph
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    np.testing.assert_array_equal(
        predict_labels(model.label_head_, X, device=model.device_), model.labels_
    )
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)
    again = AutoencoderKMeans(n_clusters=4, random_state=train_seed, **params, **LABEL_FAST).fit(X)
    np.testing.assert_array_equal(again.labels_, model.labels_)
    # The further training leaves the embedding (and what is fitted on it) alone.
    plain = AutoencoderKMeans(n_clusters=4, random_state=train_seed, **LABEL_FAST).fit(X)
    np.testing.assert_array_equal(model.transform(X), plain.transform(X))
    assert loss not in plain.history_


def test_consistency_then_rounds_with_flipped_images(blobs4, train_seed):
    X, y = blobs4  # rows as 3 x 4 "images", for the mechanics
    model = AutoencoderKMeans(
        n_clusters=4, image_shape=(1, 3, 4),
        self_label=SelfLabel(consistency=20, rounds=1, augment=ImageAugment(0.1, flip=True)),
        random_state=train_seed, **LABEL_FAST,
    ).fit(X)
    assert model.history_["consistency_loss"] and model.history_["self_train_loss"]
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)


@pytest.mark.parametrize("failure", ["diverged", "emptied a cluster"])
@pytest.mark.parametrize(
    "training, params",
    [
        ("train_consistency", {"self_label": SelfLabel(consistency=10)}),
        ("self_train", {"self_label": SelfLabel(rounds=1)}),
    ],
)
def test_failed_further_training_keeps_the_first_classifier(
    blobs4, monkeypatch, failure, training, params
):
    from skdeepcluster.label import _strategy

    X, _ = blobs4
    first = AutoencoderKMeans(n_clusters=4, random_state=0, **LABEL_FAST).fit(X)
    real = getattr(_strategy, training)

    def broken(head, X, **kwargs):
        trained, history = real(head, X, **kwargs)
        if failure == "diverged":
            return None, history
        with torch.no_grad():  # every row in cluster 0
            trained.linear.bias.copy_(torch.tensor([1e6, 0.0, 0.0, 0.0]))
        return trained, history

    monkeypatch.setattr(_strategy, training, broken)
    with pytest.warns(UserWarning, match="was not kept"):  # it was asked for
        model = AutoencoderKMeans(n_clusters=4, random_state=0, **params, **LABEL_FAST).fit(X)
    np.testing.assert_array_equal(model.labels_, first.labels_)
    for k, v in first.label_head_.state_dict().items():
        torch.testing.assert_close(model.label_head_.state_dict()[k], v, rtol=0, atol=0)


def test_consistency_and_flip_refusals(blobs4):
    X = blobs4[0]
    consistency = SelfLabel(consistency=5)
    with pytest.raises(ValueError, match="self_label__consistency .* self_label=False is no"):
        AutoencoderKMeans(n_clusters=4, self_label=False).set_params(self_label__consistency=5)
    with pytest.raises(ValueError, match=r"SelfLabel\(consistency=5\) needs a network"):
        AutoencoderKMeans(n_clusters=4, architecture="none", self_label=consistency).fit(X)
    with pytest.raises(ValueError, match="neighbour embedding's graph, but reducer is PCA"):
        AutoencoderKMeans(n_clusters=4, reducer=PCA(3), self_label=consistency).fit(X)
    with pytest.raises(ValueError, match="'consistency' parameter of SelfLabel"):
        AutoencoderKMeans(n_clusters=4, self_label=SelfLabel(consistency=-1)).fit(X)
    with pytest.raises(ValueError, match="'flip' parameter"):
        AutoencoderKMeans(
            n_clusters=4, image_shape=(1, 3, 4), augment=ImageAugment(flip="yes")
        ).fit(X)


def test_consistency_makes_auto_self_label_and_train_a_network():
    est = AutoencoderKMeans(n_clusters=3, architecture="mlp", self_label=SelfLabel(consistency=5))
    plan = _plan.resolve_plan(
        est, (1000, 20), stream=False, seeds=_plan.fit_seeds(0), partial=False
    )
    assert isinstance(plan.self_label, SelfLabel) and plan.self_label.consistency == 5
    est = AutoencoderKMeans(n_clusters=3, self_label=SelfLabel(consistency=5))
    assert _plan.resolve_architecture(est, (500, 10), partial=False) == "mlp"
