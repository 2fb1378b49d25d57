"""The estimator's options: networks, training, second stage, clusterers, refinement."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from torch import nn

from skdeepcluster import (
    MLP,
    AutoencoderKMeans,
    ConvAutoencoder,
    ConvNet,
    ImageAugment,
    MLPAutoencoder,
    NeighborEmbedding,
)
from skdeepcluster.metrics import cluster_accuracy
from skdeepcluster.refine import DEC, IDEC, KMeansLoss
from skdeepcluster.training import GradientNormClipping, LRScheduler

from ._trained import check_trained
from .conftest import FAST


def make(**params):
    return AutoencoderKMeans(**{"n_clusters": 3, "random_state": 0, **FAST, **params})


@pytest.fixture(scope="module")
def small_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=4, return_X_y=True)
    return X[:300] / 16.0, y[:300]


# ------------------------------------------------------------- networks
@pytest.mark.parametrize("image_shape", [(1, 8, 8), (8, 8), (1, -1, 8), (4, 4, 4)])
def test_conv_architecture(small_digits, image_shape):
    X, y = small_digits
    model = AutoencoderKMeans(
        n_clusters=4, image_shape=image_shape, architecture=ConvNet((8, 16)), latent_dim=4,
        epochs=3, random_state=0,
    ).fit(X)
    assert isinstance(model.autoencoder_, ConvAutoencoder)
    assert model.reconstruct(X[:5]).shape == (5, 64)
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_architecture_choice(small_digits):
    X, _ = small_digits
    mlp = make(image_shape=(1, 8, 8), architecture="mlp").fit(X)
    assert isinstance(mlp.autoencoder_, MLPAutoencoder)
    with pytest.raises(ValueError, match="image_shape"):
        make(architecture="conv").fit(X)


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 7, 7), (2, -1, -1), (1, 0, 64), "8x8"])
def test_wrong_image_shape(small_digits, image_shape):
    X, _ = small_digits
    model = make(image_shape=image_shape)
    with pytest.raises((ValueError, TypeError), match="image_shape"):
        model.fit(X)
    assert not hasattr(model, "labels_")


@pytest.mark.parametrize(
    "options",
    [
        dict(architecture=MLP((32, 16), activation="tanh", output_activation="sigmoid")),
        dict(architecture=MLP((32, 16), activation="leaky_relu", dropout=0.2, batch_norm=True)),
        dict(architecture=MLP((32, 16), activation="gelu"), loss="l1", optimizer="adamw"),
        dict(optimizer="sgd", learning_rate=0.01, loss="huber"),
    ],
)
def test_network_and_training_options(blobs, options):
    X, _ = blobs
    model = make(**options).fit(X)
    assert np.isfinite(model.history_["train_loss"]).all()
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_dropout_and_noise_are_off_at_transform(blobs):
    X, _ = blobs
    model = make(architecture=MLP((32, 16), dropout=0.5), noise=0.5, noise_type="gaussian").fit(X)
    np.testing.assert_array_equal(model.transform(X), model.transform(X))
    model = make(noise=0.5, noise_type="mask").fit(X)
    np.testing.assert_array_equal(model.transform(X), model.transform(X))


def test_noise_changes_training(blobs):
    X, _ = blobs
    clean = make().fit(X).history_["train_loss"]
    noisy = make(noise=0.5).fit(X).history_["train_loss"]
    assert clean != noisy
    with pytest.raises(ValueError, match="noise"):
        make(noise=1.0, noise_type="mask").fit(X)


# ------------------------------------------------------ custom module
class TinyAutoencoder(nn.Module):
    """A user-defined autoencoder following the encode/decode contract."""

    def __init__(self, n_features, width=8, latent=2):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, latent))
        self.dec = nn.Sequential(nn.Linear(latent, width), nn.ReLU(), nn.Linear(width, n_features))

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x):
        return self.decode(self.encode(x))


def test_custom_module_class(blobs, train_seed):
    X, y = blobs
    module_kwargs = {"width": 16, "latent": 3}
    model = make(random_state=train_seed, module=TinyAutoencoder, module_kwargs=module_kwargs)
    model.fit(X)
    assert isinstance(model.autoencoder_, TinyAutoencoder)
    assert model.transform(X).shape == (X.shape[0], 3)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.893, max 1, mean 0.971 ± 0.033
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.85)
    # clone, pickle and grid search keep working
    assert clone(model).get_params()["module"] is TinyAutoencoder
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    grid = GridSearchCV(model, {"module_kwargs": [{"latent": 2}, {"latent": 3}]}, cv=2).fit(X)
    assert grid.best_params_["module_kwargs"]["latent"] in (2, 3)


def test_custom_module_instance_is_not_trained_in_place(blobs):
    X, _ = blobs
    net = TinyAutoencoder(X.shape[1])
    before = [p.detach().clone() for p in net.parameters()]
    model = make(module=net).fit(X)
    assert model.autoencoder_ is not net
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert clone(model).get_params()["module"] is not net  # clone deep-copies it
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_bad_custom_module(blobs):
    X, _ = blobs

    class NoEncode(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="encode"):
        make(module=NoEncode()).fit(X)


# ------------------------------------------------------ early stopping
def test_validation_and_early_stopping(blobs):
    X, _ = blobs
    model = make(epochs=200, validation_fraction=0.2, n_iter_no_change=3, tol=1e-2).fit(X)
    history = model.history_
    assert len(history["val_loss"]) == model.n_iter_ < 200
    assert history["best_epoch"] == int(np.argmin(history["val_loss"]))
    # the restored weights are the best ones: their validation loss is the minimum
    assert np.isfinite(history["val_loss"]).all()


def test_validation_fraction_too_large(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="validation_fraction"):
        make(n_clusters=2, validation_fraction=0.999).fit(X[:10])


# --------------------------------------------------------- second stage
class Doubler(TransformerMixin, BaseEstimator):
    """A custom transformer: keeps the first two dimensions, doubled."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return 2 * np.asarray(X)[:, :2]


@pytest.mark.parametrize("reducer", [PCA(n_components=2), Doubler()])
def test_reducer(blobs, reducer, train_seed):
    X, y = blobs
    model = make(random_state=train_seed, reducer=reducer).fit(X)
    assert model.transform(X).shape == (X.shape[0], 2)
    assert model.reducer_ is not reducer  # cloned
    assert not hasattr(reducer, "n_features_in_") and not hasattr(reducer, "components_")
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.853, max 1, mean 0.966 ± 0.047
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.75)


def test_umap_reducer(blobs, train_seed):
    umap = pytest.importorskip("umap")
    X, y = blobs
    reducer = umap.UMAP(n_components=2, n_neighbors=10, n_epochs=50)
    model = make(random_state=train_seed, reducer=reducer).fit(X)
    assert model.transform(X[:7]).shape == (7, 2)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.733, max 1, mean 0.942 ± 0.096
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.6)


@pytest.mark.parametrize(
    "reducer", [PCA(n_components=2, whiten=True), NeighborEmbedding(n_components=2), Doubler()]
)
def test_refine_with_a_non_affine_reducer_is_rejected(blobs, reducer):
    X, _ = blobs
    model = make(reducer=reducer, refine=IDEC(epochs=3))
    with pytest.raises(ValueError, match="cannot be combined with reducer"):
        model.fit(X)
    assert not hasattr(model, "labels_")
    # refine='auto' steps aside instead: no refinement through a non-affine reducer.
    model = make(reducer=reducer, refine="auto").fit(X)
    assert "refine_loss" not in model.history_


@pytest.mark.parametrize(
    "strategy, match",
    [
        (IDEC(gamma=-1), "gamma"),
        (IDEC(epochs=0), "epochs"),
        (DEC(learning_rate=0), "learning_rate"),
        (DEC(update_interval=0), "update_interval"),
        (KMeansLoss(lambda_=-1), "lambda_"),
        (KMeansLoss(tol=-0.1), "tol"),
    ],
)
def test_bad_refinement_strategy_is_rejected_at_fit(blobs, strategy, match):
    X, _ = blobs
    model = make(refine=strategy)  # no validation in __init__, as in scikit-learn
    with pytest.raises(ValueError, match=match):
        model.fit(X)
    assert not hasattr(model, "labels_")


