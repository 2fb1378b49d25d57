"""The :class:`AutoencoderKMeans` estimator.

The public class stays thin: it validates parameters and data, then calls the
pieces that live in their own modules (networks, training loop, devices) and
keeps the fitted state. See ``docs/architecture.rst`` for the data flow.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._device import available_device, resolve_device, torch_seed_context
from ._networks import ACTIVATIONS, MLPAutoencoder
from ._training import encode_array, make_optimizer, to_tensor, train_autoencoder

__all__ = ["AutoencoderKMeans"]

_FLOAT_DTYPES = [np.float64, np.float32]


def _assign(embedding: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre and the squared distance to it, per row."""
    sq_dist = euclidean_distances(embedding, centers, squared=True)
    labels = np.argmin(sq_dist, axis=1)
    return labels.astype(np.int64, copy=False), np.maximum(
        sq_dist[np.arange(len(labels)), labels], 0.0
    )


class AutoencoderKMeans(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Deep clustering: an autoencoder's codes, optionally reduced, then k-means.

    ``fit`` trains a fully connected autoencoder with PyTorch to reconstruct
    ``X`` (on a GPU when one is available), encodes ``X`` to its latent codes,
    optionally standardizes them and reduces them with PCA (the *second
    stage*), and clusters the result with :class:`~sklearn.cluster.KMeans`.
    ``transform`` returns that final embedding, and ``predict`` assigns new
    samples to the nearest cluster centre in it.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.

    hidden_layer_sizes : array-like of int, default=(500, 500, 2000)
        Widths of the encoder's hidden layers; the decoder mirrors them. The
        default is the ``d-500-500-2000-10`` network of DEC and its successors.
        An empty tuple gives a linear autoencoder.

    latent_dim : int, default=10
        Dimension of the autoencoder's codes.

    activation : {'relu', 'elu', 'leaky_relu', 'tanh', 'gelu'}, default='relu'
        Activation between hidden layers.

    batch_size : int, default=256
        Mini-batch size for training (clipped to ``n_samples``).

    epochs : int, default=100
        Number of training passes over the data. The default gives good
        clusters on digits-sized data (~2,000 samples) in well under a minute
        on two CPU cores.

    learning_rate : float, default=1e-3
        Adam learning rate.

    weight_decay : float, default=0.0
        L2 penalty (Adam's ``weight_decay``).

    standardize : bool, default=True
        Scale each code dimension to zero mean and unit variance before the
        PCA and k-means.

    pca_components : int, float or None, default=None
        Optional PCA on the (standardized) codes. An int keeps that many
        components (clipped to ``min(n_samples, latent_dim)``); a float in
        (0, 1) keeps enough components to explain that fraction of variance;
        None skips PCA.

    n_init : int or 'auto', default=10
        Number of k-means runs with different centroid seeds; the best (lowest
        inertia) is kept.

    device : str or torch.device, default='auto'
        Where to train and encode: ``'auto'`` (CUDA when available, else CPU),
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``. A model fitted on a
        GPU unpickles on a CPU-only machine (its weights are mapped to the
        CPU, with a warning).

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch order and k-means. An int gives
        identical labels on every fit on the same device; the global numpy
        and torch random states are left untouched.

    verbose : int, default=0
        ``0`` is quiet; ``1`` or more shows a progress bar with the training
        loss per epoch.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample; equal to ``predict(X)``.

    cluster_centers_ : ndarray of shape (n_clusters, n_embedding)
        Cluster centres in the embedding space returned by ``transform``.

    inertia_ : float
        Sum of squared distances of the training samples to their centre, in
        the embedding space.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``; defined only when ``X`` has
        feature names that are all strings.

    autoencoder_ : torch.nn.Module
        The trained autoencoder (in eval mode, on ``device_``).

    scaler_ : StandardScaler or None
        Scaler of the codes, when ``standardize=True``.

    pca_ : PCA or None
        PCA of the (standardized) codes, when ``pca_components`` is set.

    history_ : dict
        ``{'train_loss': [...]}``: mean reconstruction loss per epoch.

    n_iter_ : int
        Number of training epochs run.

    device_ : torch.device
        Device the autoencoder lives on.

    See Also
    --------
    sklearn.cluster.KMeans : k-means on the raw features.
    sklearn.decomposition.PCA : linear dimensionality reduction.

    Notes
    -----
    The method follows the two-stage recipe of the deep-clustering literature:
    pre-train an autoencoder (Hinton & Salakhutdinov, 2006; Xie et al., 2016),
    cluster its codes with k-means (Song et al., 2013), optionally after a
    further reduction of the codes (McConville et al., 2020, "N2D").

    Training uses float32 throughout. On CPU the same ``random_state`` gives
    identical results; CUDA kernels may add tiny run-to-run differences.

    ``score`` is the negative k-means objective in the embedding space. Like
    :meth:`sklearn.cluster.KMeans.score`, it favours more clusters, and values
    for different ``latent_dim`` or ``pca_components`` live in different
    spaces: compare them with care, or grid-search with a label-based scorer
    such as :func:`skdeepcluster.metrics.cluster_accuracy` when labels exist.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdeepcluster import AutoencoderKMeans
    >>> X, y = make_blobs(n_samples=200, centers=3, n_features=8, random_state=0)
    >>> model = AutoencoderKMeans(n_clusters=3, hidden_layer_sizes=(32,),
    ...                           latent_dim=2, epochs=20, random_state=0)
    >>> labels = model.fit_predict(X)
    >>> labels.shape
    (200,)
    >>> model.transform(X[:5]).shape
    (5, 2)
    >>> model.cluster_centers_.shape
    (3, 2)
    >>> from skdeepcluster.metrics import cluster_accuracy
    >>> cluster_accuracy(y, labels) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like"],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "standardize": ["boolean"],
        "pca_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
            None,
        ],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        hidden_layer_sizes=(500, 500, 2000),
        latent_dim=10,
        activation="relu",
        batch_size=256,
        epochs=100,
        learning_rate=1e-3,
        weight_decay=0.0,
        standardize=True,
        pca_components=None,
        n_init=10,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.hidden_layer_sizes = hidden_layer_sizes
        self.latent_dim = latent_dim
        self.activation = activation
        self.batch_size = batch_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.pca_components = pca_components
        self.n_init = n_init
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder and cluster the embedding of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Scale it first (e.g. to [0, 1] for pixels, or with
            :class:`~sklearn.preprocessing.StandardScaler`).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : AutoencoderKMeans
            Fitted estimator.
        """
        self._fit_all(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return its embedding (same as ``fit(X).transform(X)``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_embedding)
            The final embedding of ``X``.
        """
        return self._fit_all(X)

    def _fit_all(self, X):
        """Fit, leaving the estimator unfitted if anything fails."""
        try:
            return self._fit(X)
        except BaseException:
            for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
                delattr(self, name)
            raise

    def _fit(self, X):
        X = validate_data(self, X, dtype=_FLOAT_DTYPES)
        n_samples, n_features = X.shape
        if self.n_clusters > n_samples:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}."
            )
        hidden = self._check_hidden_layer_sizes()
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        torch_seed, kmeans_seed = (int(s) for s in rng.randint(np.iinfo(np.int32).max, size=2))

        with torch_seed_context(torch_seed, device):
            module = MLPAutoencoder(n_features, hidden, self.latent_dim, self.activation)
            module = module.to(device)
            optimizer = make_optimizer(
                "adam",
                module.parameters(),
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
            )
            history = train_autoencoder(
                module,
                to_tensor(X, device),
                epochs=self.epochs,
                batch_size=self.batch_size,
                optimizer=optimizer,
                generator=torch.Generator().manual_seed(torch_seed),
                verbose=self.verbose,
            )

        codes = encode_array(module, X, device=device)
        scaler, pca = self._fit_second_stage(codes, kmeans_seed)
        embedding = self._apply_second_stage(codes, scaler, pca)

        kmeans = KMeans(
            n_clusters=self.n_clusters, n_init=self.n_init, random_state=kmeans_seed
        ).fit(embedding)
        centers = kmeans.cluster_centers_
        labels, sq_dist = _assign(embedding, centers)

        self.autoencoder_ = module
        self.device_ = device
        self.history_ = history
        self.n_iter_ = len(history["train_loss"])
        self.scaler_ = scaler
        self.pca_ = pca
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = float(sq_dist.sum())
        return embedding

    def _check_hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = np.asarray(self.hidden_layer_sizes, dtype=object).ravel()
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return tuple(int(s) for s in sizes)

    def _fit_second_stage(self, codes, seed):
        """Fit the scaler and PCA on the codes (each may be None)."""
        scaler = StandardScaler().fit(codes) if self.standardize else None
        pca = None
        if self.pca_components is not None:
            scaled = scaler.transform(codes) if scaler is not None else codes
            n_components = self.pca_components
            if isinstance(n_components, Integral):
                n_components = min(n_components, *codes.shape)
            pca = PCA(n_components=n_components, svd_solver="full", random_state=seed)
            pca.fit(scaled)
        return scaler, pca

    @staticmethod
    def _apply_second_stage(codes, scaler, pca):
        embedding = np.asarray(codes, dtype=np.float64)
        if scaler is not None:
            embedding = scaler.transform(embedding)
        if pca is not None:
            embedding = pca.transform(embedding)
        return embedding

    # -------------------------------------------------------- inference
    def _transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES)
        codes = encode_array(self.autoencoder_, X, device=self.device_)
        return self._apply_second_stage(codes, self.scaler_, self.pca_)

    def transform(self, X):
        """Embed ``X``: encoder, then the fitted scaler and PCA when set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_embedding)
            The space in which ``cluster_centers_`` live.
        """
        return self._transform(X)

    def predict(self, X):
        """Index of the nearest cluster centre for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster index of each sample.
        """
        labels, _ = _assign(self._transform(X), self.cluster_centers_)
        return labels

    def score(self, X, y=None):
        """Negative k-means objective of ``X`` on the fitted centres.

        Higher is better, so model selection without labels (e.g.
        :class:`~sklearn.model_selection.GridSearchCV`) works out of the box.
        See the Notes of the class for caveats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Minus the sum of squared distances to the nearest centre.
        """
        _, sq_dist = _assign(self._transform(X), self.cluster_centers_)
        return -float(sq_dist.sum())

    @property
    def _n_features_out(self):
        """Number of embedding dimensions (used by ``get_feature_names_out``)."""
        return self.cluster_centers_.shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    # ----------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        module = state.get("autoencoder_")
        if module is not None and next(module.parameters(), torch.empty(0)).device.type != "cpu":
            # Pickle CPU weights so the model loads on machines without a GPU.
            state["autoencoder_"] = copy.deepcopy(module).to("cpu")
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "autoencoder_" in state:
            device = available_device(state["device_"])
            self.autoencoder_ = self.autoencoder_.to(device).eval()
            self.device_ = device
