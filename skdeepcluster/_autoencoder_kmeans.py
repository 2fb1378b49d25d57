"""The :class:`AutoencoderKMeans` estimator.

The public class stays thin: it validates parameters and data, then calls the
pieces that live in their own modules (networks, training loop, second stage
and clustering, refinement, devices) and keeps the fitted state. See
``docs/architecture.rst`` for the data flow.
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
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    validate_data,
)

from ._clustering import LARGE_N_SAMPLES, assign_nearest, fit_clusterer, fit_second_stage
from ._data import STREAM_BLOCK_BYTES, StreamSource, TensorSource, iter_row_blocks, streamable
from ._device import available_device, resolve_device, torch_seed_context, torch_threads
from ._neighbor_embedding import NeighborEmbedding
from ._networks import (
    ACTIVATIONS,
    ConvAutoencoder,
    MLPAutoencoder,
    _module_device,
    build_module,
    resolve_image_shape,
)
from ._refine import affine_head_from_sklearn, refine_dec, refine_kmeans
from ._training import (
    LOSSES,
    OPTIMIZERS,
    RandomAffine,
    _snapshot,
    decode_array,
    encode_array,
    make_optimizer,
    reconstruct_array,
    to_tensor,
    train_autoencoder,
)

__all__ = ["AutoencoderKMeans"]

_FLOAT_DTYPES = [np.float64, np.float32]

#: Optimizer steps that ``epochs='auto'`` aims for (see the ``epochs`` docstring).
_AUTO_STEPS = 1500

#: Epochs over which the k-means refinement weight grows linearly to ``refine_lambda``.
_REFINE_WARMUP_EPOCHS = 5

#: ``streaming='auto'`` streams data whose float32 copy would exceed this size.
_STREAM_BYTES = 2**30

#: Built-in clusterers that refinement can work with (they define the centres).
_KMEANS_CLUSTERERS = ("kmeans", "minibatch_kmeans")


#: Private state of partial_fit (kept between calls, dropped with the model).
_PARTIAL_FIT_STATE = ("_optimizer", "_partial_seeds", "_n_partial_fit_calls")


def _is_fitted_attr(name: str) -> bool:
    return name.endswith("_") and not name.startswith("__")


class AutoencoderKMeans(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Deep clustering: an autoencoder's codes, optionally reduced, then k-means.

    ``fit`` trains an autoencoder with PyTorch to reconstruct ``X`` (on a GPU
    when one is available), encodes ``X`` to its latent codes, optionally
    standardizes and reduces them (the *second stage*: PCA or any scikit-learn
    transformer), clusters the result (k-means by default) and can then refine
    the encoder and the centres jointly. ``transform`` returns the final
    embedding, and ``predict`` assigns new samples to the nearest centre in it.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.

    architecture : {'auto', 'mlp', 'conv'}, default='auto'
        Network type. ``'auto'`` is ``'conv'`` when ``image_shape`` is given
        and ``'mlp'`` otherwise. Ignored when ``module`` is given.

    image_shape : tuple of int or None, default=None
        Shape ``(C, H, W)`` (or ``(H, W)`` for one channel) of each sample for
        the convolutional autoencoder. ``X`` stays 2-D, ``(n_samples, C*H*W)``,
        in channel-first order. One entry may be ``-1`` and is inferred from
        the number of features, as in :func:`numpy.reshape`.

    hidden_layer_sizes : array-like of int, default=(500, 500, 2000)
        Widths of the fully connected encoder's hidden layers; the decoder
        mirrors them. The default is the ``d-500-500-2000-10`` network of DEC
        and its successors. An empty tuple gives a linear autoencoder.

    conv_channels : array-like of int, default=(32, 64, 128)
        Channels of the convolutional encoder's stride-2 layers.

    latent_dim : int, default=10
        Dimension of the autoencoder's codes.

    activation : {'relu', 'elu', 'leaky_relu', 'tanh', 'gelu'}, default='relu'
        Activation between hidden layers.

    output_activation : {'sigmoid', 'tanh'} or None, default=None
        Activation of the decoder's output, for inputs scaled to [0, 1]
        (``'sigmoid'``) or [-1, 1] (``'tanh'``). None keeps it linear.

    dropout : float, default=0.0
        Dropout probability between hidden layers during training.

    batch_norm : bool, default=False
        Batch normalisation between hidden layers.

    module : torch.nn.Module class or instance, default=None
        Your own autoencoder instead of the built-in ones. It must have
        ``encode(x) -> z`` and ``decode(z) -> x_hat`` on float32 batches of
        shape ``(n, n_features)`` (see the :ref:`User Guide <pretraining>`). A
        class is instantiated with ``module_kwargs`` (and ``n_features`` when
        its constructor accepts it); an instance is copied, never trained in
        place.

    module_kwargs : dict or None, default=None
        Keyword arguments for a ``module`` class.

    loss : {'mse', 'l1', 'huber'}, default='mse'
        Reconstruction loss.

    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
        Optimizer (SGD uses Nesterov-free momentum 0.9).

    learning_rate : float, default=1e-3
        Learning rate of the optimizer.

    weight_decay : float, default=0.0
        L2 penalty of the optimizer.

    batch_size : int, default=256
        Mini-batch size for training (clipped to ``n_samples``).

    lr_schedule : {'cosine', 'plateau'} or None, default=None
        Learning-rate schedule of pre-training: ``'cosine'`` anneals it to 0
        over ``epochs`` (a lower final loss for the same number of epochs);
        ``'plateau'`` divides it by 10 when the monitored loss stalls. None
        keeps it constant. ``partial_fit`` always keeps it constant.

    epochs : int or 'auto', default='auto'
        Maximum number of pre-training passes over the data. ``'auto'`` gives
        the network a budget of about 1,500 optimizer steps:
        ``ceil(1500 / n_batches)`` epochs, clipped to [10, 200], where
        ``n_batches = ceil(n_samples / batch_size)``. That is 188 epochs on
        the 1,797 digits (under a minute on two CPU cores), 38 on 10,000
        MNIST images and 10 on larger data sets. Set an int for full control.

    noise : float, default=0.0
        Denoising: the standard deviation of Gaussian noise
        (``noise_type='gaussian'``) or the fraction of input features set to
        zero (``noise_type='mask'``) added to each training batch. Never
        applied by ``transform`` or ``predict``.

    noise_type : {'gaussian', 'mask'}, default='gaussian'
        Kind of input corruption used when ``noise > 0``.

    augment : float, default=0.0
        Data augmentation for images (needs ``image_shape``, with either
        architecture): each pre-training batch is shifted at random by up to
        ``augment`` times the image's height and width and rotated by up to
        ``100 * augment`` degrees (``0.1``: up to 2.8 pixels and 10 degrees on
        28 x 28 images), and the network learns to reconstruct the augmented
        images (Guo et al., 2018). Never applied by ``transform`` or
        ``predict``, nor during refinement.

    validation_fraction : float, default=0.0
        Fraction of the training data held out to monitor the reconstruction
        loss (``history_['val_loss']``) and for early stopping. ``0`` uses all
        data for training.

    n_iter_no_change : int or None, default=None
        Early stopping: stop pre-training when the monitored loss (validation
        loss if ``validation_fraction > 0``, else training loss) has not
        improved by at least ``tol`` for this many epochs, and restore the
        best weights. None trains for ``epochs`` epochs.

    tol : float, default=1e-4
        Minimum improvement of the monitored loss for early stopping.

    clip_grad_norm : float or None, default=None
        Clip the gradients' global norm to this value during training and
        refinement (numerical safety for aggressive learning rates).

    warm_start : bool, default=False
        Reuse the trained network of the previous ``fit`` and continue
        training it for ``epochs`` more epochs, instead of starting from a
        fresh one. The second stage and clustering are always refitted.

    standardize : bool, default=True
        Scale each code dimension to zero mean and unit variance before the
        reducer and the clustering.

    pca_components : int, float or None, default=None
        Shortcut for a PCA second stage on the (standardized) codes. An int
        keeps that many components (clipped to ``min(n_samples, latent_dim)``);
        a float in (0, 1) keeps enough components to explain that fraction of
        variance; None skips PCA. Cannot be combined with ``reducer``.

    reducer : 'auto', transformer or None, default='auto'
        Second stage applied to the (standardized) codes before clustering.
        ``'auto'`` is a :class:`~skdeepcluster.NeighborEmbedding` with
        ``min(n_clusters, latent_dim)`` components: the neighbour-graph
        layout of "N2D", implemented in torch, which lets k-means find
        clusters that are not round in the codes (MNIST: 0.93 accuracy
        instead of 0.69). ``'auto'`` means no reducer when
        ``pca_components`` is set, when ``refine`` asks for a refinement
        (``'kmeans'``, ``'dec'``, ``'idec'``: they work through an affine
        second stage), from 100,000 samples on, and in ``partial_fit``.
        Any scikit-learn compatible transformer (``PCA``, ``umap.UMAP``,
        ``NeighborEmbedding(...)``) is cloned and fitted in ``fit``; its
        ``random_state`` is set from this estimator's when left as None.
        None clusters the (standardized) codes themselves.

    clusterer : {'kmeans', 'minibatch_kmeans', 'gmm'} or estimator, default='kmeans'
        How the embedding is clustered: k-means (``n_init`` starts;
        :class:`~sklearn.cluster.MiniBatchKMeans` from 100,000 samples on, or
        always with ``'minibatch_kmeans'``), a Gaussian mixture (``n_init``
        starts), or any clusterer with ``fit_predict``; its ``n_clusters`` /
        ``n_components`` parameter is set to ``n_clusters``. ``predict`` uses
        the clusterer's own ``predict`` when it has one, else the nearest
        cluster mean.

    n_init : int or 'auto', default=10
        Number of clustering runs with different seeds; the best is kept.

    refine : {'auto', 'kmeans', 'dec', 'idec'} or None, default='auto'
        Joint refinement of the encoder and the centres after the first
        clustering: ``'kmeans'`` adds ``refine_lambda`` times the squared
        distance of each embedding to its centre to the reconstruction loss
        (Song et al., 2013); ``'dec'`` and ``'idec'`` run DEC self-training
        (Xie et al., 2016), IDEC keeping the reconstruction loss with weight
        ``gamma`` (Guo et al., 2017). Refinement needs ``clusterer='kmeans'``
        (or ``'minibatch_kmeans'``) and an affine second stage (scaler and/or
        ``pca_components``).
        ``'auto'`` is ``'idec'`` when those hold and None (no refinement)
        otherwise, e.g. with the default neighbour-embedding ``reducer`` or
        ``clusterer='gmm'``.

    refine_epochs : int, default=100
        Maximum number of refinement epochs (passes over the data).

    refine_lambda : float, default=0.01
        ``refine='kmeans'``: weight of the k-means term (squared distance of
        each embedding to its centre) next to the reconstruction loss. It
        grows linearly from 0 over the first 5 refinement epochs.

    refine_learning_rate : float, default=1e-4
        Learning rate of the refinement's optimizer (of the kind set by
        ``optimizer``). Smaller than ``learning_rate``: refinement adjusts a
        trained network.

    update_interval : int or 'auto', default='auto'
        DEC/IDEC: number of batches between updates of the target
        distribution; ``'auto'`` updates it once per epoch.

    gamma : float, default=1.0
        IDEC: weight of the reconstruction loss next to the clustering (KL)
        loss. ``refine='dec'`` uses 0.

    refine_tol : float, default=1e-3
        Refinement stops when fewer than this fraction of labels change
        between updates (after the warm-up for ``refine='kmeans'``).

    streaming : 'auto' or bool, default='auto'
        Whether ``fit`` and ``partial_fit`` train on ``X`` in blocks of rows
        (about 16 MiB each, the next one read in a background thread; batches
        are shuffled block by block) instead of copying it whole to a tensor,
        and whether ``fit``, ``transform`` and ``predict`` validate it block
        by block instead of as one array: for data larger than memory, such
        as a :class:`numpy.memmap` or an h5py/zarr array. (Inference always
        reads ``X`` in batches.) ``'auto'`` streams array-likes whose float32
        copy would exceed 1 GiB, unless ``validation_fraction > 0`` or
        ``device`` is a list; ``True`` cannot be combined with those. See
        :ref:`scaling`.

    device : str, torch.device or list of them, default='auto'
        Where to train and encode: ``'auto'`` (CUDA when available, else CPU;
        with several GPUs, a Dask worker or ``torchrun`` rank takes its own,
        other processes the one with the most free memory), ``'cpu'``,
        ``'cuda'``, ``'cuda:1'``, ``'mps'``. A list such as
        ``['cuda:0', 'cuda:1']`` pre-trains with
        :class:`~torch.nn.parallel.DistributedDataParallel`, one process per
        device (``['cpu', 'cpu']`` on CPUs, with the gloo backend); the rest
        of ``fit`` runs on the first one. A model fitted on a GPU unpickles on
        a CPU-only machine (its weights are mapped to the CPU, with a
        warning).

    n_jobs : int or None, default=None
        Number of CPU threads torch uses while fitting and predicting; ``-1``
        uses all cores. None keeps torch's setting, which follows
        ``OMP_NUM_THREADS``: joblib's process workers (``GridSearchCV(n_jobs=k)``)
        set it to the cores divided by ``k`` and Dask's worker processes set
        it to 1. The setting is restored afterwards; it is process-wide, so
        threads of one process share it (and fits in threads of one process
        train one at a time, since torch's random generator is process-wide
        too).

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch order, noise, the validation split,
        the reducer and the clustering. An int gives identical labels on every
        fit on the same device; the global numpy and torch random states are
        left untouched.

    verbose : int, default=0
        ``0`` is quiet; ``1`` or more shows progress bars with the training
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

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``; defined only when ``X`` has
        feature names that are all strings.

    autoencoder_ : torch.nn.Module
        The trained autoencoder (in eval mode, on ``device_``).

    scaler_ : StandardScaler or None
        Scaler of the codes, when ``standardize=True``.

    pca_ : PCA or None
        PCA of the (standardized) codes, when ``pca_components`` is set.

    reducer_ : transformer or None
        The fitted second stage after the scaler (the PCA of
        ``pca_components`` or a clone of ``reducer``).

    clusterer_ : estimator or None
        The fitted clusterer; None for k-means (``'kmeans'``, also when it ran
        as mini-batch k-means, and ``'minibatch_kmeans'``), which is
        summarised by ``cluster_centers_``.

    history_ : dict
        Per-epoch losses of pre-training: ``'train_loss'``, ``'val_loss'``
        (empty without a validation split) and ``'best_epoch'`` (index of the
        lowest monitored loss); after refinement also ``'refine_loss'``,
        ``'refine_recon_loss'``, ``'refine_cluster_loss'`` and
        ``'n_changed'`` (fraction of labels changed per update).

    n_iter_ : int
        Number of pre-training epochs run in the last ``fit`` (counting one
        per ``partial_fit`` call since).

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
    further reduction of the codes (McConville et al., 2020, "N2D"), and
    optionally refine network and centres together (Song et al., 2013;
    Xie et al., 2016; Guo et al., 2017).

    Training uses float32. Inference (``transform``, ``predict``) runs on a
    float64 copy of the network (float32 on Apple MPS, which lacks float64)
    so that an embedding does not depend on how many rows are transformed
    together. On the CPU the same ``random_state`` gives identical results;
    CUDA kernels may add tiny run-to-run differences.

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
        "architecture": [StrOptions({"auto", "mlp", "conv"})],
        "image_shape": [tuple, list, None],
        "hidden_layer_sizes": ["array-like"],
        "conv_channels": ["array-like"],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "output_activation": [StrOptions({"sigmoid", "tanh"}), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "module": [type, torch.nn.Module, None],
        "module_kwargs": [dict, None],
        "loss": [StrOptions(set(LOSSES))],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr_schedule": [StrOptions({"cosine", "plateau"}), None],
        "epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "noise": [Interval(Real, 0, None, closed="left")],
        "noise_type": [StrOptions({"gaussian", "mask"})],
        "augment": [Interval(Real, 0, 0.5, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "warm_start": ["boolean"],
        "standardize": ["boolean"],
        "pca_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
            None,
        ],
        "reducer": [StrOptions({"auto"}), HasMethods(["fit", "transform"]), None],
        "clusterer": [
            StrOptions({"kmeans", "minibatch_kmeans", "gmm"}),
            HasMethods(["fit_predict"]),
        ],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "refine": [StrOptions({"auto", "kmeans", "dec", "idec"}), None],
        "refine_epochs": [Interval(Integral, 1, None, closed="left")],
        "refine_lambda": [Interval(Real, 0, None, closed="left")],
        "refine_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "update_interval": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "refine_tol": [Interval(Real, 0, None, closed="left")],
        "streaming": [StrOptions({"auto"}), "boolean"],
        "device": [str, torch.device, list, tuple],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        architecture="auto",
        image_shape=None,
        hidden_layer_sizes=(500, 500, 2000),
        conv_channels=(32, 64, 128),
        latent_dim=10,
        activation="relu",
        output_activation=None,
        dropout=0.0,
        batch_norm=False,
        module=None,
        module_kwargs=None,
        loss="mse",
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=256,
        lr_schedule=None,
        epochs="auto",
        noise=0.0,
        noise_type="gaussian",
        augment=0.0,
        validation_fraction=0.0,
        n_iter_no_change=None,
        tol=1e-4,
        clip_grad_norm=None,
        warm_start=False,
        standardize=True,
        pca_components=None,
        reducer="auto",
        clusterer="kmeans",
        n_init=10,
        refine="auto",
        refine_epochs=100,
        refine_lambda=0.01,
        refine_learning_rate=1e-4,
        update_interval="auto",
        gamma=1.0,
        refine_tol=1e-3,
        streaming="auto",
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.architecture = architecture
        self.image_shape = image_shape
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_channels = conv_channels
        self.latent_dim = latent_dim
        self.activation = activation
        self.output_activation = output_activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.module = module
        self.module_kwargs = module_kwargs
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.lr_schedule = lr_schedule
        self.epochs = epochs
        self.noise = noise
        self.noise_type = noise_type
        self.augment = augment
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.clip_grad_norm = clip_grad_norm
        self.warm_start = warm_start
        self.standardize = standardize
        self.pca_components = pca_components
        self.reducer = reducer
        self.clusterer = clusterer
        self.n_init = n_init
        self.refine = refine
        self.refine_epochs = refine_epochs
        self.refine_lambda = refine_lambda
        self.refine_learning_rate = refine_learning_rate
        self.update_interval = update_interval
        self.gamma = gamma
        self.refine_tol = refine_tol
        self.streaming = streaming
        self.device = device
        self.n_jobs = n_jobs
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

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train the autoencoder for one more pass over ``X``, then recluster ``X``.

        For data that arrive in chunks or do not fit in memory at once. The
        first call builds the network (as ``fit`` would); each call trains it
        for one epoch on ``X``, keeping the optimizer's state between calls,
        and refits the second stage and the clustering on the embedding of
        ``X`` (no refinement). With k-means or the Gaussian mixture and an
        affine second stage (scaler and/or ``pca_components``), the clustering
        starts from the previous centres, mapped into the new embedding, so
        that cluster ``k`` stays cluster ``k`` from call to call; otherwise it
        starts afresh and cluster ids may change. After a ``fit``,
        ``partial_fit`` continues training the fitted network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data, with at least ``n_clusters`` rows.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : AutoencoderKMeans
            Fitted estimator; ``labels_`` are those of this chunk.

        Notes
        -----
        The optimizer's state (e.g. Adam's moment estimates) lives in memory
        only: it is not pickled, so training resumed after unpickling starts
        the optimizer afresh. ``device`` must be a single device.
        """
        self._atomic(self._partial_fit, X, keep_previous=True)
        return self

    def _atomic(self, fit, X, *, keep_previous):
        """Run ``fit(X)``; if it fails, leave the estimator as it was (or unfitted)."""
        previous = {k: v for k, v in vars(self).items() if _is_fitted_attr(k)}
        module = previous.get("autoencoder_")
        optimizer = getattr(self, "_optimizer", None)
        saved = None
        if keep_previous and module is not None:
            # partial_fit trains the fitted network (and its optimizer) in place.
            saved = (
                _snapshot(module),
                None if optimizer is None else copy.deepcopy(optimizer.state_dict()),
            )
        try:
            with torch_threads(self.n_jobs):
                return fit(X)
        except BaseException:
            for name in [k for k in vars(self) if _is_fitted_attr(k)]:
                delattr(self, name)
            if not keep_previous:
                for name in _PARTIAL_FIT_STATE:
                    vars(self).pop(name, None)
            else:
                vars(self).update(previous)
                self._optimizer = optimizer
                if saved is not None:
                    module.load_state_dict(saved[0])
                    if optimizer is not None:
                        optimizer.load_state_dict(saved[1])
            raise

    def _fit_all(self, X):
        """Fit, leaving the estimator as it was before if anything fails."""
        return self._atomic(self._fit, X, keep_previous=self.warm_start)

    def _validate_fit_data(self, X, *, reset):
        """Validated ``X`` and whether to stream it (see the ``streaming`` parameter)."""
        stream = self._streams(X)
        if stream and (self.validation_fraction or isinstance(self.device, (list, tuple))):
            raise ValueError(
                "streaming=True cannot be combined with validation_fraction > 0 or a "
                "list of devices; use streaming=False (or 'auto')."
            )
        if stream and streamable(X):
            X = self._validate_stream(X, reset=reset)
        else:
            X = validate_data(self, X, reset=reset, dtype=_FLOAT_DTYPES)
        if self.n_clusters > X.shape[0]:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}."
            )
        self._check_param_combinations()
        return X, stream

    def _seeds(self):
        """Seeds of the network/batches, the clustering and the validation split."""
        if self.random_state is None:
            # Fresh OS entropy: non-reproducible, and numpy's global state untouched.
            rng = np.random.RandomState(np.random.SeedSequence().generate_state(1))
        else:
            rng = check_random_state(self.random_state)
        return tuple(int(s) for s in rng.randint(np.iinfo(np.int32).max, size=3))

    def _train_params(self, *, epochs, lr_schedule=True):
        """Keyword arguments of the training loop that come from the parameters."""
        return dict(
            epochs=epochs,
            lr_schedule=self.lr_schedule if lr_schedule else None,
            batch_size=self.batch_size,
            loss=self.loss,
            noise=self.noise,
            noise_type=self.noise_type,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            clip_grad_norm=self.clip_grad_norm,
            verbose=self.verbose,
        )

    def _augmenter(self, n_features, seed):
        """The batch augmentation of ``augment`` (None when off), seeded from ``seed``."""
        if not self.augment:
            return None
        return RandomAffine(
            resolve_image_shape(self.image_shape, n_features),
            shift=self.augment,
            rotation=100.0 * self.augment,
            generator=torch.Generator().manual_seed(seed + 1),
        )

    def _source(self, X, stream, device):
        """Training data: one tensor on ``device``, or a stream of blocks."""
        if stream:
            return StreamSource(X, device, min(self.batch_size, X.shape[0]))
        return TensorSource(to_tensor(X, device))

    def _fit(self, X):
        previous_module = getattr(self, "autoencoder_", None) if self.warm_start else None
        previous_n_features = getattr(self, "n_features_in_", None)
        X, stream = self._validate_fit_data(X, reset=True)
        n_features = X.shape[1]
        devices = self._devices()
        device = devices[0]
        torch_seed, cluster_seed, split_seed = self._seeds()
        X_train, X_val = self._split(X, split_seed)

        with torch_seed_context(torch_seed, device):
            if previous_module is not None:
                if previous_n_features != n_features:
                    raise ValueError(
                        f"warm_start=True but X has {n_features} features while the "
                        f"previous fit had {previous_n_features}."
                    )
                module = copy.deepcopy(previous_module)  # the old model survives a failure
            else:
                module = self._build_module(n_features)
            module = module.to(device)
            train_params = self._train_params(epochs=self._n_epochs(X_train.shape[0]))
            if len(devices) > 1:
                from ._distributed import train_autoencoder_distributed

                history = train_autoencoder_distributed(
                    module,
                    X_train,
                    devices=devices,
                    optimizer=self.optimizer,
                    learning_rate=self.learning_rate,
                    weight_decay=self.weight_decay,
                    seed=torch_seed,
                    X_val=X_val,
                    **train_params,
                )
            else:
                history = train_autoencoder(
                    module,
                    self._source(X_train, stream, device),
                    optimizer=self._make_optimizer(module.parameters()),
                    X_val=None if X_val is None else to_tensor(X_val, device),
                    generator=torch.Generator().manual_seed(torch_seed),
                    augment=self._augmenter(n_features, torch_seed),
                    **train_params,
                )
        embedding = self._cluster(
            X,
            module,
            device,
            history=history,
            n_iter=len(history["train_loss"]),
            seeds=(torch_seed, cluster_seed),
            partial=False,
            stream=stream,
        )
        # partial_fit after fit continues this network with a fresh optimizer.
        self._optimizer = None
        self._partial_seeds = (torch_seed, cluster_seed)
        self._n_partial_fit_calls = 0
        return embedding

    def _partial_fit(self, X):
        first_call = not hasattr(self, "autoencoder_")
        X, stream = self._validate_fit_data(X, reset=first_call)
        if first_call:
            devices = self._devices()
            if len(devices) > 1:
                raise ValueError("partial_fit trains on one device; got a list of devices.")
            device = devices[0]
            torch_seed, cluster_seed, _ = self._seeds()
            with torch_seed_context(torch_seed, device):
                module = self._build_module(X.shape[1]).to(device)
            history = {"train_loss": [], "val_loss": [], "best_epoch": None}
            n_calls = 0
        else:
            module, device = self.autoencoder_, self.device_
            # Models pickled before partial_fit existed have no such state yet.
            torch_seed, cluster_seed = getattr(self, "_partial_seeds", None) or self._seeds()[:2]
            history = {k: self.history_.get(k, []) for k in ("train_loss", "val_loss")}
            n_calls = getattr(self, "_n_partial_fit_calls", 0)
        if first_call or getattr(self, "_optimizer", None) is None:
            self._optimizer = self._make_optimizer(module.parameters())
        seed = torch_seed + 1 + n_calls
        with torch_seed_context(seed, device):  # dropout, without touching global state
            epoch = train_autoencoder(
                module,
                self._source(X, stream, device),
                optimizer=self._optimizer,
                generator=torch.Generator().manual_seed(seed),
                augment=self._augmenter(X.shape[1], seed),
                **self._train_params(epochs=1, lr_schedule=False),
            )
        history = {
            "train_loss": history["train_loss"] + epoch["train_loss"],
            "val_loss": history["val_loss"],
            "best_epoch": None,
        }
        n_iter = (0 if first_call else self.n_iter_) + len(epoch["train_loss"])
        self._cluster(
            X,
            module,
            device,
            history=history,
            n_iter=n_iter,
            seeds=(torch_seed, cluster_seed + n_calls),
            partial=True,
            stream=stream,
            previous=None if first_call else (self.second_stage_, self.cluster_centers_),
        )
        self._partial_seeds = (torch_seed, cluster_seed)
        self._n_partial_fit_calls = n_calls + 1

    def _cluster(
        self, X, module, device, *, history, n_iter, seeds, partial, stream, previous=None
    ):
        """Second stage, clustering and refinement of the trained ``module``; sets the state.

        ``previous`` (the last second stage and centres, from ``partial_fit``)
        warm-starts the clustering when both second stages are affine: the old
        centres are mapped back to codes and into the new embedding, so that
        cluster ids carry over. ``partial`` is True for ``partial_fit``, which
        never refines and resolves ``reducer='auto'`` to no reducer. Returns the
        final embedding of ``X``.
        """
        torch_seed, cluster_seed = seeds
        codes = encode_array(module, X, device=device)
        reducer = self._resolve_reducer(codes.shape, device, partial=partial)
        refine = None if partial else self._refine_method(reducer)
        second_stage, embedding = fit_second_stage(
            codes,
            standardize=self.standardize,
            pca_components=self.pca_components,
            reducer=reducer,
            random_state=cluster_seed,
        )
        init_centers = None
        if previous is not None and previous[0].is_affine and second_stage.is_affine:
            init_centers = second_stage.transform(previous[0].inverse_transform(previous[1]))
        clusterer, centers, labels = fit_clusterer(
            embedding,
            clusterer=self.clusterer,
            n_clusters=self.n_clusters,
            n_init=self.n_init,
            random_state=cluster_seed,
            init_centers=init_centers,
        )

        if refine is not None:
            with torch_seed_context(torch_seed + 1, device):
                centers, refine_history = self._refine(
                    refine,
                    module,
                    self._source(X, stream, device),
                    centers,
                    second_stage,
                    device,
                    torch_seed + 1,
                )
            history.update(refine_history)
            embedding = second_stage.transform(encode_array(module, X, device=device))
            labels, _ = assign_nearest(embedding, centers)

        if clusterer is not None and hasattr(clusterer, "predict"):
            labels = np.asarray(clusterer.predict(embedding), dtype=np.int64)
        elif clusterer is not None:
            # A clusterer without predict (e.g. agglomerative): new data go to the
            # nearest cluster mean, and so do the training samples, for consistency.
            labels, _ = assign_nearest(embedding, centers)
        sq_dist = ((embedding - centers[labels]) ** 2).sum(axis=1)

        self.autoencoder_ = module
        self.device_ = device
        self.history_ = history
        self.n_iter_ = n_iter
        self.second_stage_ = second_stage
        self.scaler_ = second_stage.scaler
        self.reducer_ = second_stage.reducer
        self.pca_ = second_stage.reducer if self.pca_components is not None else None
        self.clusterer_ = clusterer
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = float(sq_dist.sum())
        return embedding

    def _streams(self, X):
        """Whether ``X`` is streamed to the device in blocks instead of copied whole."""
        if self.streaming != "auto":
            return bool(self.streaming)
        if (
            not streamable(X)
            or self.validation_fraction
            or isinstance(self.device, (list, tuple))
        ):
            return False
        n_samples, n_features = X.shape
        return n_samples * n_features * 4 > _STREAM_BYTES

    def _validate_stream(self, X, *, reset):
        """Check an array-like to stream without copying it whole (cf. ``validate_data``)."""
        dtype = np.dtype(X.dtype)
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
            dtype, np.complexfloating
        ):
            raise ValueError(f"X has dtype {dtype}; a real numeric array is needed.")
        n_samples, n_features = (int(n) for n in X.shape)
        if n_samples < 1 or n_features < 1:
            raise ValueError(
                f"Found array with {n_samples} sample(s) and {n_features} feature(s) "
                f"(shape={tuple(X.shape)}) while a minimum of 1 is required."
            )
        _check_feature_names(self, X, reset=reset)
        _check_n_features(self, X, reset=reset)
        if np.issubdtype(dtype, np.floating):
            rows = max(1, STREAM_BLOCK_BYTES // (dtype.itemsize * n_features))
            for start, block in iter_row_blocks(X, rows, dtype=dtype):
                if not np.isfinite(block).all():
                    what = "NaN" if np.isnan(block).any() else "infinity"
                    raise ValueError(
                        f"Input X contains {what} (in rows {start} to "
                        f"{start + block.shape[0] - 1})."
                    )
        return X

    def _devices(self):
        """The training devices: one, or several for distributed data parallel training."""
        if isinstance(self.device, (list, tuple)):
            from ._distributed import resolve_devices

            return resolve_devices(self.device)
        return [resolve_device(self.device)]

    def _check_param_combinations(self):
        if self.pca_components is not None and self.reducer not in (None, "auto"):
            raise ValueError(
                "pca_components and reducer cannot both be set; use "
                "reducer=PCA(...) or pca_components alone."
            )
        if self.architecture == "conv" and self.image_shape is None and self.module is None:
            raise ValueError("architecture='conv' needs image_shape=(C, H, W).")
        if self.augment and self.image_shape is None:
            raise ValueError(
                f"augment={self.augment} shifts and rotates images; it needs "
                "image_shape=(C, H, W)."
            )
        if self.augment and isinstance(self.device, (list, tuple)):
            raise ValueError(
                "augment > 0 is not supported with a list of devices (data-parallel "
                "pre-training); use one device."
            )
        if self.noise_type == "mask" and self.noise >= 1:
            raise ValueError(
                f"noise={self.noise} is the fraction of masked inputs; it must be < 1 "
                "with noise_type='mask'."
            )
        if self.refine not in (None, "auto"):
            if not (isinstance(self.clusterer, str) and self.clusterer in _KMEANS_CLUSTERERS):
                raise ValueError(
                    f"refine={self.refine!r} needs clusterer='kmeans', got "
                    f"{self.clusterer!r}; use refine=None (or 'auto') with other clusterers."
                )
            if self.reducer not in (None, "auto"):
                raise ValueError(
                    f"refine={self.refine!r} works through the scaler and PCA only "
                    "(pca_components); it cannot be combined with reducer."
                )

    def _n_epochs(self, n_samples):
        """Number of pre-training epochs (resolves ``epochs='auto'``)."""
        if self.epochs != "auto":
            return self.epochs
        n_batches = -(-n_samples // min(self.batch_size, n_samples))
        return int(np.clip(-(-_AUTO_STEPS // n_batches), 10, 200))

    def _split(self, X, seed):
        """Training and validation parts of ``X`` (validation is None when unused)."""
        if not self.validation_fraction:
            return X, None
        n_val = int(round(self.validation_fraction * X.shape[0]))
        if n_val < 1 or X.shape[0] - n_val < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves an empty "
                f"training or validation set with n_samples={X.shape[0]}."
            )
        perm = np.random.RandomState(seed).permutation(X.shape[0])
        return X[perm[n_val:]], X[perm[:n_val]]

    def _build_module(self, n_features):
        if self.module is not None:
            return build_module(self.module, self.module_kwargs, n_features)
        options = dict(
            activation=self.activation,
            output_activation=self.output_activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
        )
        use_conv = self.architecture == "conv" or (
            self.architecture == "auto" and self.image_shape is not None
        )
        if use_conv:
            shape = resolve_image_shape(self.image_shape, n_features)
            channels = self._check_int_sequence("conv_channels", allow_empty=False)
            return ConvAutoencoder(shape, self.latent_dim, channels=channels, **options)
        if self.image_shape is not None:
            resolve_image_shape(self.image_shape, n_features)  # still validate it
        hidden = self._check_int_sequence("hidden_layer_sizes", allow_empty=True)
        return MLPAutoencoder(n_features, hidden, self.latent_dim, **options)

    def _check_int_sequence(self, name, *, allow_empty):
        value = getattr(self, name)
        sizes = np.asarray(value, dtype=object).ravel()
        ok = all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes)
        if not ok or (not allow_empty and sizes.size == 0):
            raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}.")
        return tuple(int(s) for s in sizes)

    def _make_optimizer(self, params, learning_rate=None):
        return make_optimizer(
            self.optimizer,
            params,
            learning_rate=self.learning_rate if learning_rate is None else learning_rate,
            weight_decay=self.weight_decay,
        )

    def _resolve_reducer(self, codes_shape, device, *, partial):
        """The reducer to fit on codes of shape ``codes_shape`` (resolves ``'auto'``)."""
        if not (isinstance(self.reducer, str) and self.reducer == "auto"):
            return self.reducer
        n_samples, n_codes = codes_shape
        if (
            partial
            or self.pca_components is not None
            or self.refine not in (None, "auto")
            or n_samples >= LARGE_N_SAMPLES
        ):
            return None
        return NeighborEmbedding(
            n_components=min(self.n_clusters, n_codes),
            device="auto" if self.device == "auto" else str(device),
        )

    def _refine_method(self, reducer):
        """The refinement to run (resolves ``refine='auto'``), or None."""
        if self.refine != "auto":
            return self.refine
        kmeans = isinstance(self.clusterer, str) and self.clusterer in _KMEANS_CLUSTERERS
        return "idec" if kmeans and reducer is None else None

    def _refine(self, method, module, source, centers, second_stage, device, seed):
        """Joint refinement of ``module`` and ``centers`` through the affine second stage."""
        scaler, pca = second_stage.scaler, second_stage.reducer
        embed = affine_head_from_sklearn(scaler, pca, device=device)
        batch_size = min(self.batch_size, source.n_samples)
        common = dict(
            embed=embed,
            epochs=self.refine_epochs,
            batch_size=batch_size,
            optimizer_factory=lambda params: self._make_optimizer(
                params, learning_rate=self.refine_learning_rate
            ),
            loss=self.loss,
            tol=self.refine_tol,
            clip_grad_norm=self.clip_grad_norm,
            generator=torch.Generator().manual_seed(seed),
            verbose=self.verbose,
        )
        centers_t = torch.as_tensor(centers, dtype=torch.float32, device=device)
        if method == "kmeans":
            new_centers, history = refine_kmeans(
                module,
                source,
                centers_t,
                lambda_=self.refine_lambda,
                warmup_epochs=min(_REFINE_WARMUP_EPOCHS, self.refine_epochs - 1),
                **common,
            )
        else:
            gamma = 0.0 if method == "dec" else self.gamma
            new_centers, history = refine_dec(
                module,
                source,
                centers_t,
                gamma=gamma,
                update_interval=(
                    -(-source.n_samples // batch_size)  # one epoch of batches
                    if self.update_interval == "auto"
                    else self.update_interval
                ),
                **common,
            )
        return new_centers.detach().cpu().numpy().astype(np.float64), history

    # -------------------------------------------------------- inference
    def _validate_X(self, X):
        check_is_fitted(self)
        if self._streams(X) and streamable(X):
            return self._validate_stream(X, reset=False)
        return validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES)

    def _transform(self, X):
        X = self._validate_X(X)
        with torch_threads(self.n_jobs):
            codes = encode_array(self.autoencoder_, X, device=self.device_)
        return self.second_stage_.transform(codes)

    def transform(self, X):
        """Embed ``X``: encoder, then the fitted scaler and reducer when set.

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
        """Cluster of each sample: the nearest centre, or the clusterer's ``predict``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster index of each sample.
        """
        embedding = self._transform(X)
        if self.clusterer_ is not None and hasattr(self.clusterer_, "predict"):
            return np.asarray(self.clusterer_.predict(embedding), dtype=np.int64)
        labels, _ = assign_nearest(embedding, self.cluster_centers_)
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
        _, sq_dist = assign_nearest(self._transform(X), self.cluster_centers_)
        return -float(sq_dist.sum())

    def reconstruct(self, X):
        """Pass ``X`` through the autoencoder: the decoded inputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct.

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
            ``decode(encode(X))``, in the feature space of ``X``.
        """
        X = self._validate_X(X)
        with torch_threads(self.n_jobs):
            return reconstruct_array(self.autoencoder_, X, device=self.device_)

    def inverse_transform(self, X):
        """Decode embeddings back to the input space.

        The second stage is inverted first (scaler, PCA or a reducer with
        ``inverse_transform``), then the decoder is applied.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_embedding)
            Embeddings, as returned by ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            Decoded samples.
        """
        check_is_fitted(self)
        from sklearn.utils import check_array

        embedding = check_array(X, dtype=_FLOAT_DTYPES)
        n_embedding = self.cluster_centers_.shape[1]
        if embedding.shape[1] != n_embedding:
            raise ValueError(
                f"X has {embedding.shape[1]} features, but the embedding has {n_embedding}."
            )
        codes = self.second_stage_.inverse_transform(embedding)
        with torch_threads(self.n_jobs):
            return decode_array(self.autoencoder_, codes, device=self.device_)

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
        state = dict(super().__getstate__())  # a copy: never alter the live estimator
        # Lean pickles: partial_fit's optimizer state (as large as the network) stays out.
        state.pop("_optimizer", None)
        module = state.get("autoencoder_")
        if module is not None and _module_device(module).type != "cpu":
            # Pickle CPU weights so the model loads on machines without a GPU.
            state["autoencoder_"] = copy.deepcopy(module).to("cpu")
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "autoencoder_" in state:
            device = available_device(state["device_"])
            self.autoencoder_ = self.autoencoder_.to(device).eval()
            self.device_ = device

