import importlib
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import NotFittedError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from skdeepcluster import MLP, AutoencoderKMeans, plotting  # noqa: E402
from skdeepcluster.plotting import (  # noqa: E402
    plot_cluster_montage,
    plot_confusion_matrix,
    plot_embedding,
    plot_loss_curve,
    plot_reconstructions,
)
from skdeepcluster.refine import IDEC  # noqa: E402

IMAGE_SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def small_digits():
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16.0, y[:200]


@pytest.fixture(scope="module")
def fitted(small_digits):
    X, _ = small_digits
    model = AutoencoderKMeans(
        n_clusters=3, architecture=MLP((16,)), latent_dim=2, epochs=3, refine=None,
        random_state=0,
    )
    return model.fit(X)


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


# ------------------------------------------------------------------ embedding
def test_embedding_from_estimator(fitted, small_digits):
    X, _ = small_digits
    ax = plot_embedding(fitted, X)
    assert isinstance(ax, Axes)
    n_clusters = len(np.unique(fitted.predict(X)))
    # one scatter per cluster + the centres
    assert len(ax.collections) == n_clusters + 1
    offsets = np.vstack([c.get_offsets() for c in ax.collections[:-1]])
    assert offsets.shape == (len(X), 2)
    np.testing.assert_allclose(ax.collections[-1].get_offsets(), fitted.cluster_centers_)
    legend_labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend_labels[-1] == "centres"


def test_embedding_from_estimator_with_pca_and_labels(fitted, small_digits):
    X, y = small_digits
    _, ax = plt.subplots()
    out = plot_embedding(fitted, X, labels=y, method="pca")
    assert out is not ax  # no ax given: a new figure
    out = plot_embedding(fitted, X, labels=y, method="pca", ax=ax)
    assert out is ax
    assert len(ax.collections) == len(np.unique(y)) + 1
    assert ax.get_xlabel().startswith("PC 1")


def test_embedding_array_pca_and_subsampling():
    Z, y = make_blobs(n_samples=300, centers=4, n_features=5, random_state=0)
    ax = plot_embedding(Z, labels=y, max_points=100, random_state=0)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 100
    ax2 = plot_embedding(Z, labels=y, max_points=100, random_state=0)
    a = np.vstack([c.get_offsets() for c in ax.collections])
    b = np.vstack([c.get_offsets() for c in ax2.collections])
    np.testing.assert_array_equal(a, b)  # deterministic subsample


def test_embedding_tsne_draws_no_centres(fitted, small_digits):
    X, _ = small_digits
    ax = plot_embedding(fitted, X[:40], method="tsne", random_state=0)
    assert ax.get_xlabel() == "t-SNE 1"
    assert all(c.get_label() != "centres" for c in ax.collections)


def test_embedding_colorbar_for_many_labels_and_unlabelled():
    rng = np.random.RandomState(0)
    Z = rng.normal(size=(60, 2))
    ax = plot_embedding(Z, labels=np.arange(60), s=5)
    assert len(ax.collections) == 1
    assert len(ax.figure.axes) == 2  # axes + colour bar
    ax = plot_embedding(Z)
    assert len(ax.collections) == 1
    assert ax.get_xlabel() == "dim 1"
    ax = plot_embedding(Z[:, :1], labels=np.arange(60) % 2)
    assert len(ax.collections) == 2


def test_embedding_rejects_bad_input(fitted, small_digits):
    X, _ = small_digits
    Z = np.zeros((10, 3))
    with pytest.raises(ValueError, match="labels has 9 entries"):
        plot_embedding(Z, labels=np.zeros(9))
    with pytest.raises(ValueError, match="method"):
        plot_embedding(Z, method="umap")
    with pytest.raises(ValueError, match="max_points"):
        plot_embedding(Z, max_points=0)
    with pytest.raises(TypeError, match="max_points"):
        plot_embedding(Z, max_points=2.5)
    with pytest.raises(ValueError, match="X is required"):
        plot_embedding(fitted)
    with pytest.raises(ValueError, match="X must be None"):
        plot_embedding(Z, X)
    with pytest.raises(ValueError, match="at least 2"):
        plot_embedding(Z[:, :1], method="pca")
    with pytest.raises(NotFittedError):
        plot_embedding(AutoencoderKMeans(), X)


