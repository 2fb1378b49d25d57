"""The second stage (scaling, PCA or any reducer) and the clustering of the codes.

These helpers take plain arrays and return fitted scikit-learn objects, so the
estimator only decides *what* to fit and keeps the results.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from ._precision import round_rows

#: From this many samples on, the fit plan runs ``clusterer='kmeans'`` as
#: :class:`MiniBatchKMeans` (see ``_plan.resolve_clusterer``).
MINIBATCH_MIN_SAMPLES = 100_000

#: Rows per mini-batch of :class:`MiniBatchKMeans` (sklearn's default is 1024;
#: larger batches give centres closer to full k-means at the same cost per row).
MINIBATCH_SIZE = 4096


#: Rows per block of ``assign_nearest`` (bounds the ``(rows, k, d)`` differences).
_ASSIGN_BLOCK_ENTRIES = 2**22


def assign_nearest(embedding: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre and the squared distance to it, per row.

    Computed as ``((x - c) ** 2).sum()`` per row and centre, in blocks of rows,
    rather than with ``euclidean_distances``' ``|x|^2 - 2 x.c + |c|^2``: that
    expansion rounds differently depending on the other rows of the batch, so
    a row near a tie between two centres could change label with the batch.
    Memory: one block of distances at a time, not ``(n_samples, n_centers)``
    (1.6 GB for the 200 fine clusters of ``clusterer='auto'`` at a million rows).
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    rows = max(1, _ASSIGN_BLOCK_ENTRIES // max(1, centers.size))
    labels = np.empty(embedding.shape[0], dtype=np.int64)
    nearest = np.empty(embedding.shape[0])
    for start in range(0, embedding.shape[0], rows):
        block = embedding[start : start + rows, None, :] - centers[None, :, :]
        sq_dist = np.einsum("nkd,nkd->nk", block, block)
        labels[start : start + rows] = np.argmin(sq_dist, axis=1)
        nearest[start : start + rows] = np.take_along_axis(
            sq_dist, labels[start : start + rows, None], axis=1
        )[:, 0]
    return labels, nearest


def _rounded(embedding, inputs) -> np.ndarray:
    """A reducer's output, each row rounded on its own grid (see ``round_rows``).

    The grid follows the largest entry of the output row and of its input row,
    so that an output that is all cancellation noise snaps to zero too.

    A reducer's matrix products round differently (by about 1e-17) depending
    on how many rows it transforms at once; the rounding makes the embedding
    of a row independent of the rest of the batch, as the codes are (see
    ``training._inference.encode_array``).
    """
    return round_rows(embedding, inputs)


def is_affine(reducer) -> bool:
    """Whether a (fitted or unfitted) reducer is affine: None, or PCA without whitening."""
    return reducer is None or (isinstance(reducer, PCA) and not reducer.whiten)


class SecondStage:
    """Fitted scaler and reducer applied to the autoencoder's codes.

    Parameters
    ----------
    scaler : StandardScaler or None
    reducer : transformer or None
        The fitted reducer (a clone of the estimator's ``reducer``).
    """

    def __init__(self, scaler: StandardScaler | None, reducer) -> None:
        self.scaler = scaler
        self.reducer = reducer

    def transform(self, codes: np.ndarray) -> np.ndarray:
        embedding = np.asarray(codes, dtype=np.float64)
        if self.scaler is not None:
            embedding = self.scaler.transform(embedding)
        if self.reducer is not None:
            embedding = _rounded(self.reducer.transform(embedding), embedding)
        return embedding

    def inverse_transform(self, embedding: np.ndarray) -> np.ndarray:
        codes = np.asarray(embedding, dtype=np.float64)
        if self.reducer is not None:
            if not hasattr(self.reducer, "inverse_transform"):
                raise AttributeError(
                    f"The reducer {type(self.reducer).__name__} has no inverse_transform, "
                    "so embeddings cannot be mapped back to codes; use reconstruct(X)."
                )
            codes = np.asarray(self.reducer.inverse_transform(codes), dtype=np.float64)
        if self.scaler is not None:
            codes = self.scaler.inverse_transform(codes)
        return codes

    @property
    def is_affine(self) -> bool:
        """Whether the map is affine (scaler and/or PCA), so refinement can run through it."""
        return is_affine(self.reducer)


def fit_second_stage(
    codes: np.ndarray,
    *,
    standardize: bool,
    reducer,
    random_state: int,
) -> tuple[SecondStage, np.ndarray]:
    """Fit the scaler and (a clone of) the reducer on ``codes``; return them and the embedding.

    The reducer's ``random_state`` is set to ``random_state`` when it is None,
    and an integer ``n_components`` of a PCA is clipped to the codes' shape.
    """
    scaler = StandardScaler().fit(codes) if standardize else None
    scaled = scaler.transform(codes) if scaler is not None else np.asarray(codes, np.float64)
    if reducer is None:
        return SecondStage(scaler, None), scaled
    fitted = clone(reducer)
    params = fitted.get_params()
    if "random_state" in params and params["random_state"] is None:
        fitted.set_params(random_state=random_state)
    if isinstance(fitted, PCA) and isinstance(params["n_components"], Integral):
        fitted.set_params(n_components=min(params["n_components"], *codes.shape))
    with warnings.catch_warnings():
        # umap-learn notes that a fixed random_state (set above) means one thread.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        embedding = np.asarray(fitted.fit_transform(scaled), dtype=np.float64)
    if embedding.ndim != 2 or embedding.shape[0] != codes.shape[0]:
        raise ValueError(
            f"The reducer {type(fitted).__name__} returned an array of shape "
            f"{embedding.shape}; expected (n_samples, n_components)."
        )
    embedding = _rounded(embedding, scaled)
    return SecondStage(scaler, fitted), embedding


def _set_if_param(estimator, name: str, value) -> None:
    if name in estimator.get_params(deep=False):
        estimator.set_params(**{name: value})


def fit_clusterer(
    embedding: np.ndarray,
    *,
    clusterer,
    n_clusters: int,
    n_init,
    random_state: int,
    init_centers: np.ndarray | None = None,
):
    """Cluster the embedding.

    ``init_centers`` (one row per cluster) warm-starts the built-in
    clusterers: k-means from those centres and the Gaussian mixture from
    those means, with a single start, so that cluster ``k`` stays cluster
    ``k`` (used by ``partial_fit``). Other clusterers ignore it.

    ``'kmeans'`` is :class:`~sklearn.cluster.KMeans` and
    ``'minibatch_kmeans'`` :class:`~sklearn.cluster.MiniBatchKMeans` (the
    plan chooses it for ``'kmeans'`` on large data).

    Returns the fitted clusterer (or None for the built-in k-means), the
    centres (mean of the embedding per cluster for clusterers that have none)
    and the labels.
    """
    if init_centers is not None and init_centers.shape != (n_clusters, embedding.shape[1]):
        init_centers = None
    start = {} if init_centers is None else {"n_init": 1}
    if isinstance(clusterer, str) and clusterer in ("kmeans", "minibatch_kmeans"):
        if init_centers is not None:
            start["init"] = init_centers
        if clusterer == "minibatch_kmeans":
            model = MiniBatchKMeans(
                n_clusters=n_clusters,
                n_init=n_init,
                batch_size=MINIBATCH_SIZE,
                random_state=random_state,
            )
        else:
            model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
        model.set_params(**start).fit(embedding)
        centers = model.cluster_centers_
        labels, _ = assign_nearest(embedding, centers)
        return None, centers, labels
    if isinstance(clusterer, str) and clusterer == "gmm":
        model = GaussianMixture(
            n_components=n_clusters,
            n_init=1 if n_init == "auto" else n_init,
            reg_covar=1e-4,
            random_state=random_state,
        )
        if init_centers is not None:
            model.set_params(means_init=init_centers, **start)
    else:
        model = clone(clusterer)
        _set_if_param(model, "n_clusters", n_clusters)
        _set_if_param(model, "n_components", n_clusters)
        if model.get_params(deep=False).get("random_state", 0) is None:
            model.set_params(random_state=random_state)
    labels = np.asarray(model.fit_predict(embedding)).astype(np.int64, copy=False)
    centers = getattr(model, "cluster_centers_", None)
    if centers is None:
        centers = getattr(model, "means_", None)
    if centers is None:
        centers = _label_means(embedding, labels)
    return model, np.asarray(centers, dtype=np.float64), labels


def _label_means(embedding: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean embedding of each cluster label ``0 .. max(labels)`` (noise ``-1`` ignored)."""
    n_found = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    if n_found == 0:
        raise ValueError("The clusterer assigned every sample to noise (label -1).")
    centers = np.zeros((n_found, embedding.shape[1]))
    for k in range(n_found):
        members = embedding[labels == k]
        centers[k] = members.mean(axis=0) if len(members) else embedding.mean(axis=0)
    return centers