# ------------------------------------------------------------ clusterers
@pytest.mark.parametrize(
    "clusterer",
    ["gmm", GaussianMixture(covariance_type="diag"), KMeans(n_init=3), AgglomerativeClustering()],
)
def test_clusterers(blobs, clusterer, train_seed):
    X, y = blobs
    model = make(random_state=train_seed, clusterer=clusterer).fit(X)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.927, max 1, mean 0.989 ± 0.016
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.9)
    assert model.cluster_centers_.shape == (3, FAST["latent_dim"])
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    if not isinstance(clusterer, str):
        assert model.clusterer_ is not clusterer  # cloned, n_clusters set from the estimator
        assert model.clusterer_.get_params().get(
            "n_clusters", model.clusterer_.get_params().get("n_components")
        ) == 3


# ------------------------------------------------------------ refinement
REFINE = {"kmeans": KMeansLoss, "dec": DEC, "idec": IDEC}


@pytest.mark.parametrize("refine", ["kmeans", "dec", "idec"])
@pytest.mark.parametrize("reducer", ["auto", PCA(n_components=2)], ids=["no-reducer", "pca"])
def test_refinement_is_consistent(small_digits, refine, reducer, train_seed):
    X, y = small_digits
    strategy = REFINE[refine](epochs=10)
    model = AutoencoderKMeans(
        n_clusters=4, architecture=MLP((64,)), latent_dim=5, epochs=20, batch_size=32,
        refine=strategy, reducer=reducer, random_state=train_seed,
    ).fit(X)
    assert model.reducer_ is None if reducer == "auto" else isinstance(model.reducer_, PCA)
    assert model.get_params()["refine"] is strategy  # the parameter is not refitted ...
    assert strategy.get_params() == REFINE[refine](epochs=10).get_params()  # ... nor changed
    history = model.history_
    assert len(history["refine_loss"]) >= 1
    assert np.isfinite(history["refine_loss"]).all()
    assert np.isfinite(model.cluster_centers_).all()
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    embedding = model.transform(X)
    d = ((embedding[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(d.argmin(1), model.labels_)
    assert model.inertia_ == pytest.approx(d.min(1).sum())
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.577, max 0.907, mean 0.82 ± 0.084
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.45)  # 4 digits: chance is 0.3


def test_refinement_improves_kmeans_objective_on_its_loss(small_digits):
    X, _ = small_digits
    model = AutoencoderKMeans(
        n_clusters=4, architecture=MLP((64,)), latent_dim=5, epochs=20,
        refine=KMeansLoss(epochs=15, tol=0), random_state=0,
    ).fit(X)
    loss = model.history_["refine_loss"]
    assert loss[-1] < loss[0] * 1.5  # warm-up raises the weight; it must not blow up
    assert np.isfinite(loss).all()


def test_refinement_same_seed_same_labels(small_digits):
    X, _ = small_digits
    params = dict(n_clusters=4, architecture=MLP((32,)), latent_dim=4, epochs=5,
                  refine=IDEC(epochs=5), random_state=3)
    a = AutoencoderKMeans(**params).fit(X)
    b = AutoencoderKMeans(**params).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_)


def test_refinement_needs_kmeans_and_affine_second_stage(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="clusterer='kmeans'"):
        make(refine="dec", clusterer="gmm").fit(X)
    with pytest.raises(ValueError, match="reducer"):
        make(refine="kmeans", reducer=Doubler()).fit(X)


def test_refinement_with_diverging_learning_rate_stays_finite(small_digits):
    X, _ = small_digits
    model = AutoencoderKMeans(
        n_clusters=4, architecture=MLP((32,)), latent_dim=4, epochs=3,
        refine=KMeansLoss(lambda_=1e6, learning_rate=1e6, epochs=10), optimizer="sgd",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert np.isfinite(model.transform(X)).all()
    np.testing.assert_array_equal(model.predict(X), model.labels_)


# --------------------------------------------------- augmentation, schedules
def test_augment_trains_on_shifted_images(small_digits):
    X, _ = small_digits
    # Pre-training's augmentation (self-labelling's, the same object, has its own tests).
    params = dict(image_shape=(1, 8, 8), epochs=3, self_label=False)  # FAST's small MLP
    plain = make(**params).fit(X)
    augmented = make(**params, augment=ImageAugment(0.15)).fit(X)
    again = make(**params, augment=ImageAugment(0.15)).fit(X)
    np.testing.assert_array_equal(augmented.labels_, again.labels_)  # seeded
    assert augmented.history_["train_loss"] != plain.history_["train_loss"]
    # transform and predict see the images as given.
    np.testing.assert_array_equal(augmented.transform(X), augmented.transform(X))
    np.testing.assert_array_equal(augmented.predict(X), augmented.labels_)


def test_augment_needs_image_shape(blobs):
    with pytest.raises(ValueError, match="needs image_shape"):
        make(augment=ImageAugment(0.1)).fit(blobs[0])
    with pytest.raises(ValueError, match="shift"):
        make(augment=ImageAugment(0.6)).fit(blobs[0])  # more than half the image


def test_lr_schedule_is_passed_to_pretraining(blobs):
    scheduler = LRScheduler("cosine")
    model = make(callbacks=[scheduler], epochs=4).fit(blobs[0])
    assert len(model.history_["train_loss"]) == 4
    assert model.get_params()["callbacks"][0] is scheduler
    assert not hasattr(scheduler, "scheduler_")  # the fit worked on a copy
    # partial_fit keeps the learning rate constant (one epoch per call).
    model = make(callbacks=[scheduler]).partial_fit(blobs[0]).partial_fit(blobs[0])
    assert model._optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_refinement_strategy_params_are_grid_searchable(small_digits):
    X, _ = small_digits
    model = AutoencoderKMeans(
        n_clusters=4, architecture=MLP((16,)), latent_dim=3, epochs=2,
        refine=IDEC(epochs=2), random_state=0,
    )
    assert model.get_params()["refine__gamma"] == 1.0
    grid = GridSearchCV(model, {"refine__gamma": [0.1, 1.0]}, cv=2).fit(X)
    assert grid.best_params_["refine__gamma"] in (0.1, 1.0)
    assert grid.best_estimator_.refine.gamma == grid.best_params_["refine__gamma"]
    assert model.refine.gamma == 1.0  # the search worked on clones


@pytest.mark.parametrize("refine", ["kmeans", "dec", "idec"])
def test_refine_shortcut_strings(blobs, refine):
    model = make(refine=refine, callbacks=[GradientNormClipping(1.0)]).fit(blobs[0])
    assert model.reducer_ is None  # an explicit refinement: no neighbour embedding
    assert len(model.history_["refine_loss"]) >= 1
    assert model.refine == refine


def test_gradient_clipping_callback_acts_in_pretraining_and_refinement(small_digits):
    X, _ = small_digits
    params = dict(n_clusters=4, architecture=MLP((32,)), latent_dim=4, epochs=3,
                  refine=KMeansLoss(epochs=3), random_state=0)
    plain = AutoencoderKMeans(**params).fit(X)
    clipped = AutoencoderKMeans(**params, callbacks=[GradientNormClipping(1e-3)]).fit(X)
    assert clipped.history_["train_loss"] != plain.history_["train_loss"]
    assert clipped.history_["refine_loss"] != plain.history_["refine_loss"]
    pretrain_only = AutoencoderKMeans(
        **params, callbacks=[GradientNormClipping(1e-3, stage="pretrain")]
    ).fit(X)
    assert pretrain_only.history_["train_loss"] == clipped.history_["train_loss"]
