"""Plots for deep clustering results.

Five functions cover the usual figures of a deep-clustering study:

* :func:`plot_embedding` -- the learned embedding in 2-D, coloured by cluster;
* :func:`plot_reconstructions` -- inputs over their autoencoder reconstructions;
* :func:`plot_cluster_montage` -- sample images of every cluster;
* :func:`plot_loss_curve` -- training (and validation, refinement) losses;
* :func:`plot_confusion_matrix` -- classes against Hungarian-matched clusters.

Like scikit-learn's displays, each function takes an optional ``ax`` (or
``fig`` for multi-panel figures) to draw on and returns what it drew on.

matplotlib is an optional dependency, imported only when a function is
called; install it with ``pip install "skdeepcluster[plot]"``.

Over 600 lines for a reason: one public function per plot, each with its
numpydoc and a doctest, sharing the helpers at the top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from .metrics import _check_labels, _fill_doc, _matching, cluster_accuracy

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

__all__ = [
    "plot_cluster_montage",
    "plot_confusion_matrix",
    "plot_embedding",
    "plot_loss_curve",
    "plot_reconstructions",
]

#: Above this many distinct labels, colours come from a colour bar instead of a legend.
_MAX_LEGEND_ENTRIES = 20

_EMBEDDING_METHODS = ("auto", "pca", "tsne", "none")

#: Docstring parts that the plotting functions share: their ``%(name)s`` lines are
#: filled in at the end of this module (see ``_fill_doc``).
_plot_doc = _fill_doc(
    ax="ax : matplotlib Axes, optional\n    Axes to draw on; a new figure is created when None.",
    fig="fig : matplotlib Figure or SubFigure, optional\n"
    "    Empty figure to draw on; a new one is created when None.",
    # Examples draw off screen, so that they run anywhere (doctests included).
    example_setup='>>> import matplotlib\n>>> matplotlib.use("Agg")\n'
    ">>> import matplotlib.pyplot as plt",
)


# --------------------------------------------------------------------- helpers
def _pyplot():
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "skdeepcluster.plotting requires matplotlib, which is not installed. "
            'Install it with: pip install "skdeepcluster[plot]"'
        ) from exc
    return plt


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return int(value)


def _is_estimator(obj: Any) -> bool:
    return hasattr(obj, "fit") and hasattr(obj, "get_params")


def _new_or_empty_figure(fig, plt, figsize: tuple[float, float]):
    """A new constrained-layout figure, or ``fig`` after checking it is empty."""
    if fig is None:
        return plt.figure(figsize=figsize, layout="constrained")
    if not hasattr(fig, "subplots") or not hasattr(fig, "axes"):
        raise TypeError(f"fig must be a matplotlib Figure or SubFigure, got {type(fig).__name__}.")
    if fig.axes:
        raise ValueError(
            f"fig must be empty, but it already holds {len(fig.axes)} axes; "
            "pass a new figure (or call fig.clear() first)."
        )
    return fig


def _resolve_image_shape(image_shape, n_features: int) -> tuple[int, int, int] | None:
    """``(C, H, W)`` for rows of ``n_features`` values, or None if it cannot be guessed.

    ``image_shape`` may be ``(C, H, W)`` or ``(H, W)`` with at most one ``-1``
    entry. When it is None, a square single-channel image is assumed if
    ``n_features`` is a perfect square (at least 2 x 2).
    """
    if image_shape is None:
        side = math.isqrt(n_features)
        return (1, side, side) if side >= 2 and side * side == n_features else None
    from ._networks import resolve_image_shape

    shape = resolve_image_shape(image_shape, n_features)
    if shape[0] not in (1, 3):
        raise ValueError(
            f"Only 1 (grayscale) or 3 (RGB) channels can be displayed; image_shape="
            f"{image_shape!r} has {shape[0]} channels."
        )
    return shape


def _bare(ax) -> None:
    """Hide ticks and spines but keep the axis labels visible."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _show_image(ax, row: np.ndarray, shape: tuple[int, int, int], lo: float, hi: float):
    """Draw one flattened ``(C, H, W)`` image on ``ax`` with intensities in ``[lo, hi]``."""
    img = np.asarray(row, dtype=np.float64).reshape(shape)
    if shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    else:
        span = hi - lo if hi > lo else 1.0
        rgb = np.clip((img.transpose(1, 2, 0) - lo) / span, 0.0, 1.0)
        ax.imshow(rgb, interpolation="nearest")
    _bare(ax)