# ------------------------------------------------------------ reconstructions
def test_reconstructions_images(fitted, small_digits):
    X, _ = small_digits
    fig = plot_reconstructions(fitted, X, image_shape=IMAGE_SHAPE, n=5)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    assert len(_image_axes(fig)) == 10
    assert fig.axes[0].get_ylabel() == "original"
    assert fig.axes[5].get_ylabel() == "reconstruction"
    top = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(top, X[0].reshape(8, 8))
    # (H, W) and a -1 entry work too, and n is clipped to n_samples
    fig = plot_reconstructions(fitted, X[:3], image_shape=(-1, 8), n=8)
    assert len(_image_axes(fig)) == 6


def test_reconstructions_default_shape_and_lines(fitted, small_digits):
    X, _ = small_digits
    fig = plot_reconstructions(fitted, X, n=2)  # 64 features: 8 x 8 guessed
    assert len(_image_axes(fig)) == 4

    Xb, _ = make_blobs(n_samples=30, n_features=5, centers=2, random_state=0)
    model = AutoencoderKMeans(
        n_clusters=2, architecture=MLP((8,)), latent_dim=2, epochs=2, random_state=0
    ).fit(Xb)
    fig = plot_reconstructions(model, Xb, n=3)  # 5 features: line plots
    assert len(fig.axes) == 6
    assert not _image_axes(fig)
    assert all(len(ax.get_lines()) == 1 for ax in fig.axes)


def test_reconstructions_on_given_figure(fitted, small_digits):
    X, _ = small_digits
    fig = plt.figure()
    assert plot_reconstructions(fitted, X, image_shape=IMAGE_SHAPE, n=2, fig=fig) is fig
    with pytest.raises(ValueError, match="fig must be empty"):
        plot_reconstructions(fitted, X, image_shape=IMAGE_SHAPE, n=2, fig=fig)


def test_reconstructions_rejects_bad_input(fitted, small_digits):
    X, _ = small_digits
    with pytest.raises(ValueError, match="n_features=64"):
        plot_reconstructions(fitted, X, image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match="channels"):
        plot_reconstructions(fitted, X, image_shape=(4, 4, 4))
    with pytest.raises(ValueError, match="n must be >= 1"):
        plot_reconstructions(fitted, X, n=0)
    with pytest.raises(TypeError, match="n must be an int"):
        plot_reconstructions(fitted, X, n="3")
    with pytest.raises(NotFittedError):
        plot_reconstructions(AutoencoderKMeans(), X)


# ------------------------------------------------------------------- montage
def test_cluster_montage(fitted, small_digits):
    X, _ = small_digits
    labels = fitted.labels_
    n_clusters = len(np.unique(labels))
    fig = plot_cluster_montage(X, labels, image_shape=IMAGE_SHAPE, n_per_cluster=4, random_state=0)
    assert isinstance(fig, Figure)
    assert len(_image_axes(fig)) == n_clusters * 4
    counts = np.bincount(labels)
    assert fig.axes[0].get_ylabel() == f"cluster 0\n(n={counts[0]})"


def test_cluster_montage_small_cluster_and_rgb():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(7, 3 * 4 * 4))
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    fig = plot_cluster_montage(X, labels, image_shape=(3, 4, 4), n_per_cluster=3)
    assert len(fig.axes) == 6
    assert len(_image_axes(fig)) == 5  # cluster 1 has only 2 samples
    assert fig.axes[0].images[0].get_array().shape == (4, 4, 3)


