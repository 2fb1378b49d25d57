"""The :class:`AutoencoderKMeans` estimator.

Parameters, their constraints, the docstring, and a ``fit`` that reads as a
list of stages (:mod:`skdeepcluster._stages`) over a resolved plan
(:mod:`skdeepcluster._plan`); inference and pickling are in
:mod:`skdeepcluster._fitted`. The work itself lives in the packages next to
it: the networks, ``training/`` (one loop with callbacks), ``embedding/``
(the neighbour embedding), ``label/`` and ``refine/`` (strategies). See
``docs/architecture.rst`` for the data flow.

Over 600 lines for a reason: the numpydoc of the public class (its docstring
is 245 lines) and of its public methods; the code itself is about 400 lines.
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
    clone,
)
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    validate_data,
)

from . import _choice, _plan, _stages
from . import _partitioned as partitioned
from ._data import check_stream, max_abs, streamable, warn_if_badly_scaled
from ._device import torch_seed_context, torch_threads
from ._fitted import FittedModelMixin
from ._partitioned import is_dask_collection
from ._progress import stage_bar
from ._warn import warn_user
from .training import LOSSES, OPTIMIZERS, encode_array
from .training._loop import _snapshot

_FLOAT_DTYPES = [np.float64, np.float32]

#: Private state of partial_fit (kept between calls, dropped with the model).
_PARTIAL_FIT_STATE = ("_optimizer", "_seed_entropy", "_n_partial_fit_calls")


def _fresh_callbacks(plan):
    """Copies of the user's callbacks for one fit (the parameter stays untouched)."""
    return [clone(callback, safe=False) for callback in plan.callbacks]


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
    FittedModelMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin,
    BaseEstimator,
):
    """Deep clustering: an autoencoder's codes, optionally reduced, then k-means.

    ``fit`` trains an autoencoder with PyTorch (on a GPU when available), encodes
    ``X``, reduces the codes (the *second stage*: by default a neighbour embedding),
    clusters them, then labels the data with a classifier of the clusters or refines
    encoder and centres jointly. ``transform`` returns the embedding, ``predict``
    labels new samples. Read more in the :ref:`User Guide <user_guide>`; measured
    configurations are on the :ref:`benchmarks` page.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.

    architecture : {'auto', 'mlp', 'conv', 'none'}, MLP or ConvNet, default='auto'
        The network: an :class:`MLP` (``'mlp'`` is ``MLP()``) or a :class:`ConvNet`
        (``'conv'``; needs ``image_shape``), whose settings are
        ``architecture__<name>`` (e.g. ``architecture__dropout``), or ``'none'``:
        no network. ``'auto'``: ``'conv'`` with ``image_shape``; else, at the default
        settings, ``fit`` keeps the MLP only where a sample's clusters follow their
        neighbourhoods better in its codes than in the input (none below 2,000 rows
        of under 256 features); else ``'mlp'``. See ``architecture_choice_``.

    image_shape : tuple of int or None, default=None
        ``(C, H, W)`` or ``(H, W)`` of each sample, for the convolutional network
        and the image augmentation; ``X`` stays 2-D, in channel-first order. One
        entry may be ``-1`` (inferred, as in :func:`numpy.reshape`).

    input_pca : int, 'auto' or None, default='auto'
        Principal components of the input (fitted on at most 20,000 rows) fed to an
        MLP or, without a network, to the second stage (:class:`ProjectedAutoencoder`).
        ``'auto'``: 50 in ``fit`` from 256 features on, with an MLP without output
        activation or no network. None: the input itself. See ``input_components_``.

    latent_dim : int, default=10
        Dimension of the codes; raise it for many clusters: the default ``reducer``
        embeds them in ``min(max(n_clusters, 10), latent_dim)`` dimensions.

    module : torch.nn.Module class or instance, default=None
        Your own autoencoder, with ``encode(x)`` and ``decode(z)`` on float32 batches
        ``(n, n_features)`` (:ref:`User Guide <pretraining>`): a class, instantiated
        with ``module_kwargs`` (and ``n_features``), or an instance, copied.

    module_kwargs : dict or None, default=None
        Keyword arguments for a ``module`` class.

    loss : {'mse', 'l1', 'huber'}, default='mse'
        Reconstruction loss; ``'l1'`` and ``'huber'`` weigh outliers less.

    optimizer : {'adam', 'adamw', 'sgd'}, default='adam'
        Optimizer of every training (SGD with momentum 0.9).

    learning_rate : float, default=1e-3
        Learning rate of pre-training and self-labelling.

    weight_decay : float, default=0.0
        L2 penalty of the optimizer.

    batch_size : int, default=256
        Mini-batch size of training (clipped to ``n_samples``).

    epochs : int or 'auto', default='auto'
        Maximum number of pre-training epochs. ``'auto'``: about 1,500 steps,
        ``ceil(1500 / n_batches)`` clipped to [10, 200], at most 600,000 rows in
        all (but every row once).

    noise : float, default=0.0
        Denoising: standard deviation of Gaussian noise, or fraction of features
        set to zero (``noise_type``), in each training batch.

    noise_type : {'gaussian', 'mask'}, default='gaussian'
        Kind of input corruption used when ``noise > 0``.

    augment : ImageAugment or None, default=None
        Random shifts, rotations and mirroring of the images in pre-training
        (needs ``image_shape``); the network reconstructs the augmented images.
        Never in ``transform``, ``predict`` or refinement. Also the default
        augmentation of ``self_label``'s consistency and rounds.

    validation_fraction : float, default=0.0
        Fraction of the data held out for ``history_['val_loss']`` and early stopping.

    n_iter_no_change : int or None, default=None
        Stop pre-training, restoring the best weights, once the monitored (validation,
        else training) loss has not improved by ``tol`` for this many epochs.

    tol : float, default=1e-4
        Minimum improvement of the monitored loss for early stopping.

    callbacks : list of Callback or None, default=None
        Callbacks of pre-training and refinement (:mod:`skdeepcluster.training`),
        e.g. ``[LRScheduler('cosine')]``, run on copies (picklable for a device list).

    warm_start : bool, default=False
        Train the previous ``fit``'s network ``epochs`` more epochs; it keeps its
        shape (a ``UserWarning`` names the parameters changed since).

    standardize : bool, default=True
        Scale each code dimension to zero mean and unit variance.

    reducer : 'auto', transformer or None, default='auto'
        Second stage, applied to the (standardized) codes. ``'auto'`` is a
        :class:`NeighborEmbedding` (N2D's layout, for clusters that are not round
        in the codes), but none when ``refine`` asks for a refinement and in
        ``partial_fit``. A transformer (``PCA(n_components=5)``, ``umap.UMAP()``)
        is cloned and fitted; its parameters are ``reducer__<name>``. None
        clusters the codes; ``inverse_transform`` needs None or a PCA.

    clusterer : {'auto', 'graph', 'kmeans', 'minibatch_kmeans', 'gmm'} or estimator, \
            default='auto'
        k-means (mini-batch from 100,000 samples on), a Gaussian mixture, or any
        clusterer with ``fit_predict`` (its ``n_clusters`` set). ``'graph'``: the
        communities of the neighbour embedding's graph; ``'auto'`` takes them where
        the graph has about ``n_clusters`` communities that fit it better than k-means.

    n_init : int or 'auto', default=10
        Number of clustering runs with different seeds; the best is kept.

    refine : 'auto', RefinementStrategy, {'kmeans', 'dec', 'idec'} or None, default='auto'
        Joint refinement of encoder and centres by a strategy of
        :mod:`skdeepcluster.refine` (``KMeansLoss``, ``DEC``, ``IDEC``; the strings
        are their defaults), whose settings are ``refine__<name>``. It needs
        k-means and an affine second stage (``reducer=None`` or a PCA). ``'auto'``
        is ``IDEC()`` where it can run, else no refinement.

    self_label : 'auto', bool or SelfLabel, default='auto'
        Train a classifier of the clusters (the encoder and a linear layer,
        ``label_head_``) behind ``labels_`` and ``predict``: it labels new data better
        than the neighbour embedding places them. A :class:`~skdeepcluster.label.SelfLabel`
        holds its settings (``self_label__<name>``): neighbour ``consistency`` on
        the graph, for clusters that cut it where the classes do not; self-training
        ``rounds``, to go beyond the clusterer; their ``augment`` (``'auto'``: the
        estimator's). ``True`` is ``SelfLabel()``; ``'auto'`` self-labels when a
        network is trained, the second stage is a ``NeighborEmbedding`` and nothing
        is refined. A classifier that does not reproduce the clusters is dropped (a
        warning says so if it was asked for). Never in ``partial_fit``.

    streaming : 'auto' or bool, default='auto'
        Train on and validate ``X`` in blocks of rows instead of whole, for data
        larger than memory (a memmap, an h5py or zarr array). ``'auto'`` streams
        arrays whose float32 copy would exceed 1 GiB, unless
        ``validation_fraction > 0`` or ``device`` is a list. See :ref:`scaling`.

    device : str, torch.device or list of them, default='auto'
        ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda:1'``, ``'mps'``;
        a list (``['cuda:0', 'cuda:1']``) pre-trains with ``DistributedDataParallel``,
        one process per device. A model fitted on a GPU unpickles on any machine.

    n_jobs : int or None, default=None
        CPU threads torch uses in ``fit`` and ``predict`` (``-1``: all cores; None:
        torch's setting). It changes the speed, not the result.

    random_state : int, RandomState instance or None, default=None
        Seeds every random choice of ``fit``; an int gives identical labels on
        every fit on the same device. Global random states are untouched.

    verbose : int, default=0
        ``0`` is quiet; ``1`` or more shows a progress bar per stage on stderr.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample; equal to ``predict(X)``.

    cluster_centers_ : ndarray of shape (n_clusters, n_embedding)
        Cluster centres in the embedding returned by ``transform``.

    inertia_ : float
        Sum of squared distances of the training samples to their centre.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when they are all strings.

    autoencoder_ : torch.nn.Module
        The trained autoencoder on ``device_`` (an :class:`IdentityAutoencoder`
        without a network; in a :class:`ProjectedAutoencoder` after ``input_pca``).

    architecture_ : {'none', 'mlp', 'conv', 'module'}
        The network ``architecture`` resolved to.

    architecture_choice_ : ArchitectureChoice
        What ``architecture`` the fit used and why (one line as ``str``).

    input_components_ : int or None
        Number of input principal components used; None for the input itself.

    scaler_ : StandardScaler or None
        Scaler of the codes, when ``standardize=True``.

    reducer_ : transformer or None
        The fitted second stage.

    clusterer_ : estimator or None
        The fitted clusterer; None for k-means (see ``cluster_centers_``).

    label_head_ : torch.nn.Module or None
        The self-labelling classifier; None when ``fit`` did not keep one.

    history_ : dict
        Per-epoch losses of each training (``'train_loss'``, ``'val_loss'``,
        ``'refine_loss'``, ``'self_label_loss'``, ...) and ``'best_epoch'``.

    n_iter_ : int
        Pre-training epochs of the last ``fit`` (plus one per ``partial_fit``).

    device_ : torch.device
        Device the autoencoder lives on.

    See Also
    --------
    sklearn.cluster.KMeans : Plain k-means on the raw features.
    NeighborEmbedding : The default second stage.
    MLP, ConvNet : The built-in networks.
    skdeepcluster.label.SelfLabel : The self-labelling settings.

    Notes
    -----
    The two-stage recipe of deep clustering: pre-train an autoencoder (Hinton &
    Salakhutdinov, 2006; Xie et al., 2016), cluster its codes (Song et al., 2013),
    optionally after a neighbour embedding (McConville et al., 2020, "N2D"), then
    self-label (Van Gansbeke et al., 2020, "SCAN") or refine network and centres
    (Xie et al., 2016; Guo et al., 2017). Augmentation follows Guo et al. (2018).

    Inference runs in float64 (float32 on MPS), so a row's embedding and label do
    not depend on the rows transformed with it. ``score`` is minus the k-means
    objective in the embedding: it favours more clusters, whatever the embedding.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdeepcluster import AutoencoderKMeans, MLP
    >>> X, y = make_blobs(n_samples=200, centers=3, n_features=8, random_state=0)
    >>> model = AutoencoderKMeans(n_clusters=3, architecture=MLP(hidden_layer_sizes=(32,)),
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
        "architecture": [
            StrOptions({"auto", "mlp", "conv", "none"}), HasMethods(["build", "get_params"])
        ],
        "image_shape": [tuple, list, None],
        "input_pca": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
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
        "augment": [HasMethods(["make"]), None],
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
        "self_label": [StrOptions({"auto"}), "boolean", HasMethods(["fit_labels"])],
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
        latent_dim=10,
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
        augment=None,
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
        self.latent_dim = latent_dim
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
        self.streaming = streaming
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def set_params(self, **params):
        """Set the parameters of this estimator, nested ones on a shortcut included.

        As scikit-learn's ``set_params``, except that a nested
        ``<component>__<name>`` where the component is a string shortcut first
        replaces the shortcut with the object it stands for, then sets the
        parameter on it: ``refine='idec'`` becomes ``IDEC()``,
        ``architecture='mlp'`` ``MLP()``, ``'conv'`` ``ConvNet()``,
        ``self_label='auto'`` or True ``SelfLabel()`` (asking for
        self-labelling), ``augment=None`` ``ImageAugment()``. So
        ``GridSearchCV(est, {"self_label__rounds": [2, 6]})`` works on the
        defaults, as ``{"refine__gamma": [0.1, 1.0]}`` does with ``refine='idec'``.

        Parameters
        ----------
        **params : dict
            Parameters, and ``<component>__<name>`` for those of the
            ``architecture``, ``augment``, ``reducer``, ``clusterer``,
            ``refine`` and ``self_label`` objects.

        Returns
        -------
        self : AutoencoderKMeans
            This estimator.

        Raises
        ------
        ValueError
            For a nested parameter of a component with no object to set it on
            (``refine__<name>`` with ``refine='auto'`` or None,
            ``architecture__<name>`` with ``'auto'`` or ``'none'``,
            ``self_label__<name>`` with False).
        """
        return super().set_params(**_plan.expand_shortcuts(self, params))

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
        """The stages of ``fit`` over its plan (:mod:`skdeepcluster._stages`); the embedding."""
        fitted = getattr(self, "autoencoder_", None)
        previous_n_features = getattr(self, "n_features_in_", None)
        X, stream = self._validate_fit_data(X, reset=True)
        plan = _plan.resolve_plan(self, X.shape, stream=stream, partial=False)
        previous = fitted if plan.warm_start else None
        if previous is not None and previous_n_features != X.shape[1]:
            raise ValueError(
                f"warm_start=True but X has {X.shape[1]} features while the "
                f"previous fit had {previous_n_features}."
            )
        warn_if_badly_scaled(
            max_abs(X), network=plan.architecture != "none", standardize=plan.standardize
        )
        previous = self._kept_network(previous, plan)
        callbacks = _fresh_callbacks(plan)
        plan, module, history, choice = _choice.pretrain_or_drop(X, plan, previous, callbacks)
        verbose = plan.verbose and _stages.trainable(module)
        with stage_bar("encoding", X.shape[0], verbose, "row") as bar:
            codes = encode_array(module, X, device=plan.device, progress=bar)
        second_stage, embedding = _stages.second_stage(codes, plan)
        clusterer, centers = _stages.cluster(embedding, plan, second_stage)
        graph = _stages.take_graph(second_stage.reducer)
        if plan.self_label is None or not plan.self_label.consistency:
            graph = None  # not needed: freed now, before refinement and self-labelling
        if plan.refine is not None:
            centers, embedding, refine_history = _stages.refine(
                X, module, centers, second_stage, plan, callbacks
            )
            history.update(refine_history)
        labels, head = self._predict_embedding(embedding, clusterer, centers), None
        if plan.self_label is not None:
            head, labels, label_history = _stages.self_label(
                X, module, codes.shape[1], labels, plan, graph
            )
            history.update(label_history)
        self._set_fitted(
            module, plan.device, second_stage, clusterer, centers, embedding,
            head=head, labels=labels,
        )
        if previous is None:  # a fresh network (a kept one keeps what it was built from)
            self._set_network_record(plan)
        self.architecture_choice_ = choice
        self.history_, self.n_iter_ = history, len(history["train_loss"])
        # partial_fit after fit continues this network with a fresh optimizer.
        self._optimizer, self._seed_entropy, self._n_partial_fit_calls = None, plan.entropy, 0
        return embedding

    def _partial_fit(self, X):
        first_call = not hasattr(self, "autoencoder_")
        X, stream = self._validate_fit_data(X, reset=first_call)
        n_call = 0 if first_call else self._n_partial_fit_calls
        plan = _plan.resolve_plan(
            self, X.shape, stream=stream, partial=True,
            entropy=None if first_call else self._seed_entropy, call=n_call,
        )
        self._seed_entropy = plan.entropy
        module, device, history = self._partial_network(plan, X, first_call)
        warn_if_badly_scaled(
            max_abs(X), network=_stages.trainable(module), standardize=plan.standardize
        )
        if _stages.trainable(module) and getattr(self, "_optimizer", None) is None:
            self._optimizer = plan.training.make_optimizer(module.parameters())
        epoch = _stages.partial_train(
            module, getattr(self, "_optimizer", None), X, plan, device, _fresh_callbacks(plan)
        )
        codes = encode_array(module, X, device=device)
        second_stage, embedding = _stages.second_stage(codes, plan)
        previous = None if first_call else (self.second_stage_, self.cluster_centers_)
        clusterer, centers = _stages.cluster(embedding, plan, second_stage, previous)
        _stages.take_graph(second_stage.reducer)
        self._set_fitted(module, device, second_stage, clusterer, centers, embedding)
        history["train_loss"] += epoch["train_loss"]
        self.history_ = {**history, "best_epoch": None}
        self.n_iter_ = (0 if first_call else self.n_iter_) + len(epoch["train_loss"])
        self._n_partial_fit_calls = n_call + 1

    def _partial_network(self, plan, X, first_call):
        """The network ``partial_fit`` trains (built on the first call), its device, history."""
        if first_call:
            with torch_seed_context(plan.seeds.init, plan.device):
                module = _stages.build_network(plan, X)
            self._set_network_record(plan)
            self.architecture_choice_ = _choice.given(plan)
            return module.to(plan.device), plan.device, {"train_loss": [], "val_loss": []}
        module = self.autoencoder_
        if _stages.trainable(module):
            self._check_kept_network(plan, "partial_fit")
        history = {k: list(self.history_.get(k, [])) for k in ("train_loss", "val_loss")}
        return module, self.device_, history

    def _kept_network(self, previous, plan):
        """The fitted network that ``warm_start`` trains further, or None (a fresh one).

        Warns when the parameters it was built from have changed since
        (:meth:`_check_kept_network`).
        """
        if previous is None or not _stages.trainable(previous) or plan.architecture == "none":
            return None
        self._check_kept_network(plan, "warm_start=True")
        return previous

    def _set_network_record(self, plan):
        """What a freshly built network is: ``architecture_``, ``input_components_`` and
        the parameters it was built from (``_network_shape_``)."""
        self.architecture_ = plan.architecture
        self.input_components_ = plan.input_components or None
        self._network_shape_ = _plan.network_shape(self, plan)

    def _check_kept_network(self, plan, how):
        """Warn when the network trained further lacks the new values of its parameters.

        ``how`` says what keeps the fitted network (``'warm_start=True'`` or
        ``'partial_fit'``); the network is compared with what it was built
        from (``_network_shape_``, see :func:`~skdeepcluster._plan.network_shape`).
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
        warn_user(
            f"{how} trains the fitted network further, and it was built with {old}: it does "
            f"not have the new {new}. Fit with warm_start=False (or a fresh estimator) to "
            "build a new network."
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
        return self._validate_X(X, reset=reset, stream=stream), stream

    def _validate_X(self, X, *, reset, stream):
        if stream and streamable(X):
            check_stream(X)
            _check_feature_names(self, X, reset=reset)
            _check_n_features(self, X, reset=reset)
            return X
        return validate_data(self, X, reset=reset, dtype=_FLOAT_DTYPES)

    # ``transform`` is defined here, not in the mixin: scikit-learn's ``set_output``
    # wraps the ``transform`` of the class itself.
    def transform(self, X):
        """Embed ``X``: encoder, then the fitted scaler and reducer when set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to embed; each row's embedding depends on that row alone. A
            Dask array or DataFrame is embedded block by block, lazily, on the
            workers (see :ref:`scaling`).

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_embedding)
            The space in which ``cluster_centers_`` live (a Dask array, or a Dask
            DataFrame for a Dask DataFrame).
        """
        if is_dask_collection(X):
            check_is_fitted(self)
            return partitioned.transform(self, X)
        return self._transform(X)

    @property
    def _n_features_out(self):
        """Number of embedding dimensions (used by ``get_feature_names_out``)."""
        return self.cluster_centers_.shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags
