"""Self-training (``SelfLabel(rounds=...)``): rounds on the classifier's most confident rows."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from skdeepcluster import MLP, AutoencoderKMeans, ImageAugment, SelfLabel, _plan
from skdeepcluster.label._head import confident_rows, predict_labels, self_train
from skdeepcluster.metrics import cluster_accuracy
from skdeepcluster.training import make_optimizer

from ._trained import check_trained
from .conftest import LABEL_FAST

CPU = torch.device("cpu")

#: The self-training's default budget and share schedule (``self_train``'s keyword
#: defaults are ``SelfLabel``'s).
SELF_TRAIN_STEPS = SelfLabel().round_steps
SELF_TRAIN_MAX_EPOCHS = SelfLabel().round_max_epochs
FIRST_SHARE, SHARE_STEP = SelfLabel().first_share, SelfLabel().share_step


@pytest.fixture
def data(blobs4):
    return blobs4


@pytest.fixture(scope="module")
def head_and_data(label_head_and_blobs):
    return label_head_and_blobs


def adam(params):
    return make_optimizer("adam", params, learning_rate=1e-3)


# ----------------------------------------------------------- confident_rows
def test_confident_rows_keeps_each_clusters_surest_share():
    logits = np.array(
        [[5, 0], [1, 0], [3, 0], [0, 2], [0, 9], [0, 4], [0, 1]], dtype=np.float32
    )
    np.testing.assert_array_equal(confident_rows(logits, 0.5), [0, 2, 4, 5])
    np.testing.assert_array_equal(confident_rows(logits, 1.0), np.arange(7))
    # Every cluster keeps at least one row, however small the share.
    np.testing.assert_array_equal(confident_rows(logits, 0.01), [0, 4])


def test_confident_rows_is_stable_under_huge_logits():
    logits = np.array([[1e30, 0], [2e30, 0], [0, 1e30]], dtype=np.float32)
    assert np.all(np.isin(confident_rows(logits, 0.5), [0, 1, 2]))
    assert confident_rows(logits, 0.5).size == 2


# ----------------------------------------------------------- self_train
def test_self_train_takes_its_steps_and_leaves_the_head(head_and_data, train_seed):
    head, X, y = head_and_data
    before = {k: v.clone() for k, v in head.state_dict().items()}
    steps, lrs = [], []

    def factory(params):
        optimizer = adam(params)
        optimizer.register_step_post_hook(
            lambda opt, *_: (steps.append(1), lrs.append(opt.param_groups[0]["lr"]))
        )
        return optimizer

    trained, history = self_train(
        head, X, n_rounds=2, batch_size=64, optimizer_factory=factory, augment=None,
        seed=train_seed, device=CPU,
    )
    # Round 0 trains on half of each cluster's rows (150 rows: 3 batches of 64),
    # round 1 on 60 % (180 rows: 3 batches); at most SELF_TRAIN_MAX_EPOCHS passes.
    assert len(steps) == 2 * min(SELF_TRAIN_STEPS, SELF_TRAIN_MAX_EPOCHS * 3) == 300
    # A cosine from the optimizer's rate towards 0 within each round.
    assert lrs[0] == pytest.approx(1e-3) and lrs[150] == pytest.approx(1e-3)
    assert lrs[149] < 1e-5 and lrs[75] == pytest.approx(5e-4, rel=0.05)
    assert trained is not head and not trained.training
    for k, v in head.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert len(history["self_train_loss"]) >= 2
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, predict_labels(trained, X, device=CPU)), ">", 0.95)
    again, _ = self_train(
        head, X, n_rounds=2, batch_size=64, optimizer_factory=adam, augment=None,
        seed=train_seed, device=CPU,
    )
    for k, v in trained.state_dict().items():  # the seed fixes rows, batches and weights
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0)


def test_self_train_augments_each_batch_with_a_seeded_transform(head_and_data):
    head, X, _ = head_and_data
    seeds, calls = [], []

    def augment(seed):
        seeds.append(seed)

        def transform(xb):
            calls.append(xb.shape[0])
            return xb + 0.01

        return transform

    self_train(
        head, X, n_rounds=1, batch_size=64, optimizer_factory=adam, augment=augment,
        seed=0, device=CPU,
    )
    assert len(seeds) == 1 and isinstance(seeds[0], int)
    assert len(calls) == min(SELF_TRAIN_STEPS, SELF_TRAIN_MAX_EPOCHS * 3)


def test_self_train_of_a_diverging_round_gives_none(head_and_data):
    from sklearn.exceptions import ConvergenceWarning

    head, X, _ = head_and_data
    with pytest.warns(ConvergenceWarning):
        trained, _ = self_train(
            head, X, n_rounds=2, batch_size=64,
            optimizer_factory=lambda p: make_optimizer("sgd", p, learning_rate=1e30),
            augment=None, seed=0, device=CPU,
        )
    assert trained is None


def test_share_schedule_reaches_all_rows_at_the_sixth_round():
    assert FIRST_SHARE + 5 * SHARE_STEP == pytest.approx(1.0)


# ----------------------------------------------------------- the estimator
# The rounds on the estimator's classifier (its labels, determinism, the embedding left
# alone): test_consistency.py, test_further_training_of_the_estimators_classifier.


def test_rounds_with_image_augmentation(data, train_seed):
    X, y = data  # rows as 3 x 4 "images", for the mechanics
    model = AutoencoderKMeans(
        n_clusters=4, image_shape=(1, 3, 4),
        self_label=SelfLabel(rounds=1, augment=ImageAugment(0.1)), random_state=train_seed,
        **LABEL_FAST,
    ).fit(X)
    assert len(model.history_["self_train_loss"]) >= 1
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.95)


# A failed round keeping the first classifier: test_consistency.py,
# test_failed_further_training_keeps_the_first_classifier (both trainings).


def test_rounds_need_self_labelling(data):
    with pytest.raises(ValueError, match="self_label__rounds .* self_label=False is no object"):
        AutoencoderKMeans(n_clusters=4, self_label=False).set_params(self_label__rounds=2)
    with pytest.raises(ValueError, match=r"self_label=SelfLabel\(rounds=1\) needs a network"):
        AutoencoderKMeans(
            n_clusters=4, architecture="none", self_label=SelfLabel(rounds=1)
        ).fit(data[0])
    with pytest.raises(ValueError, match="'rounds' parameter of SelfLabel"):
        AutoencoderKMeans(n_clusters=4, self_label=SelfLabel(rounds=-1)).fit(data[0])
    with pytest.raises(ValueError, match="augments .* self_label__rounds > 0"):
        AutoencoderKMeans(
            n_clusters=4, image_shape=(1, 3, 4),
            self_label=SelfLabel(augment=ImageAugment(0.2)),
        ).fit(data[0])
    with pytest.raises(ValueError, match=r"self_label__augment=ImageAugment\(\) .* image_shape"):
        AutoencoderKMeans(
            n_clusters=4, self_label=SelfLabel(rounds=1, augment=ImageAugment(0.1))
        ).fit(data[0])


def test_rounds_make_auto_self_label_and_train_a_network():
    est = AutoencoderKMeans(
        n_clusters=3, architecture="mlp", reducer=PCA(3), self_label=SelfLabel(rounds=1)
    )
    plan = _plan.resolve_plan(
        est, (1000, 20), stream=False, seeds=_plan.fit_seeds(0), partial=False
    )
    assert isinstance(plan.self_label, SelfLabel) and plan.self_label.rounds == 1
    est = AutoencoderKMeans(n_clusters=3, self_label=SelfLabel(rounds=1))
    assert _plan.resolve_architecture(est, (500, 10), partial=False) == "mlp"


def test_rounds_with_dropout_are_reproducible(data):
    X, _ = data
    fits = [
        AutoencoderKMeans(
            n_clusters=4, random_state=0, self_label=SelfLabel(rounds=1),
            **{**LABEL_FAST, "architecture": MLP((64, 32), dropout=0.2), "latent_dim": 4},
        ).fit(X)
        for _ in range(2)
    ]
    assert "self_train_loss" in fits[0].history_
    np.testing.assert_array_equal(fits[0].labels_, fits[1].labels_)
    for k, v in fits[0].label_head_.state_dict().items():
        torch.testing.assert_close(fits[1].label_head_.state_dict()[k], v, rtol=0, atol=0)
