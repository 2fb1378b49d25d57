"""``architecture='auto'`` chooses between the network and none on the data (``_choice``)."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from skdeepcluster import AutoencoderKMeans, _choice, _plan
from skdeepcluster._choice import ArchitectureChoice, partition_score


def wide_blobs(n=300, seed=0, cluster_std=1.0):
    """Rows of 256 features: 'auto' leaves the choice to the data from 256 features on."""
    X, y = make_blobs(n, n_features=256, centers=3, cluster_std=cluster_std, random_state=seed)
    return X.astype(np.float32), y


@pytest.fixture
def few_epochs(monkeypatch):
    """'auto' epochs of 20 passes over 300 rows, not 200: the choice's mechanics, quickly.

    (``epochs`` itself must stay 'auto': a network parameter that is set asks for a network.)
    """
    monkeypatch.setattr(_plan, "AUTO_MAX_ROWS", 20 * 300)


def test_partition_score_rewards_partitions_that_follow_neighbourhoods():
    X, y = make_blobs(600, n_features=5, centers=4, cluster_std=0.5, random_state=0)
    assert partition_score(X, y) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    shuffled = partition_score(X, rng.permutation(y))
    assert 0.15 < shuffled < 0.35  # about 1/4: the chance that a neighbour shares a label
    assert partition_score(X, np.zeros(600, dtype=int)) == 1.0  # one cluster: nothing cut


def test_a_tie_drops_the_network_and_equals_the_fit_without_one(monkeypatch, few_epochs):
    X, _ = wide_blobs()
    monkeypatch.setattr(_choice, "_score", lambda codes, plan: 0.5)  # a tie
    chosen = AutoencoderKMeans(3, random_state=0).fit(X)
    record = chosen.architecture_choice_
    assert isinstance(record, ArchitectureChoice)
    assert record.architecture == "none" == chosen.architecture_
    assert record.scores == {"none": 0.5, "mlp": 0.5}
    assert record.n_rows == 300 and record.epoch >= 1 and record.seconds > 0
    assert chosen.n_iter_ == 0 and chosen.history_["train_loss"] == []
    alone = AutoencoderKMeans(3, architecture="none", random_state=0).fit(X)
    np.testing.assert_array_equal(chosen.labels_, alone.labels_)
    np.testing.assert_array_equal(chosen.transform(X), alone.transform(X))


def test_a_perfect_input_score_trains_no_network(monkeypatch):
    """No network can score above 1: the choice is made before any pre-training."""
    X, _ = wide_blobs()
    monkeypatch.setattr(_choice, "_score", lambda codes, plan: 1.0)
    model = AutoencoderKMeans(3, random_state=0).fit(X)
    record = model.architecture_choice_
    assert record.architecture == "none" == model.architecture_
    assert record.scores == {"none": 1.0} and record.epoch is None
    assert "no network can score higher" in str(record) and "epoch" not in str(record)
    assert model.n_iter_ == 0 and model.history_["train_loss"] == []
    alone = AutoencoderKMeans(3, architecture="none", random_state=0).fit(X)
    np.testing.assert_array_equal(model.labels_, alone.labels_)


def test_the_real_scores_are_measured_on_the_sample(few_epochs):
    # Overlapping blobs: no partition holds every neighbourhood, so both candidates are scored.
    X, _ = wide_blobs(cluster_std=12.0)
    record = AutoencoderKMeans(3, random_state=0).fit(X).architecture_choice_
    assert set(record.scores) == {"none", "mlp"}
    assert all(0.0 <= value <= 1.0 for value in record.scores.values())
    winner = "mlp" if record.scores["mlp"] > record.scores["none"] else "none"
    assert record.architecture == winner


def test_a_kept_network_is_trained_as_if_nothing_had_looked(monkeypatch, few_epochs):
    """The probe draws no random numbers of training: the kept network is the 'mlp' fit."""
    X, _ = wide_blobs()
    # the network's codes have latent_dim=10 columns, the input's 50 principal components
    monkeypatch.setattr(_choice, "_score", lambda codes, plan: float(codes.shape[1] == 10))
    chosen = AutoencoderKMeans(3, random_state=0).fit(X)
    assert chosen.architecture_choice_.architecture == "mlp" == chosen.architecture_
    assert chosen.architecture_choice_.scores == {"none": 0.0, "mlp": 1.0}
    alone = AutoencoderKMeans(3, architecture="mlp", random_state=0).fit(X)
    assert chosen.n_iter_ == alone.n_iter_
    np.testing.assert_array_equal(chosen.labels_, alone.labels_)
    np.testing.assert_array_equal(chosen.transform(X), alone.transform(X))


def test_verbose_says_what_was_chosen_in_one_line(capsys, monkeypatch, few_epochs):
    X, _ = wide_blobs()
    monkeypatch.setattr(_choice, "_score", lambda codes, plan: float(codes.shape[1] != 10))
    AutoencoderKMeans(3, random_state=0, verbose=1).fit(X)
    lines = [line for line in capsys.readouterr().err.splitlines() if "architecture=" in line]
    assert len(lines) == 1 and lines[0].startswith("architecture='none': the input's clusters")
    AutoencoderKMeans(3, random_state=0).fit(X)
    assert "architecture=" not in capsys.readouterr().err  # quiet by default


@pytest.mark.parametrize(
    "params, architecture, reason",
    [
        ({}, "none", "fewer than 2,000 rows of fewer than 256 features"),
        ({"architecture": "none"}, "none", "as given"),
        ({"architecture": "mlp", "epochs": 1}, "mlp", "as given"),
    ],
)
def test_the_record_says_why_without_measuring(params, architecture, reason):
    X, _ = make_blobs(200, n_features=4, centers=3, random_state=0)
    model = AutoencoderKMeans(3, random_state=0, **params).fit(X)
    assert model.architecture_choice_ == ArchitectureChoice(architecture, reason, {})
    assert str(model.architecture_choice_) == f"architecture={architecture!r}: {reason}"


def test_partial_fit_records_that_it_trains_a_network():
    X, _ = make_blobs(200, n_features=4, centers=3, random_state=0)
    model = AutoencoderKMeans(3, random_state=0).partial_fit(X)
    assert model.architecture_choice_.architecture == "mlp"
    assert model.architecture_choice_.reason == "partial_fit trains a network chunk by chunk"