def _value_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _reconstruct(estimator, X) -> np.ndarray:
    """Reconstructions of ``X``: ``estimator.reconstruct`` or the autoencoder directly."""
    if hasattr(estimator, "reconstruct"):
        return np.asarray(estimator.reconstruct(X), dtype=np.float64)
    raise TypeError(
        f"{type(estimator).__name__} has no reconstruct method; pass a fitted "
        "AutoencoderKMeans."
    )


def _is_categorical(labels: np.ndarray, n_unique: int) -> bool:
    if n_unique > _MAX_LEGEND_ENTRIES:
        return False
    if labels.dtype.kind in "fc":
        return bool(np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)))
    return True


# ------------------------------------------------------------------ embedding
def plot_embedding(
    embedding_or_estimator: Any,
    X: ArrayLike | None = None,
    *,
    labels: ArrayLike | None = None,
    method: str = "auto",
    ax: Axes | None = None,
    random_state: int | np.random.RandomState | None = None,
    max_points: int = 5000,
    **scatter_kwargs: Any,
) -> Axes:
    """Scatter plot of an embedding in 2-D, coloured by cluster.

    Parameters
    ----------
    embedding_or_estimator : array-like of shape (n_samples, n_dims) or estimator
        Either an embedding, or a fitted estimator with ``transform`` (e.g.
        :class:`~skdeepcluster.AutoencoderKMeans`), which then embeds ``X``.
    X : array-like of shape (n_samples, n_features), optional
        Data to embed; required with an estimator, must be None with an
        embedding.
    labels : array-like of shape (n_samples,), optional
        Colour of each point. With an estimator it defaults to
        ``estimator.predict(X)``; otherwise points get one colour. Up to 20
        distinct (integer or string) labels get a legend, more or continuous
        values a colour bar.
    method : {'auto', 'pca', 'tsne', 'none'}, default='auto'
        Reduction to 2-D: :class:`~sklearn.decomposition.PCA`,
        :class:`~sklearn.manifold.TSNE`, or ``'none'`` (plot the first two
        dimensions). ``'auto'`` is ``'none'`` for embeddings with at most two
        dimensions and ``'pca'`` otherwise. A 1-D embedding is drawn on a line.
    %(ax)s
    random_state : int, RandomState instance or None, default=None
        Seeds t-SNE and the subsampling (which uses seed 0 when None, so the
        same points are always shown).
    max_points : int, default=5000
        Above this many samples a random subset of that size is drawn.
    **scatter_kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter` for the samples
        (e.g. ``s``, ``alpha``, ``marker``); colours come from ``labels``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Notes
    -----
    When an estimator with ``cluster_centers_`` in its embedding space is
    given, the centres are drawn as black crosses, projected with the same
    PCA. t-SNE has no mapping for new points, so centres are not drawn then.

    Examples
    --------
    %(example_setup)s
    >>> from sklearn.datasets import make_blobs
    >>> from skdeepcluster.plotting import plot_embedding
    >>> Z, y = make_blobs(n_samples=100, centers=3, n_features=5, random_state=0)
    >>> ax = plot_embedding(Z, labels=y)
    >>> ax.get_xlabel()
    'PC 1 (...%)'
    >>> len(ax.collections)  # one scatter per label
    3
    >>> plt.close("all")
    """
    plt = _pyplot()
    if method not in _EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {_EMBEDDING_METHODS}, got {method!r}.")
    max_points = _check_positive_int(max_points, "max_points")
    embedding, labels, centers, legend_title = _embedding_inputs(
        embedding_or_estimator, X, labels
    )
    n_dims = embedding.shape[1]
    if embedding.shape[0] > max_points:
        rng = check_random_state(0 if random_state is None else random_state)
        keep = np.sort(rng.choice(embedding.shape[0], size=max_points, replace=False))
        embedding = embedding[keep]
        labels = labels[keep] if labels is not None else None
    if method == "auto":
        method = "none" if n_dims <= 2 else "pca"
    points, centers, axis_labels = _project_2d(embedding, centers, method, random_state)

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    kwargs = {"s": 12 if len(points) <= 2000 else 4, "alpha": 0.8, "linewidths": 0}
    kwargs.update(scatter_kwargs)
    _scatter_by_label(ax, plt, points, labels, legend_title, kwargs)
    if centers is not None:
        ax.scatter(
            centers[:, 0],
            centers[:, 1],
            marker="X",
            s=160,
            c="black",
            edgecolors="white",
            linewidths=1.5,
            label="centres",
            zorder=3,
        )
    _add_legend(ax, legend_title)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if n_dims == 1 and method == "none":
        ax.set_yticks([])
    return ax


