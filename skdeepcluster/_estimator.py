"""The :class:`AutoencoderKMeans` estimator.

Parameters, their constraints, the docstring, a ``fit`` that reads as a list
of stages over a resolved plan (:mod:`skdeepcluster._plan`), inference and
pickling. The work itself lives in the packages next to it: the networks,
``training/`` (one loop with callbacks), ``embedding/`` (the neighbour
embedding), ``_clustering.py`` and ``refine/`` (one strategy per module). See
``docs/architecture.rst`` for the data flow.
"""

from __future__ import annotations

import copy
import functools
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import check_array
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    validate_data,
)

from . import _plan
from ._clustering import assign_nearest, fit_clusterer, fit_second_stage, is_affine
from ._communities import fit_graph_communities, prefer_communities
from ._consistency import LEARNING_RATE_SHARE as CONSISTENCY_LEARNING_RATE_SHARE
from ._consistency import train_consistency
from ._data import (
    StreamSource,
    TensorSource,
    check_stream,
    max_abs,
    split_rows,
    streamable,
    warn_if_badly_scaled,
)
from ._device import available_device, torch_seed_context, torch_threads
from ._networks import (
    ACTIVATIONS,
    _module_device,
    check_encode_decode,
    network_from_params,
    resolve_image_shape,
)
from ._progress import stage_bar
from ._projection import ProjectedAutoencoder, fit_projection
from ._self_label import MIN_AGREEMENT, predict_labels, self_train, train_label_head
from .embedding import NeighborEmbedding
from .refine import RefinementStrategy, affine_head_from_sklearn
from .training import (
    LOSSES,
    OPTIMIZERS,
    Callback,
    RandomAffine,
    decode_array,
    encode_array,
    make_optimizer,
    reconstruct_array,
    train_autoencoder,
)
from .training._callbacks import HOOKS as CALLBACK_HOOKS
from .training._inference import to_tensor
from .training._loop import _snapshot

_FLOAT_DTYPES = [np.float64, np.float32]

#: Private state of partial_fit (kept between calls, dropped with the model).
_PARTIAL_FIT_STATE = ("_optimizer", "_seed_entropy", "_n_partial_fit_calls")


def _trainable(module) -> bool:
    """Whether ``module`` has weights to train (an :class:`IdentityAutoencoder` has none)."""
    return any(p.requires_grad for p in module.parameters())


def _empty_history() -> dict:
    return {"train_loss": [], "val_loss": [], "best_epoch": None}


def _take_graph(reducer):
    """A neighbour embedding's ``graph_`` and ``fit_indices_``, removed from it (else None).

    The graph holds ``n_neighbors`` edges per training row; the fitted
    estimator keeps nothing of the training data's size (its pickle stays
    small), so the reducer it keeps has no ``graph_``. The neighbour
    consistency of self-labelling trains on it after the clustering.
    """
    if isinstance(reducer, NeighborEmbedding) and hasattr(reducer, "graph_"):
        graph = reducer.graph_
        del reducer.graph_
        return graph, reducer.fit_indices_
    return None


def _head_failure(labels, clusters, *, min_agreement=None):
    """Why a classifier of ``clusters`` is not kept (None: it is).

    ``labels`` are its labels of the training rows (None: its training
    diverged). It is dropped when it leaves a cluster empty or gives fewer
    than ``min_agreement`` (default ``MIN_AGREEMENT``) of the rows their cluster.
    """
    if labels is None:
        return "its training diverged"
    n_clusters, n_found = np.unique(clusters).size, np.unique(labels).size
    if n_found < n_clusters:
        return f"it leaves {n_clusters - n_found} of the {n_clusters} clusters empty"
    bound = MIN_AGREEMENT if min_agreement is None else min_agreement
    agreement = float(np.mean(labels == clusters))
    if agreement < bound:
        return (
            f"it gives only {agreement:.3f} of the training samples their cluster, below "
            f"the {bound:g} it must reach (it did not learn the clustering)"
        )
    return None


def _is_fitted_attr(name: str) -> bool:
    return name.endswith("_") and not name.startswith("__")


def _shown(value) -> str:
    """A parameter's value as the warnings show it (a class or a module by its name)."""
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, torch.nn.Module):
        return f"{type(value).__name__}(...)"
    return repr(value)


