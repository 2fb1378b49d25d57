"""``architecture='none'``: the second stage and the clusterer on the input itself."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from skdeepcluster import AutoencoderKMeans, IdentityAutoencoder, ImageAugment, NeighborEmbedding

from ._trained import check_trained


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, n_features=6, centers=3, random_state=0)
    return X, y


def test_auto_on_small_data_fits_no_network_and_clusters_the_input(blobs, train_seed):
    X, y = blobs
    model = AutoencoderKMeans(3, device="cpu", random_state=train_seed).fit(X)
    assert model.architecture_ == "none"
    assert isinstance(model.autoencoder_, IdentityAutoencoder)
    assert model.n_iter_ == 0 and model.history_["train_loss"] == []
    assert isinstance(model.reducer_, NeighborEmbedding)
    assert model.transform(X).shape == (300, 6)  # at least 10 dimensions, at most the 6 features
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # The scaler sees the input features themselves (the codes are the input).
    np.testing.assert_allclose(model.scaler_.mean_, X.mean(axis=0), rtol=1e-5, atol=1e-5)
    from skdeepcluster.metrics import cluster_accuracy

    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(cluster_accuracy(y, model.labels_), "==", 1.0)


def test_fit_transform_equals_fit_then_transform(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(3, device="cpu", random_state=0)
    embedding = model.fit_transform(X)
    np.testing.assert_array_equal(embedding, model.transform(X))


def test_none_with_no_reducer_is_kmeans_on_the_standardized_input(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(3, architecture="none", reducer=None, device="cpu", random_state=0)
    model.fit(X)
    assert model.architecture_ == "none" and model.n_iter_ == 0
    Z = StandardScaler().fit_transform(X)
    reference = KMeans(3, n_init=10, random_state=0).fit(Z)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-4)


def test_reconstruct_is_the_input_and_the_model_pickles(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(3, architecture="none", reducer=None, device="cpu").fit(X)
    np.testing.assert_allclose(model.reconstruct(X[:5]), X[:5], rtol=1e-6)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


@pytest.mark.parametrize(
    "params, name",
    [({"augment": ImageAugment(0.1), "image_shape": (1, 2, 3)}, "augment"),
     ({"noise": 0.2}, "noise"), ({"refine": "idec", "reducer": None}, "refine")],
)
def test_none_refuses_what_only_a_network_can_use(blobs, params, name):
    X, _ = blobs
    model = AutoencoderKMeans(3, architecture="none", device="cpu", **params)
    with pytest.raises(ValueError, match=f"{name}=.*architecture='none' trains none"):
        model.fit(X)
    assert not hasattr(model, "labels_")


def test_explicit_epochs_train_the_network_on_small_data(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(3, epochs=2, device="cpu", random_state=0).fit(X)
    assert model.architecture_ == "mlp" and model.n_iter_ == 2


def test_partial_fit_without_a_network_refits_the_second_stage(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(3, architecture="none", device="cpu", random_state=0)
    model.partial_fit(X[:150]).partial_fit(X[150:])
    assert model.architecture_ == "none" and model.n_iter_ == 0
    assert model.predict(X).shape == (300,)


def test_warm_start_after_a_fit_without_network_trains_a_fresh_one(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(3, device="cpu", random_state=0).fit(X)
    assert model.architecture_ == "none"
    model.set_params(warm_start=True, epochs=1).fit(X)
    assert model.architecture_ == "mlp" and model.n_iter_ == 1
    assert any(p.requires_grad for p in model.autoencoder_.parameters())


def test_identity_autoencoder_has_no_weights():
    ae = IdentityAutoencoder(4)
    x = torch.randn(3, 4)
    assert list(ae.parameters()) == []
    assert torch.equal(ae.encode(x), x) and torch.equal(ae.decode(x), x) and torch.equal(ae(x), x)
    with pytest.raises(ValueError):
        IdentityAutoencoder(0)