def _embedding_inputs(embedding_or_estimator: Any, X, labels):
    """The embedding, labels (or None), centres (or None) and legend title to plot."""
    centers = None
    legend_title = "label"
    if _is_estimator(embedding_or_estimator):
        estimator = embedding_or_estimator
        check_is_fitted(estimator)
        if X is None:
            raise ValueError("X is required when an estimator is given: it is the data to embed.")
        embedding = check_array(estimator.transform(X), dtype=np.float64)
        if labels is None:
            labels = estimator.predict(X)
            legend_title = "cluster"
        centers = getattr(estimator, "cluster_centers_", None)
        if centers is not None:
            centers = np.asarray(centers, dtype=np.float64)
            if centers.ndim != 2 or centers.shape[1] != embedding.shape[1]:
                centers = None  # not in the embedding space; nothing sensible to draw
    else:
        if X is not None:
            raise ValueError(
                "X must be None when an embedding is given; pass a fitted estimator "
                "as the first argument to embed X."
            )
        embedding = check_array(embedding_or_estimator, dtype=np.float64, input_name="embedding")
    if labels is not None:
        labels = column_or_1d(labels, warn=False)
        if labels.shape[0] != embedding.shape[0]:
            raise ValueError(
                f"labels has {labels.shape[0]} entries but the embedding has "
                f"{embedding.shape[0]} samples."
            )
    return embedding, labels, centers, legend_title


def _project_2d(embedding: np.ndarray, centers, method: str, random_state):
    """Points and centres (or None) in 2-D by ``method``, with the two axis labels."""
    if method == "none":  # a 1-D embedding is drawn on the line y = 0
        centers = _first_two(centers) if centers is not None else None
        return _first_two(embedding), centers, ("dim 1", "dim 2" if embedding.shape[1] > 1 else "")
    if method == "pca":
        if embedding.shape[1] < 2:
            raise ValueError("method='pca' needs an embedding with at least 2 dimensions.")
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, svd_solver="full").fit(embedding)
        centers = pca.transform(centers) if centers is not None else None
        ratio = pca.explained_variance_ratio_
        axis_labels = (f"PC 1 ({ratio[0]:.0%})", f"PC 2 ({ratio[1]:.0%})")
        return pca.transform(embedding), centers, axis_labels
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max((len(embedding) - 1) / 3.0, 1.0))
    if len(embedding) <= perplexity:
        raise ValueError(f"method='tsne' needs at least 3 samples, got {len(embedding)}.")
    points = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=random_state
    ).fit_transform(embedding)
    return points, None, ("t-SNE 1", "t-SNE 2")  # t-SNE cannot place new points


def _first_two(points: np.ndarray) -> np.ndarray:
    """The first two columns of ``points``, with zeros as the second when there is one."""
    if points.shape[1] >= 2:
        return points[:, :2]
    return np.column_stack([points[:, 0], np.zeros(len(points))])


def _scatter_by_label(ax, plt, points: np.ndarray, labels, legend_title: str, kwargs) -> None:
    """One scatter per label (up to 20 categories), else one coloured by a colour bar."""
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], **kwargs)
        return
    classes, codes = np.unique(labels, return_inverse=True)
    if _is_categorical(labels, len(classes)):
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, value in enumerate(classes):
            mask = codes == i
            ax.scatter(points[mask, 0], points[mask, 1], color=cmap(i), label=str(value), **kwargs)
    else:
        values = labels if labels.dtype.kind in "iufb" else codes
        mappable = ax.scatter(points[:, 0], points[:, 1], c=values, cmap="viridis", **kwargs)
        ax.figure.colorbar(mappable, ax=ax, label=legend_title)