def test_cluster_montage_rejects_bad_input(small_digits):
    X, _ = small_digits
    with pytest.raises(ValueError, match="labels has 10 entries"):
        plot_cluster_montage(X, np.zeros(10))
    with pytest.raises(ValueError, match="n_features=64"):
        plot_cluster_montage(X, np.zeros(len(X)), image_shape=(2, 8, 8))
    with pytest.raises(ValueError, match="perfect square"):
        plot_cluster_montage(X[:, :10], np.zeros(len(X)))
    with pytest.raises(ValueError, match="n_per_cluster"):
        plot_cluster_montage(X, np.zeros(len(X)), n_per_cluster=0)


# ---------------------------------------------------------------- loss curve
def test_loss_curve_from_estimator(fitted):
    ax = plot_loss_curve(fitted)
    assert isinstance(ax, Axes)
    assert len(ax.get_lines()) == 1
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), fitted.history_["train_loss"])
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"


def test_loss_curve_with_refinement_from_estimator(small_digits):
    X, _ = small_digits
    model = AutoencoderKMeans(
        n_clusters=3, architecture=MLP((16,)), latent_dim=2, epochs=3, refine=IDEC(epochs=2),
        random_state=0,
    ).fit(X)
    ax = plot_loss_curve(model)
    # pre-training curve, refinement curve and the dotted separator between them
    assert len(ax.get_lines()) == 3
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("train" in t for t in texts) and any("refine" in t for t in texts)


def test_loss_curve_val_and_refine():
    history = {"train_loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 1.5]}
    ax = plot_loss_curve(history, log_scale=False)
    assert len(ax.get_lines()) == 2
    assert ax.get_yscale() == "linear"
    assert len(ax.get_legend().get_texts()) == 2

    history = {"train_loss": [3.0, 2.0], "val_loss": [], "refine_loss": [0.5, 0.4, 0.3]}
    _, ax = plt.subplots()
    assert plot_loss_curve(history, ax=ax) is ax
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["train loss", "refinement loss", "refinement starts"]
    np.testing.assert_array_equal(ax.get_lines()[1].get_xdata(), [3, 4, 5])


def test_loss_curve_rejects_bad_input():
    with pytest.raises(ValueError, match="train_loss"):
        plot_loss_curve({"train_loss": []})
    with pytest.raises(TypeError, match="history_or_estimator"):
        plot_loss_curve([1.0, 0.5])
    with pytest.raises(NotFittedError):
        plot_loss_curve(AutoencoderKMeans())


# ---------------------------------------------------------- confusion matrix
def test_confusion_matrix(fitted, small_digits):
    _, y = small_digits
    y3 = y % 3
    ax = plot_confusion_matrix(y3, fitted.labels_)
    assert isinstance(ax, Axes)
    k = 3
    assert len(ax.texts) == k * k
    assert ax.get_title().startswith("ACC = ")
    counts = np.array([[int(t.get_text()) for t in ax.texts]]).reshape(k, k)
    assert counts.sum() == len(y3)


def test_confusion_matrix_matching_and_normalize():
    y_true = np.array(["a", "a", "b", "b", "c", "c"])
    y_pred = np.array([5, 5, 7, 7, 9, 7])
    ax = plot_confusion_matrix(y_true, y_pred, normalize=True)
    values = ax.images[0].get_array()
    np.testing.assert_allclose(values.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(values), [1.0, 1.0, 0.5])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "7", "9"]
    assert ax.get_title() == "ACC = 0.833"
    # more clusters than classes: non-square, unmatched cluster last
    ax = plot_confusion_matrix([0, 0, 1, 1], [3, 2, 1, 1], normalize="all")
    assert ax.images[0].get_array().shape == (2, 3)
    assert len(ax.texts) == 6


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        plot_confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="normalize"):
        plot_confusion_matrix([0, 1], [0, 1], normalize="rows")


# ----------------------------------------------------------- optional import
def test_module_imports_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    module = importlib.reload(plotting)
    try:
        with pytest.raises(ImportError, match=r'pip install "skdeepcluster\[plot\]"'):
            module.plot_loss_curve({"train_loss": [1.0]})
    finally:
        monkeypatch.undo()
        importlib.reload(plotting)