class AutoencoderKMeans(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Deep clustering: an autoencoder's codes, optionally reduced, then k-means.

    ``fit`` trains an autoencoder with PyTorch to reconstruct ``X`` (on a GPU
    when one is available), encodes ``X`` to its latent codes, optionally
    standardizes and reduces them (the *second stage*: the neighbour
    embedding, PCA or any scikit-learn transformer), clusters the result
    (k-means by default) and can then refine the encoder and the centres
    jointly. ``transform`` returns the final
    embedding, and ``predict`` assigns new samples to the nearest centre in it.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.

    architecture : {'auto', 'mlp', 'conv', 'none'}, default='auto'
        Network type. ``'none'`` trains no network: the second stage and the
        clusterer work on the input features (``autoencoder_`` is then an
        :class:`IdentityAutoencoder`). ``'auto'`` is ``'conv'`` when
        ``image_shape`` is given; else ``'none'`` in ``fit`` on fewer than
        5,000 rows of fewer than 256 features when ``reducer``, ``refine``
        and every parameter of the network and its training (``epochs``,
        ``hidden_layer_sizes``, ``latent_dim``, ``noise``, ``warm_start``,
        ...) keep their defaults (there the neighbour embedding of the
        standardized input clusters better than an autoencoder trained on so
        few rows, in a fraction of the time: see
        ``benchmarks/results/suite.md``), and ``'mlp'`` otherwise. The choice
        made is ``architecture_``. Ignored when ``module`` is given.

    image_shape : tuple of int or None, default=None
        Shape ``(C, H, W)`` (or ``(H, W)`` for one channel) of each sample for
        the convolutional autoencoder. ``X`` stays 2-D, ``(n_samples, C*H*W)``,
        in channel-first order. One entry may be ``-1`` and is inferred from
        the number of features, as in :func:`numpy.reshape`.

    input_pca : int, 'auto' or None, default='auto'
        Project the input onto its first ``input_pca`` principal components
        before the fully connected network (or, with no network, before the
        second stage); the decoder reconstructs through them (see
        :class:`ProjectedAutoencoder`). The components are fitted on at most
        20,000 rows of ``X`` sampled with ``random_state``. ``'auto'`` is 50
        components for inputs of 256 features or more, when the network is
        ``'mlp'`` or ``'none'`` and ``output_activation=None``, in ``fit``;
        no projection otherwise (a convolutional network needs the pixels,
        ``partial_fit`` chunks may not represent the data). On the MNIST test
        set this raised the defaults' ACC from 0.943 to 0.950 and cut the fit
        from 51 to 42 s; without a network, from 0.671 to 0.781 (see
        ``benchmarks/results/suite.md``). None feeds the input itself. The
        choice made is ``input_components_``.

    hidden_layer_sizes : array-like of int or 'auto', default='auto'
        Widths of the fully connected encoder's hidden layers; the decoder
        mirrors them. An empty tuple gives a linear autoencoder. ``'auto'``
        is the ``d-500-500-2000-10`` network of DEC and its successors from
        20,000 rows on (and in ``partial_fit``), and ``(500, 500, 1000)``
        below: on the MNIST test set (10,000 rows) the narrower network gave
        the same ACC in two thirds of the pre-training time, on
        Fashion-MNIST (70,000 rows) the wider one did better (see
        ``benchmarks/results/suite.md``). The network built is
        ``autoencoder_``.

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
        shape ``(n, n_features)`` (see the :ref:`User Guide <pretraining>`);
        ``forward`` is optional (without one, the module is wrapped in an
        :class:`~skdeepcluster._networks.EncodeDecodeAutoencoder`, whose
        ``forward(x)`` is ``decode(encode(x))``). A class is instantiated with
        ``module_kwargs`` (and ``n_features`` when its constructor accepts
        it); an instance is copied, never trained in place.

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

    epochs : int or 'auto', default='auto'
        Maximum number of pre-training passes over the data. ``'auto'`` gives
        the network a budget of about 1,500 optimizer steps:
        ``ceil(1500 / n_batches)`` epochs, clipped to [10, 200], where
        ``n_batches = ceil(n_samples / batch_size)``, and at most 600,000
        rows in all (but every row once). That is 188 epochs on the 1,797
        digits (under a minute on two CPU cores), 38 on 10,000 MNIST images,
        10 on 60,000 rows, 2 on 250,000 and 1 from 600,000 rows on. Set an
        int for full control.

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

    flip : bool, default=False
        Whether the image augmentation (``augment`` and ``self_label_augment``)
        also mirrors half of the images left to right, drawn at random. For
        images whose classes are mirror-symmetric (clothes, natural images),
        not for digits or letters. On Fashion-MNIST the neighbour consistency
        of ``self_label_consistency`` needs it: without it the defaults' fit of
        seed 1 stayed at 0.61-0.64, with it reached 0.70. Refused without an
        augmentation.

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

    callbacks : list of Callback or None, default=None
        Callbacks of the training loops (see :mod:`skdeepcluster.training`):
        for example ``[LRScheduler('cosine')]`` (a cosine learning-rate
        schedule), ``[GradientNormClipping(1.0)]`` (numerical safety for
        aggressive learning rates), ``[EarlyStopping(patience=5)]`` or your
        own :class:`~skdeepcluster.training.Callback`. They run in
        pre-training and in refinement (not in self-labelling, whose loop
        has only the NaN guard and progress bar), except those whose
        ``stage`` names one of them; each ``fit`` works on copies, so the objects you pass
        are never changed. With a list of devices they must pickle. Anything
        else (a string, a class, None) is refused with a ``TypeError``.

    warm_start : bool, default=False
        Reuse the trained network of the previous ``fit`` and continue
        training it for ``epochs`` more epochs, instead of starting from a
        fresh one. The second stage and clustering are always refitted. The
        network keeps the shape it was built with: a ``UserWarning`` names the
        parameters (``latent_dim``, ``hidden_layer_sizes``, ...) set to other
        values since (as ``partial_fit`` after a fit does).

    standardize : bool, default=True
        Scale each code dimension to zero mean and unit variance before the
        reducer and the clustering.

    reducer : 'auto', transformer or None, default='auto'
        Second stage applied to the (standardized) codes before clustering.
        ``'auto'`` is a :class:`~skdeepcluster.NeighborEmbedding` with
        ``min(max(n_clusters, 10), latent_dim)`` components: the neighbour-graph
        layout of "N2D", implemented in torch, which lets k-means find
        clusters that are not round in the codes (MNIST: 0.93 accuracy
        instead of 0.69). ``'auto'`` means no reducer when ``refine`` asks
        for a refinement (it works through an affine second stage) and in
        ``partial_fit``; at every size otherwise (its neighbour search
        scales: a KD-tree of the codes on large data, see
        :class:`~skdeepcluster.NeighborEmbedding`). Any scikit-learn
        compatible transformer (``PCA(n_components=5)``, ``umap.UMAP``,
        ``NeighborEmbedding(...)``) is cloned and fitted in ``fit``; its
        ``random_state`` is set from this estimator's when left as None, and
        an integer ``n_components`` of a PCA is clipped to the codes' shape.
        Its parameters are reachable as ``reducer__<name>``. None clusters
        the (standardized) codes themselves.

    clusterer : {'auto', 'graph', 'kmeans', 'minibatch_kmeans', 'gmm'} or estimator, \
            default='auto'
        How the embedding is clustered: k-means (``n_init`` starts;
        :class:`~sklearn.cluster.MiniBatchKMeans` from 100,000 samples on, or
        always with ``'minibatch_kmeans'``), a Gaussian mixture (``n_init``
        starts), or any clusterer with ``fit_predict``; its ``n_clusters`` /
        ``n_components`` parameter is set to ``n_clusters``. ``predict`` uses
        the clusterer's own ``predict`` when it has one, else the nearest
        cluster mean. ``'graph'`` (with the neighbour embedding as the second
        stage) finds ``n_clusters`` communities in the embedding's neighbour
        graph (its ``graph_``, dropped after clustering: the fitted model keeps
        nothing of the training data's size): k-means cuts the embedding into 100
        small clusters, which are merged greedily by modularity in the graph,
        ten times from different seeds, and the runs vote; new data go to the
        community of the nearest small cluster. ``'auto'`` is k-means, except
        with the neighbour embedding where the graph has about
        ``n_clusters`` communities and they fit it better than the k-means
        clusters do (higher modularity, and less than 0.05 of it lost by
        merging down to ``n_clusters``): Fashion-MNIST 0.571 -> 0.655 ACC,
        the MNIST test set 0.947 -> 0.950, and k-means kept on digits, wine,
        iris, breast cancer and generated signals, blobs and moons (see
        ``benchmarks/results/suite.md``).

    n_init : int or 'auto', default=10
        Number of clustering runs with different seeds; the best is kept.

    refine : 'auto', RefinementStrategy, {'kmeans', 'dec', 'idec'} or None, default='auto'
        Joint refinement of the encoder and the centres after the first
        clustering, by a strategy of :mod:`skdeepcluster.refine`:
        :class:`~skdeepcluster.refine.KMeansLoss` adds a k-means term to the
        reconstruction loss (Song et al., 2013);
        :class:`~skdeepcluster.refine.DEC` and
        :class:`~skdeepcluster.refine.IDEC` run DEC self-training (Xie et
        al., 2016), IDEC keeping the reconstruction loss (Guo et al., 2017).
        Each strategy holds its own settings (epochs, learning rate, tol,
        ``gamma``, ...), reachable as ``refine__<name>`` (e.g.
        ``GridSearchCV(est, {"refine__gamma": [0.1, 1.0]})``). The strings
        ``'kmeans'``, ``'dec'`` and ``'idec'`` stand for the strategies with
        their defaults (``set_params(refine__gamma=...)`` first turns one into
        its strategy object; ``'auto'`` and None have no such parameters).
        Refinement needs ``clusterer='kmeans'`` (or
        ``'minibatch_kmeans'``) and an affine second stage (the scaler and/or
        ``reducer=PCA(...)``). ``'auto'`` is ``IDEC()`` with an
        affine second stage (``reducer=None`` or ``PCA(...)``) and a k-means
        clusterer, and None (no refinement) otherwise, e.g. with the default
        neighbour-embedding ``reducer``.

    self_label : 'auto' or bool, default='auto'
        Self-labelling after the clustering: a copy of the trained encoder
        with a linear layer is trained to predict the clusters of the
        training samples (cross-entropy with label smoothing 0.1, 300 steps
        of ``batch_size`` rows but at most 15 passes over them, with
        ``optimizer`` and ``learning_rate``),
        and ``labels_`` and ``predict`` come from this classifier
        (``label_head_``), the same function for the training samples and
        new ones. It labels new data better than placing them in the
        neighbour embedding (5,000-row halves of the MNIST test set: 0.928
        against 0.911 on the unseen half, the training half unchanged);
        ``transform`` still returns the embedding. ``'auto'`` self-labels in
        ``fit`` when a network is trained, the second stage is a
        :class:`~skdeepcluster.NeighborEmbedding` and there is no refinement;
        ``True`` needs a trained network. The classifier is dropped (and the
        clusterer's labels kept) where it did not learn the clusters: where it
        gives fewer than 95 % of the training samples their cluster, empties
        one, or its training diverges; a ``UserWarning`` says so where
        self-labelling was asked for (``True``, ``self_label_rounds`` or
        ``self_label_consistency``), not where ``'auto'`` chose it.
        ``partial_fit`` never self-labels.

    self_label_consistency : int, default=0
        Steps of neighbour consistency (SCAN's clustering step) after
        self-labelling: the classifier is trained, for that many batches of
        ``batch_size`` rows, so that each training sample and one of its
        neighbours in the neighbour embedding's graph (drawn at random) get
        the same cluster, while an entropy term keeps the clusters' sizes
        even, then relabels every sample. It corrects clusters that cut the
        graph where the classes do not: on Fashion-MNIST,
        ``self_label_consistency=3000`` with ``self_label_augment=0.1`` and
        ``flip=True`` took the defaults' 0.688 to 0.705 (seeds 0-2, 322 s
        instead of 133 s on two CPU cores; see the user guide). It learns at
        a tenth of ``learning_rate``, augmented as ``self_label_augment``
        says, and holds the graph's training samples in memory (a streamed
        ``X`` too). It needs the second stage to be a
        :class:`~skdeepcluster.NeighborEmbedding` (``reducer='auto'`` is
        one); a value above 0 makes
        ``self_label='auto'`` self-label and is refused with
        ``self_label=False``. Its classifier is kept unless the training
        diverges or leaves a cluster empty. The rounds of
        ``self_label_rounds`` start from it.

    self_label_rounds : int, default=0
        Rounds of self-training after self-labelling, to go beyond the
        clusterer: each round takes the classifier's most confident training
        samples of each cluster (half of them in the first round, a tenth
        more each round, all from the sixth), trains the classifier on them
        for 1,000 steps of ``batch_size`` rows (at most 50 passes over them)
        with a cosine learning rate from ``learning_rate``, augmented as
        ``self_label_augment`` says, and relabels every sample with it. On
        the MNIST test set, six rounds with ``self_label_augment=0.1`` took
        ACC from 0.950 to 0.972 (seeds 0-2, 127 s instead of 45 s on two CPU
        cores; see the user guide). A value above 0
        makes ``self_label='auto'`` self-label (as ``True`` does); it is
        refused with ``self_label=False``. The rounds' classifier is kept
        unless a round diverges or it leaves a cluster empty (then the
        self-labelling classifier's labels stay). Whatever the rounds change,
        ``transform`` still returns the embedding, on which
        ``cluster_centers_`` and ``inertia_`` are.

    self_label_augment : float or None, default=None
        The image augmentation of the neighbour consistency and the
        self-training rounds, as ``augment``
        (needs ``image_shape``); None takes ``augment``'s value. Apart, because
        what helps the classifier need not help pre-training: on the MNIST
        test set (seed 0, six rounds) augmenting the rounds alone gave 0.974,
        augmenting pre-training too 0.964.

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
        too). It changes the speed, not the result: a fit gives the same
        labels on any number of threads (see the :ref:`User Guide
        <reproducibility>`).

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch order, noise, the validation split,
        the reducer and the clustering. An int gives identical labels on every
        fit on the same device; the global numpy and torch random states are
        left untouched.

    verbose : int, default=0
        ``0`` is quiet; ``1`` or more shows one progress bar per stage on
        stderr: pre-training (with the loss per epoch), encoding, the
        ``'auto'`` neighbour embedding's k-NN graph and layout, clustering and
        refinement.

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
        The trained autoencoder (in eval mode, on ``device_``); an
        :class:`IdentityAutoencoder` when no network was trained; a
        :class:`ProjectedAutoencoder` (around either) when ``input_pca``
        put principal components in front of it.

    architecture_ : {'none', 'mlp', 'conv', 'module'}
        The network that ``architecture`` resolved to (``'module'``: your
        own ``module``).

    input_components_ : int or None
        Number of principal components of the input that the network (or,
        without one, the second stage) sees; None for the input itself (see
        ``input_pca``).

    scaler_ : StandardScaler or None
        Scaler of the codes, when ``standardize=True``.

    reducer_ : transformer or None
        The fitted second stage after the scaler (a clone of ``reducer``).

    clusterer_ : estimator or None
        The fitted clusterer; None for k-means (``'kmeans'``, also when it ran
        as mini-batch k-means, and ``'minibatch_kmeans'``; also when
        ``'auto'`` kept k-means), which is summarised by ``cluster_centers_``.
        For the graph's communities (``'graph'``, or ``'auto'`` where it chose
        them), an object whose ``predict`` assigns an embedding to the
        community of its nearest small cluster, with ``fine_centers_`` (the
        small clusters' centres), ``fine_to_cluster_``, ``modularity_`` and
        ``modularity_drop_``; ``cluster_centers_`` are then the communities'
        mean embeddings.

    label_head_ : torch.nn.Module or None
        The self-labelling classifier (see ``self_label``): a copy of the
        encoder with a linear layer giving one logit per cluster, in eval
        mode on ``device_``; ``labels_`` and ``predict`` are its most likely
        cluster. None when ``fit`` did not self-label; ``labels_`` and
        ``predict`` are then those of the clusterer on the embedding.

    history_ : dict
        Per-epoch losses of pre-training: ``'train_loss'``, ``'val_loss'``
        (empty without a validation split) and ``'best_epoch'`` (index of the
        lowest monitored loss); after refinement also ``'refine_loss'``,
        ``'refine_recon_loss'``, ``'refine_cluster_loss'`` and
        ``'n_changed'`` (fraction of labels changed per update); after
        self-labelling ``'self_label_loss'`` (per epoch over the rows it
        trained on); after self-training ``'self_train_loss'`` (per epoch
        of every round).

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
    and rounds each code to float32 precision relative to its largest entry,
    so that the embedding and label of a row
    do not depend on the other rows transformed with it, and identical rows
    get identical results. ``fit`` runs as a list of stages over a plan in
    which every ``'auto'`` is resolved once: pre-train, encode, second stage,
    cluster, refine (see :ref:`architecture`). Its random streams are
    spawned from one :class:`numpy.random.SeedSequence`; on the CPU the same
    ``random_state`` gives identical results, and CUDA kernels may add tiny
    run-to-run differences.

    ``score`` is the negative k-means objective in the embedding space (each
    sample's distance to the centre of its cluster). Like
    :meth:`sklearn.cluster.KMeans.score`, it favours more clusters, and values
    for different ``latent_dim`` or reducers live in different
    spaces: compare them with care, or grid-search with a label-based scorer
    such as :func:`skdeepcluster.metrics.cluster_accuracy` when labels exist.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdeepcluster import AutoencoderKMeans
    >>> X, y = make_blobs(n_samples=200, centers=3, n_features=8, random_state=0)
    >>> model = AutoencoderKMeans(n_clusters=3, hidden_layer_sizes=(32,),
    ...                           latent_dim=2, epochs=100, random_state=0)
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
        "architecture": [StrOptions({"auto", "mlp", "conv", "none"})],
        "image_shape": [tuple, list, None],
        "input_pca": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "hidden_layer_sizes": ["array-like", StrOptions({"auto"})],
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
        "epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "noise": [Interval(Real, 0, None, closed="left")],
        "noise_type": [StrOptions({"gaussian", "mask"})],
        "augment": [Interval(Real, 0, 0.5, closed="left")],
        "flip": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "callbacks": [list, tuple, None],
        "warm_start": ["boolean"],
        "standardize": ["boolean"],
        "reducer": [StrOptions({"auto"}), HasMethods(["fit", "transform"]), None],
        "clusterer": [
            StrOptions({"auto", "graph", "kmeans", "minibatch_kmeans", "gmm"}),
            HasMethods(["fit_predict"]),
        ],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "refine": [
            StrOptions({"auto", *_plan.REFINE_SHORTCUTS}),
            HasMethods(["refine", "get_params"]),
            None,
        ],
        "self_label": [StrOptions({"auto"}), "boolean"],
        "self_label_consistency": [Interval(Integral, 0, None, closed="left")],
        "self_label_rounds": [Interval(Integral, 0, None, closed="left")],
        "self_label_augment": [Interval(Real, 0, 0.5, closed="left"), None],
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
        input_pca="auto",
        hidden_layer_sizes="auto",
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
        epochs="auto",
        noise=0.0,
        noise_type="gaussian",
        augment=0.0,
        flip=False,
        validation_fraction=0.0,
        n_iter_no_change=None,
        tol=1e-4,
        callbacks=None,
        warm_start=False,
        standardize=True,
        reducer="auto",
        clusterer="auto",
        n_init=10,
        refine="auto",
        self_label="auto",
        self_label_consistency=0,
        self_label_rounds=0,
        self_label_augment=None,
        streaming="auto",
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.architecture = architecture
        self.image_shape = image_shape
        self.input_pca = input_pca
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
        self.epochs = epochs
        self.noise = noise
        self.noise_type = noise_type
        self.augment = augment
        self.flip = flip
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.standardize = standardize
        self.reducer = reducer
        self.clusterer = clusterer
        self.n_init = n_init
        self.refine = refine
        self.self_label = self_label
        self.self_label_consistency = self_label_consistency
        self.self_label_rounds = self_label_rounds
        self.self_label_augment = self_label_augment
        self.streaming = streaming
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def set_params(self, **params):
        """Set the parameters of this estimator, ``refine__<name>`` on a shortcut included.

        As scikit-learn's ``set_params``, except that a nested
        ``refine__<name>`` where ``refine`` is a string shortcut (``'kmeans'``,
        ``'dec'``, ``'idec'``) first replaces the shortcut with the strategy it
        stands for (``'idec'`` becomes ``IDEC()``), then sets the parameter on
        it: ``GridSearchCV(est, {"refine__gamma": [0.1, 1.0]})`` works with
        ``refine='idec'`` as with ``refine=IDEC()``.

        Parameters
        ----------
        **params : dict
            Parameters, and ``<component>__<name>`` for those of the
            ``reducer``, ``clusterer`` and ``refine`` objects.

        Returns
        -------
        self : AutoencoderKMeans
            This estimator.

        Raises
        ------
        ValueError
            For ``refine__<name>`` when ``refine`` is ``'auto'`` or None (no
            strategy to set it on: pass one, e.g. ``refine=IDEC()``).
        """
        nested = {k[len("refine__"):]: v for k, v in params.items() if k.startswith("refine__")}
        refine = params.get("refine", self.refine)
        if nested and (refine is None or isinstance(refine, str)):
            params = {k: v for k, v in params.items() if not k.startswith("refine__")}
            params["refine"] = _plan.refine_strategy(refine, nested)
        return super().set_params(**params)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=False)  # reducer, clusterer: estimators
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
        self._atomic(self._fit, X, keep_previous=self.warm_start)
        return self

    @_fit_context(prefer_skip_nested_validation=False)  # reducer, clusterer: estimators
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
        return self._atomic(self._fit, X, keep_previous=self.warm_start)

    @_fit_context(prefer_skip_nested_validation=False)  # reducer, clusterer: estimators
    def partial_fit(self, X, y=None):
        """Train the autoencoder for one more pass over ``X``, then recluster ``X``.

        For data that arrive in chunks or do not fit in memory at once. The
        first call builds the network (as ``fit`` would); each call trains it
        for one epoch on ``X``, keeping the optimizer's state between calls,
        and refits the second stage and the clustering on the embedding of
        ``X`` (no refinement; ``reducer='auto'`` means no reducer here, since
        each call refits on one chunk). With k-means or the Gaussian mixture
        and an affine second stage (scaler and/or ``reducer=PCA(...)``), the
        clustering starts from the previous centres, mapped into the new
        embedding, so that cluster ``k`` stays cluster ``k`` from call to
        call; otherwise it starts afresh and cluster ids may change. After a
        ``fit``, ``partial_fit`` continues training the fitted network (a
        ``UserWarning`` names the parameters of its shape set to other values
        since it was built).
        ``input_pca='auto'`` projects nothing here (one chunk need not
        represent the data); an integer ``input_pca`` fits the principal
        components on the first chunk and keeps them.

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
        the optimizer afresh. ``device`` must be a single device. Call ``n``
        draws its random streams from its own child of the estimator's
        :class:`~numpy.random.SeedSequence`.
        """
        self._atomic(self._partial_fit, X, keep_previous=True)
        return self

    def _atomic(self, fit, X, *, keep_previous):
        """Run ``fit(X)``; if it fails, leave the estimator as it was (or unfitted)."""
        previous = {k: v for k, v in vars(self).items() if _is_fitted_attr(k)}
        private = {k: vars(self)[k] for k in _PARTIAL_FIT_STATE if k in vars(self)}
        module, optimizer = previous.get("autoencoder_"), private.get("_optimizer")
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
            for name in [k for k in vars(self) if _is_fitted_attr(k) or k in _PARTIAL_FIT_STATE]:
                delattr(self, name)
            if keep_previous:
                vars(self).update(previous)
                vars(self).update(private)
                if saved is not None:
                    module.load_state_dict(saved[0])
                    if optimizer is not None:
                        optimizer.load_state_dict(saved[1])
            raise

    def _fit(self, X):
        """The stages of ``fit``; returns the embedding of ``X``."""
        previous = getattr(self, "autoencoder_", None) if self.warm_start else None
        previous_n_features = getattr(self, "n_features_in_", None)
        X, stream = self._validate_fit_data(X, reset=True)
        entropy = _plan.root_entropy(self.random_state)
        plan = _plan.resolve_plan(
            self, X.shape, stream=stream, seeds=_plan.fit_seeds(entropy), partial=False
        )
        if previous is not None and previous_n_features != X.shape[1]:
            raise ValueError(
                f"warm_start=True but X has {X.shape[1]} features while the "
                f"previous fit had {previous_n_features}."
            )
        warn_if_badly_scaled(
            max_abs(X), network=plan.architecture != "none", standardize=self.standardize,
            stacklevel=6,
        )
        previous = self._kept_network(previous, plan)
        callbacks = self._fresh_callbacks()
        module, history = self._pretrain(X, plan, previous, callbacks)
        with stage_bar("encoding", X.shape[0], self.verbose and _trainable(module), "row") as bar:
            codes = encode_array(module, X, device=plan.device, progress=bar)
        second_stage, embedding = self._fit_second_stage(codes, plan)
        clusterer, centers = self._cluster(embedding, plan, second_stage=second_stage)
        graph = _take_graph(second_stage.reducer)
        if not (plan.self_label and self.self_label_consistency):
            graph = None  # not needed: freed now, before refinement and self-labelling
        if plan.refine is not None:
            centers, embedding, refine_history = self._refine(
                X, module, centers, second_stage, plan, callbacks
            )
            history.update(refine_history)
        labels, head = self._predict_embedding(embedding, clusterer, centers), None
        if plan.self_label:
            head, labels, label_history = self._self_label(
                X, module, codes.shape[1], labels, plan, graph
            )
            history.update(label_history)
        self._set_fitted(
            module, plan.device, second_stage, clusterer, centers, embedding,
            head=head, labels=labels,
        )
        if previous is None:  # a fresh network (a kept one keeps what it was built from)
            self._set_network_record(plan)
        self.history_, self.n_iter_ = history, len(history["train_loss"])
        # partial_fit after fit continues this network with a fresh optimizer.
        self._optimizer, self._seed_entropy, self._n_partial_fit_calls = None, entropy, 0
        return embedding

    def _partial_fit(self, X):
        first_call = not hasattr(self, "autoencoder_")
        X, stream = self._validate_fit_data(X, reset=first_call)
        if first_call:
            self._seed_entropy = _plan.root_entropy(self.random_state)
            self._n_partial_fit_calls = 0
        n_call = self._n_partial_fit_calls
        seeds = _plan.partial_fit_seeds(self._seed_entropy, n_call)
        plan = _plan.resolve_plan(self, X.shape, stream=stream, seeds=seeds, partial=True)
        if first_call:
            if len(plan.devices) > 1:
                raise ValueError("partial_fit trains on one device; got a list of devices.")
            with torch_seed_context(seeds.init, plan.device):
                module, device = self._network(plan, X), plan.device
            module, history = module.to(device), {"train_loss": [], "val_loss": []}
            self._set_network_record(plan)
        else:
            module, device = self.autoencoder_, self.device_
            if _trainable(module):
                self._check_kept_network(plan, "partial_fit", stacklevel=6)
            history = {k: list(self.history_.get(k, [])) for k in ("train_loss", "val_loss")}
        warn_if_badly_scaled(
            max_abs(X), network=_trainable(module), standardize=self.standardize, stacklevel=6
        )
        epoch = self._partial_train(module, X, stream, device, seeds)
        codes = encode_array(module, X, device=device)
        second_stage, embedding = self._fit_second_stage(codes, plan)
        previous = None if first_call else (self.second_stage_, self.cluster_centers_)
        clusterer, centers = self._cluster(
            embedding, plan, second_stage=second_stage, previous=previous
        )
        _take_graph(second_stage.reducer)
        self._set_fitted(module, device, second_stage, clusterer, centers, embedding)
        history["train_loss"] += epoch["train_loss"]
        self.history_ = {**history, "best_epoch": None}
        self.n_iter_ = (0 if first_call else self.n_iter_) + len(epoch["train_loss"])
        self._n_partial_fit_calls = n_call + 1

    def _kept_network(self, previous, plan):
        """The fitted network that ``warm_start`` trains further, or None (a fresh one).

        Warns when the parameters it was built from have changed since
        (:meth:`_check_kept_network`).
        """
        if previous is None or not _trainable(previous) or plan.architecture == "none":
            return None
        self._check_kept_network(plan, "warm_start=True", stacklevel=7)
        return previous

    def _set_network_record(self, plan):
        """What a freshly built network is: ``architecture_``, ``input_components_`` and
        the parameters it was built from (``_network_shape_``)."""
        self.architecture_ = plan.architecture
        self.input_components_ = plan.input_components or None
        self._network_shape_ = _plan.network_shape(self, plan)

    def _partial_train(self, module, X, stream, device, seeds):
        """One epoch of ``partial_fit`` on ``X`` (none without a network); its history."""
        if not _trainable(module):
            return {"train_loss": []}
        if getattr(self, "_optimizer", None) is None:
            self._optimizer = self._make_optimizer(module.parameters())
        with torch_seed_context(seeds.init, device):  # dropout, without touching global state
            return train_autoencoder(
                module,
                self._source(X, stream, device),
                optimizer=self._optimizer,
                generator=torch.Generator().manual_seed(seeds.batches),
                augment=self._augmenter(X.shape[1], seeds.augment),
                callbacks=self._fresh_callbacks(),
                **self._train_params(epochs=1),
            )

    # ---------------------------------------------------------- the stages
    def _pretrain(self, X, plan, previous, callbacks):
        """Stage 1: the trained autoencoder (a copy of ``previous`` to warm-start) and history."""
        if plan.architecture == "none":  # no network, nothing to train
            return self._network(plan, X), _empty_history()
        X_train, X_val = split_rows(X, self.validation_fraction, plan.seeds.split)
        with torch_seed_context(plan.seeds.init, plan.device):
            if previous is not None and _trainable(previous):
                module = copy.deepcopy(previous)  # the old model survives a failure
            else:
                module = self._network(plan, X_train)
            module = module.to(plan.device)
            params = self._train_params(epochs=plan.epochs)
            if len(plan.devices) > 1:
                from .training._distributed import train_autoencoder_distributed

                history = train_autoencoder_distributed(
                    module,
                    X_train,
                    devices=plan.devices,
                    optimizer=self.optimizer,
                    learning_rate=self.learning_rate,
                    weight_decay=self.weight_decay,
                    seed=plan.seeds.batches,
                    X_val=X_val,
                    callbacks=callbacks,
                    **params,
                )
            else:
                history = train_autoencoder(
                    module,
                    self._source(X_train, plan.stream, plan.device),
                    optimizer=self._make_optimizer(module.parameters()),
                    X_val=None if X_val is None else to_tensor(X_val, plan.device),
                    generator=torch.Generator().manual_seed(plan.seeds.batches),
                    augment=self._augmenter(X.shape[1], plan.seeds.augment),
                    callbacks=callbacks,
                    **params,
                )
        return module, history

    def _fit_second_stage(self, codes, plan):
        """Stage 3: the scaler and the reducer, fitted on the codes."""
        return fit_second_stage(
            codes,
            standardize=self.standardize,
            reducer=_plan.make_reducer(plan, self, codes.shape[1]),
            random_state=plan.seeds.cluster,
        )

    def _cluster(self, embedding, plan, *, second_stage=None, previous=None):
        """Stage 4: the fitted clusterer and its centres (the labels: ``_set_fitted``).

        ``previous`` (the last second stage and centres, from ``partial_fit``)
        warm-starts the clustering when both second stages are affine: the old
        centres are mapped back to codes and into the new embedding, so that
        cluster ids carry over.
        """
        init_centers = None
        if previous is not None and previous[0].is_affine and second_stage.is_affine:
            init_centers = second_stage.transform(previous[0].inverse_transform(previous[1]))
        with stage_bar("clustering", 1, self.verbose, unit="fit") as bar:
            if plan.clusterer in ("auto", "graph"):
                fitted = self._cluster_graph(embedding, plan, second_stage.reducer)
            else:
                fitted = self._fit_clusterer(embedding, plan.clusterer, plan, init_centers)[:2]
            bar.update(1)
        return fitted

    def _fit_clusterer(self, embedding, clusterer, plan, init_centers=None):
        """``fit_clusterer`` with this estimator's ``n_clusters``, ``n_init`` and seed."""
        return fit_clusterer(
            embedding,
            clusterer=clusterer,
            n_clusters=self.n_clusters,
            n_init=self.n_init,
            random_state=plan.seeds.cluster,
            init_centers=init_centers,
        )

    def _cluster_graph(self, embedding, plan, reducer):
        """``clusterer='graph'`` or ``'auto'``: the communities of the reducer's graph, or k-means.

        ``'auto'`` keeps k-means unless the communities fit the graph better
        (:func:`~skdeepcluster._communities.prefer_communities`); ``'graph'``
        falls back to k-means, with a warning, where there are no communities
        (too few samples, or more than ``MAX_MICRO / MICRO_PER_CLUSTER`` clusters).
        """
        rows = reducer.fit_indices_  # the samples of the graph
        communities = fit_graph_communities(
            embedding[rows], reducer.graph_, self.n_clusters, plan.seeds.communities
        )
        if plan.clusterer == "graph" and communities is None:
            warnings.warn(
                f"clusterer='graph' found no {self.n_clusters} communities in the "
                f"neighbour graph of {rows.shape[0]} samples; k-means was used instead.",
                UserWarning,
                stacklevel=2,
            )
        if plan.clusterer == "auto" or communities is None:
            kmeans = self._fit_clusterer(embedding, _plan.kmeans_kind(embedding.shape[0]), plan)
            if not prefer_communities(communities, kmeans[2][rows], reducer.graph_):
                return kmeans[:2]
        return communities, communities.cluster_centers_

    def _refine(self, X, module, centers, second_stage, plan, callbacks):
        """Stage 5: joint refinement through the affine second stage; centres, embedding."""
        strategy, device = plan.refine, plan.device
        source = self._source(X, plan.stream, device)
        with torch_seed_context(plan.seeds.refine, device):
            new_centers, history = strategy.refine(
                module,
                source,
                torch.as_tensor(centers, dtype=torch.float32, device=device),
                embed=affine_head_from_sklearn(
                    second_stage.scaler, second_stage.reducer, device=device
                ),
                batch_size=min(self.batch_size, source.n_samples),
                optimizer_factory=lambda params: self._make_optimizer(
                    params, learning_rate=strategy.learning_rate
                ),
                loss=self.loss,
                generator=torch.Generator().manual_seed(plan.seeds.refine),
                callbacks=callbacks,
                verbose=self.verbose,
            )
        embedding = second_stage.transform(encode_array(module, X, device=device))
        return new_centers.detach().cpu().numpy().astype(np.float64), embedding, history

    def _self_label(self, X, module, n_codes, clusters, plan, graph):
        """Stage 6: the classifier of ``clusters``, its labels of ``X`` and its history.

        The classifier is dropped (None, and ``clusters`` as the labels) when
        its training diverged, when it leaves one of the clusters empty or
        gives fewer than ``MIN_AGREEMENT`` of the rows their cluster (it did
        not learn the clustering); a ``UserWarning`` says so and why when
        self-labelling was asked for (not ``'auto'``). Then the neighbour
        consistency on ``graph`` (:meth:`_consistency`) and ``self_label_rounds``
        rounds of self-training (:meth:`_self_train`).
        """
        head, history = train_label_head(
            module,
            X,
            clusters,
            n_codes=n_codes,
            n_clusters=self.n_clusters,
            batch_size=self.batch_size,
            optimizer_factory=self._make_optimizer,
            seed=plan.seeds.self_label,
            device=plan.device,
            verbose=self.verbose,
        )
        labels = None if head is None else predict_labels(head, X, device=plan.device)
        failure = _head_failure(labels, clusters)
        if failure is not None:
            self._warn_not_kept(
                "the self-labelling classifier", failure, "the clusterer's", stacklevel=7
            )
            return None, clusters, history
        if self.self_label_consistency:
            head, labels = self._consistency(X, head, labels, plan, history, graph)
        if self.self_label_rounds:
            head, labels = self._self_train(X, head, labels, plan, history)
        return head, labels, history

    def _self_label_augmenter(self, X):
        """The batch augmentation factory (of a seed) of the classifier's trainings, or None."""
        amount = self.augment if self.self_label_augment is None else self.self_label_augment
        if not amount:
            return None
        return functools.partial(self._augmenter, X.shape[1], amount=amount)

    def _consistency(self, X, head, labels, plan, history, graph):
        """The classifier after neighbour consistency on ``graph`` (the neighbour embedding's
        ``graph_`` and ``fit_indices_``) and its labels (:meth:`_train_further`)."""
        graph, rows = graph
        return self._train_further(
            train_consistency, X, head, labels, plan, history, "self_label_consistency",
            graph=graph, rows=rows, n_steps=self.self_label_consistency,
            optimizer_factory=lambda params: self._make_optimizer(
                params, learning_rate=CONSISTENCY_LEARNING_RATE_SHARE * self.learning_rate
            ),
            seed=plan.seeds.consistency,
        )

    def _self_train(self, X, head, labels, plan, history):
        """The self-trained classifier and its labels (:meth:`_train_further`)."""
        return self._train_further(
            self_train, X, head, labels, plan, history, "self_label_rounds",
            n_rounds=self.self_label_rounds,
            optimizer_factory=self._make_optimizer, seed=plan.seeds.self_train,
        )

    def _train_further(self, train, X, head, labels, plan, history, name, **kwargs):
        """``train`` (``self_train`` or ``train_consistency``, asked for by ``name``) on a
        copy of ``head``.

        Returns the trained classifier and its labels of ``X``, or ``head`` and
        ``labels`` (with a ``UserWarning``) when the training diverged or emptied
        a cluster; adds the training's losses to ``history``.
        """
        trained, train_history = train(
            head, X, batch_size=self.batch_size, augment=self._self_label_augmenter(X),
            device=plan.device, verbose=self.verbose, **kwargs,
        )
        history.update(train_history)
        trained_labels = None if trained is None else predict_labels(trained, X, device=plan.device)
        failure = _head_failure(trained_labels, labels, min_agreement=0.0)
        if failure is not None:
            what = f"the classifier trained by {name}={getattr(self, name)}"
            self._warn_not_kept(what, failure, "the self-labelling classifier's", stacklevel=9)
            return head, labels
        return trained, trained_labels

    def _self_label_request(self):
        """The parameters that asked for self-labelling (``'name=value'``), or None for 'auto'."""
        asked = [] if _plan._is_auto(self.self_label) else [f"self_label={self.self_label!r}"]
        asked += [
            f"{name}={getattr(self, name)}"
            for name in ("self_label_consistency", "self_label_rounds")
            if getattr(self, name)
        ]
        return " and ".join(asked) or None

    def _warn_not_kept(self, what, failure, kept, stacklevel):
        """The ``UserWarning`` of a classifier dropped because of ``failure`` (asked for only).

        ``stacklevel`` points the warning at the caller of ``fit``.
        """
        request = self._self_label_request()
        if request is None:
            return  # self_label='auto': dropping the classifier is its rule
        warnings.warn(
            f"{request} asked for self-labelling, but {what} was not kept: {failure}. "
            f"labels_ and predict are {kept} labels.",
            UserWarning,
            stacklevel=stacklevel,
        )

    def _set_fitted(
        self, module, device, second_stage, clusterer, centers, embedding, *, head=None,
        labels=None,
    ):
        """Stage 7: the fitted attributes, labels consistent with ``predict``.

        ``labels`` are the training rows' labels: the self-labelling ``head``'s,
        else the clusterer's on ``embedding`` (computed here when None).
        """
        self.autoencoder_ = module
        self.device_ = device
        self.second_stage_ = second_stage
        self.scaler_ = second_stage.scaler
        self.reducer_ = second_stage.reducer
        self.clusterer_ = clusterer
        self.cluster_centers_ = centers
        self.label_head_ = head
        if labels is None:
            labels = self._predict_embedding(embedding, clusterer, centers)
        self.labels_ = labels
        self.inertia_ = float(((embedding - centers[labels]) ** 2).sum())

    # -------------------------------------------------------------- helpers
    def _validate_fit_data(self, X, *, reset):
        """Validated ``X`` and whether to stream it (see the ``streaming`` parameter)."""
        stream = _plan.streams(self, X)
        if stream and (self.validation_fraction or isinstance(self.device, (list, tuple))):
            raise ValueError(
                "streaming=True cannot be combined with validation_fraction > 0 or a "
                "list of devices; use streaming=False (or 'auto')."
            )
        X = self._validate_X(X, reset=reset, stream=stream)
        if self.n_clusters > X.shape[0]:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}."
            )
        self._check_param_combinations()
        return X, stream

    def _validate_X(self, X, *, reset, stream):
        if stream and streamable(X):
            check_stream(X)
            _check_feature_names(self, X, reset=reset)
            _check_n_features(self, X, reset=reset)
            return X
        return validate_data(self, X, reset=reset, dtype=_FLOAT_DTYPES)

    def _check_param_combinations(self):
        self._check_no_network()
        if self.architecture == "conv" and self.image_shape is None and self.module is None:
            raise ValueError("architecture='conv' needs image_shape=(C, H, W).")
        for name in ("augment", "self_label_augment"):
            if getattr(self, name) and self.image_shape is None:
                raise ValueError(
                    f"{name}={getattr(self, name)} shifts and rotates images; it needs "
                    "image_shape=(C, H, W)."
                )
        if self.flip and not (self.augment or self.self_label_augment):
            raise ValueError(
                "flip=True mirrors the augmented images, but there is no augmentation; "
                "set augment or self_label_augment above 0, or flip=False."
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
        self._check_callbacks()
        self._check_module()
        self._check_refine()
        further = (("self_label_rounds", "self-trains"), ("self_label_consistency", "trains"))
        for name, verb in further:
            value = getattr(self, name)
            if value and self.self_label is False:
                raise ValueError(
                    f"{name}={value} {verb} the self-labelling classifier, but "
                    "self_label=False trains none; use self_label='auto' or True, or "
                    f"{name}=0."
                )
        if self.self_label_augment and not (self.self_label_rounds or self.self_label_consistency):
            raise ValueError(
                f"self_label_augment={self.self_label_augment} augments the "
                "neighbour consistency and the self-training rounds; set "
                "self_label_consistency > 0 or self_label_rounds > 0."
            )
        self._check_consistency_reducer()

    def _check_callbacks(self):
        """Each entry of ``callbacks`` is a training callback: a ``TypeError`` names it if not.

        The loop calls every hook of every callback, so an entry must be a
        :class:`~skdeepcluster.training.Callback` instance or have all of its
        hooks; a class is refused too (its hooks are unbound).
        """
        for i, callback in enumerate(self.callbacks or ()):
            if isinstance(callback, type):
                raise TypeError(
                    f"callbacks[{i}]={callback!r} is a class; pass an instance, e.g. "
                    f"{callback.__name__}()."
                )
            if not isinstance(callback, Callback) and not all(
                callable(getattr(callback, hook, None)) for hook in CALLBACK_HOOKS
            ):
                raise TypeError(
                    f"callbacks[{i}]={callback!r} is not a training callback: pass instances "
                    "of skdeepcluster.training.Callback, e.g. callbacks=[LRScheduler('cosine')"
                    f"] (or objects with all of its hooks: {', '.join(CALLBACK_HOOKS)})."
                )
            if hasattr(callback, "_validate_params"):
                callback._validate_params()

    def _check_module(self):
        """A ``module`` instance has ``encode`` and ``decode`` (a class: once built, in ``fit``)."""
        if isinstance(self.module, torch.nn.Module):
            check_encode_decode(self.module, self.module)

    def _check_kept_network(self, plan, how, stacklevel):
        """Warn when the network trained further lacks the new values of its parameters.

        ``how`` says what keeps the fitted network (``'warm_start=True'`` or
        ``'partial_fit'``); the network is compared with what it was built
        from (``_network_shape_``, see :func:`~skdeepcluster._plan.network_shape`).
        ``stacklevel`` points the warning at the caller of ``fit`` or ``partial_fit``.
        """
        built = getattr(self, "_network_shape_", None)  # None: pickled by an older version
        if built is None:
            return
        now = _plan.network_shape(self, plan)
        changed = _plan.changed_network_params(built, now)
        if not changed:
            return
        shown = {name: now[name][name == "architecture"] for name in changed}
        new = ", ".join(f"{name}={_shown(value)}" for name, value in shown.items())
        old = ", ".join(f"{name}={_shown(built[name][1])}" for name in changed)
        warnings.warn(
            f"{how} trains the fitted network further, and it was built with {old}: it does "
            f"not have the new {new}. Fit with warm_start=False (or a fresh estimator) to "
            "build a new network.",
            UserWarning,
            stacklevel=stacklevel,
        )

    def _check_consistency_reducer(self):
        """``self_label_consistency`` trains on the neighbour embedding's graph."""
        reducer = self.reducer
        if not self.self_label_consistency or _plan._is_auto(reducer):
            return
        if not isinstance(reducer, NeighborEmbedding):
            raise ValueError(
                f"self_label_consistency={self.self_label_consistency} trains on the "
                "neighbour embedding's graph, but reducer is "
                f"{type(reducer).__name__ if reducer is not None else None}; use "
                "reducer='auto' or a NeighborEmbedding, or self_label_consistency=0."
            )

    def _check_no_network(self):
        """``architecture='none'`` refuses the options that only a network can use."""
        if self.architecture != "none" or self.module is not None:
            return
        asked = {
            name: getattr(self, name)
            for name in ("augment", "noise")
            if getattr(self, name)
        }
        if self.refine is not None and not _plan._is_auto(self.refine):
            asked["refine"] = self.refine
        if self.self_label is True:
            asked["self_label"] = True
        for name in ("self_label_consistency", "self_label_rounds"):
            if getattr(self, name):
                asked[name] = getattr(self, name)
        if asked:
            (name, value), *_ = asked.items()
            raise ValueError(
                f"{name}={value!r} needs a network to train, but architecture='none' "
                "trains none; use architecture='auto', 'mlp' or 'conv'."
            )

    def _check_refine(self):
        if self.refine is None or (isinstance(self.refine, str) and self.refine == "auto"):
            return
        if isinstance(self.refine, RefinementStrategy):
            self.refine._validate_params()
        if not (isinstance(self.clusterer, str) and self.clusterer in _plan.KMEANS_CLUSTERERS):
            raise ValueError(
                f"refine={self.refine!r} needs clusterer='kmeans', got "
                f"{self.clusterer!r}; use refine=None (or 'auto') with other clusterers."
            )
        reducer = None if isinstance(self.reducer, str) else self.reducer
        if not is_affine(reducer):
            raise ValueError(
                f"refine={self.refine!r} works through the scaler and a PCA reducer "
                f"only; it cannot be combined with reducer={self.reducer!r}."
            )

    def _network(self, plan, X):
        """The untrained network of the plan (``architecture`` and ``input_pca`` resolved).

        With ``plan.input_components``, the network of that many features sits
        behind the input's principal components, fitted on (a sample of) ``X``.
        """
        params = {
            **self.get_params(),
            "architecture": plan.architecture,
            "hidden_layer_sizes": plan.hidden_layer_sizes,
        }
        n_features, n_components = X.shape[1], plan.input_components
        if not n_components:
            return network_from_params(params, n_features)
        if params["image_shape"] is not None:
            resolve_image_shape(params["image_shape"], n_features)  # validated on the input
        inner = network_from_params({**params, "image_shape": None}, n_components)
        mean, components = fit_projection(X, n_components, seed=plan.seeds.projection)
        return ProjectedAutoencoder(inner, mean, components)

    def _fresh_callbacks(self):
        """Copies of the user's callbacks for one fit (the parameter stays untouched)."""
        return [clone(callback, safe=False) for callback in self.callbacks or ()]

    def _make_optimizer(self, params, learning_rate=None):
        return make_optimizer(
            self.optimizer,
            params,
            learning_rate=self.learning_rate if learning_rate is None else learning_rate,
            weight_decay=self.weight_decay,
        )

    def _train_params(self, *, epochs):
        """Keyword arguments of the pre-training loop that come from the parameters."""
        return dict(
            epochs=epochs,
            batch_size=self.batch_size,
            loss=self.loss,
            noise=self.noise,
            noise_type=self.noise_type,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=self.verbose,
        )

    def _augmenter(self, n_features, seed, amount=None):
        """The batch augmentation of ``amount`` (default ``augment``; None when 0), seeded
        with ``seed``."""
        amount = self.augment if amount is None else amount
        if not amount:
            return None
        return RandomAffine(
            resolve_image_shape(self.image_shape, n_features),
            shift=amount,
            rotation=100.0 * amount,
            flip=self.flip,
            generator=torch.Generator().manual_seed(seed),
        )

    def _source(self, X, stream, device):
        """Training data: one tensor on ``device``, or a stream of blocks."""
        if stream:
            return StreamSource(X, device, min(self.batch_size, X.shape[0]))
        return TensorSource(to_tensor(X, device))

    # -------------------------------------------------------- inference
    def _check_new_X(self, X):
        check_is_fitted(self)
        return self._validate_X(X, reset=False, stream=_plan.streams(self, X))

    def _transform(self, X):
        return self._embed(self._check_new_X(X))

    def _embed(self, X):
        """The embedding of validated ``X``."""
        with torch_threads(self.n_jobs):
            codes = encode_array(self.autoencoder_, X, device=self.device_)
        return self.second_stage_.transform(codes)

    def _labels(self, X, embedding=None):
        """The clusters of validated ``X``: the self-labelling head's, or on its embedding."""
        # getattr: models pickled before self-labelling have no label_head_.
        if getattr(self, "label_head_", None) is not None:
            with torch_threads(self.n_jobs):
                return predict_labels(self.label_head_, X, device=self.device_)
        if embedding is None:
            embedding = self._embed(X)
        return self._predict_embedding(embedding, self.clusterer_, self.cluster_centers_)

    def transform(self, X):
        """Embed ``X``: encoder, then the fitted scaler and reducer when set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed; each row's embedding depends on that row alone.

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_embedding)
            The space in which ``cluster_centers_`` live.
        """
        return self._transform(X)

    def predict(self, X):
        """Cluster of each sample: the self-labelling classifier, or the clusterer on the embedding.

        With ``label_head_`` (see ``self_label``), the classifier's most
        likely cluster; otherwise the nearest centre in the embedding, or the
        clusterer's ``predict`` on it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster index of each sample.
        """
        return self._labels(self._check_new_X(X))

    @staticmethod
    def _predict_embedding(embedding, clusterer, centers):
        """The cluster of each row of an embedding (``predict`` after ``transform``).

        The clusterer's ``predict`` where it has one; else (k-means, or a
        clusterer without ``predict`` such as agglomerative clustering) the
        nearest centre, for new data and the training samples alike.
        """
        if clusterer is not None and hasattr(clusterer, "predict"):
            return np.asarray(clusterer.predict(embedding), dtype=np.int64)
        labels, _ = assign_nearest(embedding, centers)
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
            Not used.

        Returns
        -------
        score : float
            Minus the sum of squared distances of the samples to the centre of
            their cluster (:meth:`predict`): the nearest centre for k-means;
            on the training data, ``-inertia_``.
        """
        X = self._check_new_X(X)
        embedding = self._embed(X)
        labels = self._labels(X, embedding)
        return -float(((embedding - self.cluster_centers_[labels]) ** 2).sum())

    def reconstruct(self, X):
        """Pass ``X`` through the autoencoder: the decoded inputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct (new or seen in ``fit``).

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
            ``decode(encode(X))``, in the feature space of ``X``.
        """
        X = self._check_new_X(X)
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
        for name in ("autoencoder_", "label_head_"):
            module = state.get(name)
            if module is not None and _module_device(module).type != "cpu":
                # Pickle CPU weights so the model loads on machines without a GPU.
                state[name] = copy.deepcopy(module).to("cpu")
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "autoencoder_" in state:
            device = available_device(state["device_"])
            self.autoencoder_ = self.autoencoder_.to(device).eval()
            if getattr(self, "label_head_", None) is not None:
                self.label_head_ = self.label_head_.to(device).eval()
            self.device_ = device