def _add_legend(ax, title: str) -> None:
    """A legend for the labelled artists, with uniform, readable markers."""
    if not ax.get_legend_handles_labels()[1]:
        return
    legend = ax.legend(title=title, fontsize="small", loc="best")
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=False):
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([60 if text.get_text() == "centres" else 25])


# ------------------------------------------------------------- reconstructions
def plot_reconstructions(
    estimator: Any,
    X: ArrayLike,
    *,
    image_shape: tuple[int, ...] | None = None,
    n: int = 8,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Inputs (top row) over their autoencoder reconstructions (bottom row).

    Parameters
    ----------
    estimator : estimator
        A fitted :class:`~skdeepcluster.AutoencoderKMeans` (or any fitted
        estimator with ``reconstruct(X)``).
    X : array-like of shape (n_samples, n_features)
        Data; its first ``n`` rows are shown.
    image_shape : tuple of int, optional
        ``(C, H, W)`` or ``(H, W)`` of a row of ``X`` (1 or 3 channels). By
        default ``estimator.image_shape`` when set, else a square grayscale
        image when ``n_features`` is a perfect square; otherwise every sample
        is drawn as a line plot of its features.
    n : int, default=8
        Number of samples (columns); clipped to ``n_samples``.
    %(fig)s

    Returns
    -------
    fig : matplotlib Figure or SubFigure
        The figure drawn on, with ``2 * n`` axes.

    Examples
    --------
    %(example_setup)s
    >>> from sklearn.datasets import load_digits
    >>> from skdeepcluster import MLP, AutoencoderKMeans
    >>> from skdeepcluster.plotting import plot_reconstructions
    >>> X = load_digits().data[:100] / 16.0
    >>> model = AutoencoderKMeans(n_clusters=3, architecture=MLP((16,)), latent_dim=2,
    ...                           epochs=2, n_init=1, random_state=0).fit(X)
    >>> fig = plot_reconstructions(model, X, image_shape=(1, 8, 8), n=4)
    >>> len(fig.axes)
    8
    >>> plt.close("all")
    """
    plt = _pyplot()
    n = _check_positive_int(n, "n")
    check_is_fitted(estimator)
    X_array = check_array(X, dtype=[np.float64, np.float32])
    n_samples, n_features = X_array.shape
    n = min(n, n_samples)
    if image_shape is None:
        image_shape = getattr(estimator, "image_shape", None)
    shape = _resolve_image_shape(image_shape, n_features)

    originals = X_array[:n].astype(np.float64)
    recon = _reconstruct(estimator, _safe_indexing(X, np.arange(n)))
    if recon.shape != originals.shape:
        raise ValueError(f"Reconstructions have shape {recon.shape}, expected {originals.shape}.")

    fig = _new_or_empty_figure(fig, plt, (max(1.2 * n + 1.0, 3.0), 2.8))
    axes = fig.subplots(2, n, squeeze=False)
    if shape is not None:
        lo, hi = _value_range(originals)
        for j in range(n):
            _show_image(axes[0, j], originals[j], shape, lo, hi)
            _show_image(axes[1, j], recon[j], shape, lo, hi)
    else:
        lo, hi = _value_range(np.concatenate([originals, recon]))
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        for j in range(n):
            axes[0, j].plot(originals[j], color="C0", linewidth=1)
            axes[1, j].plot(recon[j], color="C1", linewidth=1)
            for ax in axes[:, j]:
                ax.set_ylim(lo - pad, hi + pad)
                ax.set_xticks([])
                if j:
                    ax.set_yticks([])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    return fig


# ------------------------------------------------------------------- montage
def plot_cluster_montage(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    image_shape: tuple[int, ...] | None = None,
    n_per_cluster: int = 8,
    random_state: int | np.random.RandomState | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Grid of sample images: one row per cluster.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Flattened images.
    labels : array-like of shape (n_samples,)
        Cluster of each sample (e.g. ``model.labels_``).
    image_shape : tuple of int, optional
        ``(C, H, W)`` or ``(H, W)`` of a row of ``X``; 1 channel is drawn in
        gray, 3 as RGB. Defaults to a square grayscale image, which requires
        ``n_features`` to be a perfect square.
    n_per_cluster : int, default=8
        Images per row, drawn at random from the cluster without replacement
        (fewer when the cluster is smaller).
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of images.
    %(fig)s

    Returns
    -------
    fig : matplotlib Figure or SubFigure
        The figure, with ``n_clusters * n_per_cluster`` axes. Each row is
        labelled ``"cluster k (n=size)"``; all images share one intensity
        scale.

    Examples
    --------
    %(example_setup)s
    >>> from sklearn.datasets import load_digits
    >>> from skdeepcluster.plotting import plot_cluster_montage
    >>> X, y = load_digits(n_class=3, return_X_y=True)
    >>> fig = plot_cluster_montage(X, y, image_shape=(8, 8), n_per_cluster=5,
    ...                            random_state=0)
    >>> len(fig.axes)
    15
    >>> fig.axes[0].get_ylabel()
    'cluster 0\\n(n=178)'
    >>> plt.close("all")
    """
    plt = _pyplot()
    n_per_cluster = _check_positive_int(n_per_cluster, "n_per_cluster")
    X = check_array(X, dtype=[np.float64, np.float32])
    labels = column_or_1d(labels, warn=False)
    if labels.shape[0] != X.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries but X has {X.shape[0]} samples.")
    shape = _resolve_image_shape(image_shape, X.shape[1])
    if shape is None:
        raise ValueError(
            f"Cannot guess an image shape for n_features={X.shape[1]} (not a perfect "
            "square); pass image_shape=(C, H, W) or (H, W)."
        )
    rng = check_random_state(random_state)
    clusters, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    lo, hi = _value_range(X)

    fig = _new_or_empty_figure(fig, plt, (0.9 * n_per_cluster + 1.2, 0.9 * len(clusters) + 0.3))
    axes = fig.subplots(len(clusters), n_per_cluster, squeeze=False)
    for i, (cluster, count) in enumerate(zip(clusters, counts, strict=True)):
        members = np.flatnonzero(codes == i)
        chosen = np.sort(rng.choice(members, size=min(n_per_cluster, count), replace=False))
        for j, ax in enumerate(axes[i]):
            if j < len(chosen):
                _show_image(ax, X[chosen[j]], shape, lo, hi)
            else:
                ax.set_axis_off()
        axes[i, 0].set_ylabel(
            f"cluster {cluster}\n(n={count})", rotation=0, ha="right", va="center"
        )
    return fig


# ---------------------------------------------------------------- loss curve
def plot_loss_curve(
    history_or_estimator: Mapping[str, Any] | Any,
    *,
    ax: Axes | None = None,
    log_scale: bool = True,
) -> Axes:
    """Training curves: loss per epoch, with validation and refinement losses.

    Parameters
    ----------
    history_or_estimator : dict or estimator
        A history dict with ``'train_loss'`` and optionally ``'val_loss'``
        and ``'refine_loss'`` (lists of per-epoch values), or a fitted
        estimator with such a ``history_`` attribute.
    %(ax)s
    log_scale : bool, default=True
        Logarithmic loss axis (used only when every plotted loss is > 0).

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on: one line for the training loss, one for the
        validation loss when it is non-empty and, when refinement losses are
        present, one for them (continuing the epoch axis after pre-training)
        plus a dotted vertical line where refinement starts.

    Examples
    --------
    %(example_setup)s
    >>> from skdeepcluster.plotting import plot_loss_curve
    >>> history = {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4]}
    >>> ax = plot_loss_curve(history)
    >>> [line.get_label() for line in ax.get_lines()]
    ['train loss', 'validation loss']
    >>> plt.close("all")
    """
    plt = _pyplot()
    if isinstance(history_or_estimator, Mapping):
        history = history_or_estimator
    elif _is_estimator(history_or_estimator):
        check_is_fitted(history_or_estimator)
        history = getattr(history_or_estimator, "history_", None)
        if not isinstance(history, Mapping):
            raise TypeError(f"{type(history_or_estimator).__name__} has no history_ dict to plot.")
    else:
        raise TypeError(
            "history_or_estimator must be a dict of losses or a fitted estimator with "
            f"history_, got {type(history_or_estimator).__name__}."
        )

    def _losses(key: str) -> np.ndarray:
        values = history.get(key)
        if values is None:
            return np.empty(0)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"history[{key!r}] must be a 1-D sequence of losses.")
        return values

    train, val, refine = _losses("train_loss"), _losses("val_loss"), _losses("refine_loss")
    if train.size == 0 and refine.size == 0:
        raise ValueError("history has no 'train_loss' (or 'refine_loss') values to plot.")

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    n_pre = train.size
    if n_pre:
        ax.plot(np.arange(1, n_pre + 1), train, color="C0", label="train loss")
    if val.size:
        ax.plot(np.arange(1, val.size + 1), val, color="C1", label="validation loss")
    if refine.size:
        ax.plot(
            np.arange(n_pre + 1, n_pre + refine.size + 1),
            refine,
            color="C2",
            label="refinement loss",
        )
        if n_pre:
            ax.axvline(n_pre + 0.5, color="gray", linestyle=":", label="refinement starts")

    plotted = np.concatenate([train, val, refine])
    plotted = plotted[np.isfinite(plotted)]
    if log_scale and plotted.size and np.all(plotted > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    return ax


# ---------------------------------------------------------- confusion matrix
def plot_confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    ax: Axes | None = None,
    normalize: bool | str = False,
) -> Axes:
    """Annotated confusion matrix of classes against Hungarian-matched clusters.

    Clusters are matched one-to-one to classes as in
    :func:`~skdeepcluster.metrics.cluster_accuracy`, and rows and columns are
    ordered so that matched pairs lie on the diagonal; unmatched classes and
    clusters come last. The title gives the clustering accuracy.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth classes (rows).
    y_pred : array-like of shape (n_samples,)
        Cluster labels (columns, labelled with the cluster ids).
    %(ax)s
    normalize : bool or {'true', 'pred', 'all'}, default=False
        Show counts (False), or fractions over each true class (True or
        ``'true'``), each cluster (``'pred'``) or all samples (``'all'``).

    Returns
    -------
    ax : matplotlib Axes
        The axes, with one text annotation per cell.

    See Also
    --------
    skdeepcluster.metrics.match_labels : cluster labels renamed to their matched classes.

    Examples
    --------
    %(example_setup)s
    >>> from skdeepcluster.plotting import plot_confusion_matrix
    >>> ax = plot_confusion_matrix([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 0])
    >>> ax.get_title()
    'ACC = 0.833'
    >>> len(ax.texts)
    9
    >>> plt.close("all")
    """
    plt = _pyplot()
    if normalize is True:
        normalize = "true"
    if normalize not in (False, "true", "pred", "all"):
        raise ValueError(
            f"normalize must be False, True, 'true', 'pred' or 'all', got {normalize!r}."
        )
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape[:1] != y_pred.shape[:1]:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}."
        )
    y_true, y_pred = _check_labels(y_true, y_pred)
    classes, clusters, table, rows, cols = _matching(y_true, y_pred)
    row_order = np.concatenate([rows, np.setdiff1d(np.arange(len(classes)), rows)])
    col_order = np.concatenate([cols, np.setdiff1d(np.arange(len(clusters)), cols)])
    counts = table[np.ix_(row_order, col_order)]
    accuracy = cluster_accuracy(y_true, y_pred)

    if normalize == "true":
        values = counts / counts.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        values = counts / counts.sum(axis=0, keepdims=True)
    elif normalize == "all":
        values = counts / counts.sum()
    else:
        values = counts

    if ax is None:
        size = min(max(0.55 * max(values.shape) + 2.0, 4.5), 14.0)
        _, ax = plt.subplots(figsize=(size + 1.0, size), layout="constrained")
    image = ax.imshow(values, cmap="Blues", vmin=0, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax)
    threshold = values.max() / 2.0
    fmt = "{:d}" if normalize is False else "{:.2f}"
    fontsize = "medium" if max(values.shape) <= 10 else "x-small"
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            ax.text(
                j,
                i,
                fmt.format(int(value) if normalize is False else float(value)),
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if value > threshold else "black",
            )
    ax.set_xticks(np.arange(values.shape[1]), [str(c) for c in clusters[col_order]])
    ax.set_yticks(np.arange(values.shape[0]), [str(c) for c in classes[row_order]])
    ax.set_xlabel("cluster (matched pairs on the diagonal)")
    ax.set_ylabel("true class")
    ax.set_title(f"ACC = {accuracy:.3f}")
    return ax


for _function in (
    plot_embedding,
    plot_reconstructions,
    plot_cluster_montage,
    plot_loss_curve,
    plot_confusion_matrix,
):
    _plot_doc(_function)
del _function
