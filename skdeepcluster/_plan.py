"""The fit plan: every ``'auto'`` of :class:`~skdeepcluster.AutoencoderKMeans` resolved once.

``fit`` first turns the parameters and the shape of ``X`` into a frozen
:class:`FitPlan` -- devices, streaming, epochs, the second stage, the
refinement strategy and the random streams -- and then runs its stages over
it. The same stages run at 1,000 rows and at 10,000,000: only the plan
changes. Each rule carries the reason (or measurement) behind it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state

from . import _clustering
from ._clustering import is_affine
from ._data import streamable
from ._device import resolve_device
from .embedding import NeighborEmbedding
from .refine import DEC, IDEC, KMeansLoss

#: Optimizer steps that ``epochs='auto'`` aims for (see the ``epochs`` docstring).
AUTO_STEPS = 1500

#: ``epochs='auto'`` shows pre-training at most this many rows in all (but every row
#: once): ten passes over 60,000 rows, one over a million, instead of ten passes at
#: any size (43 minutes of a million-row fit on two CPU cores). See
#: ``benchmarks/results/large.md``.
AUTO_MAX_ROWS = 600_000

#: ``architecture='auto'`` trains no network on fewer rows than this, of fewer
#: features than ``AUTO_NETWORK_MIN_FEATURES`` (with the default second stage and
#: pre-training settings, and no ``image_shape``): the neighbour embedding of the
#: standardized input is then better and faster. See :func:`resolve_architecture`.
AUTO_NETWORK_MIN_SAMPLES = 5000
AUTO_NETWORK_MIN_FEATURES = 256

#: The ``'auto'`` neighbour embedding has ``max(n_clusters, AUTO_MIN_COMPONENTS)``
#: dimensions (at most as many as the codes have). With only ``n_clusters``, few
#: clusters got a cramped layout: 20,000 generated signals in 3 classes, the network's
#: 10-D codes laid out in 3 dimensions 0.718 ACC, in 5 0.897, in 10 0.999 (seeds 0
#: and 1 alike); without a network 0.908 in 3, 0.921 in 10. Unchanged for 10 clusters
#: or more (MNIST, Fashion-MNIST). See ``benchmarks/results/suite.md``.
AUTO_MIN_COMPONENTS = 10

#: ``input_pca='auto'`` feeds the network (or, without one, the second stage) the
#: first ``AUTO_INPUT_COMPONENTS`` principal components of inputs of at least
#: ``AUTO_NETWORK_MIN_FEATURES`` features. Measured (ACC, seed 0 unless said, two CPU
#: cores; ``benchmarks/results/suite.md``): the MNIST test set with the default
#: network 0.943 -> 0.950 (seeds 0-2) and 51 -> 42 s; without a network 0.671 -> 0.781;
#: Fashion-MNIST: the same (0.576) in 108 s instead of 127 s. 25 components gave MNIST
#: 0.949, 100 gave 0.944.
AUTO_INPUT_COMPONENTS = 50

#: ``hidden_layer_sizes='auto'``: the encoder's widths. The ``d-500-500-2000-10``
#: network of DEC and its successors from ``AUTO_WIDE_MIN_SAMPLES`` rows on (and in
#: ``partial_fit``, whose chunks do not tell the data's size), ``d-500-500-1000-10``
#: below: on the MNIST test set (10,000 rows) the narrower network gave the same ACC
#: (0.955 / 0.946 / 0.950 against 0.950 / 0.955 / 0.946, seeds 0 / 1 / 2, one thread
#: each) in two thirds of the pre-training time (a third fewer multiply-adds), and
#: 1.000 on the 5,000 generated blobs like the wider one; on Fashion-MNIST (70,000
#: rows) it lost 0.03-0.05 on the seeds compared. On 5,000-row halves of the MNIST
#: test set, rows not fitted got 0.911 against 0.914 (six halves; ``large.md``).
#: See ``benchmarks/results/suite.md``.
AUTO_HIDDEN_LAYER_SIZES = (500, 500, 2000)
AUTO_HIDDEN_LAYER_SIZES_SMALL = (500, 500, 1000)
AUTO_WIDE_MIN_SAMPLES = 20_000

#: The parameters of the network and its training: ``architecture='auto'`` trains a
#: network whenever one of them is set away from its default.
NETWORK_PARAMS = (
    "hidden_layer_sizes", "conv_channels", "latent_dim", "activation", "output_activation",
    "dropout", "batch_norm", "loss", "optimizer", "learning_rate", "weight_decay",
    "batch_size", "epochs", "noise", "noise_type", "augment", "flip", "validation_fraction",
    "n_iter_no_change", "tol", "callbacks", "warm_start",
)

#: The parameters each network is built from (besides ``architecture``, ``module`` and
#: ``image_shape``, which choose it): a network that ``warm_start`` or ``partial_fit``
#: trains further keeps the values it was built with, and a change of them is warned
#: about (see :func:`network_shape`).
SHAPE_PARAMS = {
    "mlp": (
        "input_pca", "hidden_layer_sizes", "latent_dim", "activation", "output_activation",
        "dropout", "batch_norm",
    ),
    "conv": (
        "image_shape", "conv_channels", "latent_dim", "activation", "output_activation",
        "dropout", "batch_norm",
    ),
    "module": ("module", "module_kwargs", "input_pca"),
    "none": ("input_pca",),
}

#: The parameters that choose the network (with the data's shape and 'auto' rules).
_CHOOSERS = ("architecture", "module", "image_shape")

#: ``streaming='auto'`` streams data whose float32 copy would exceed this size.
STREAM_BYTES = 2**30

#: Built-in clusterers that refinement can work with (they define the centres):
#: ``'auto'`` is k-means wherever refinement can run (an affine second stage has
#: no neighbour graph to find communities in).
KMEANS_CLUSTERERS = ("auto", "kmeans", "minibatch_kmeans")

#: The strategies that ``refine='kmeans' | 'dec' | 'idec'`` stand for.
REFINE_SHORTCUTS = {"kmeans": KMeansLoss, "dec": DEC, "idec": IDEC}

#: The random streams of a fit, each spawned from one ``SeedSequence``.
#: A new stream goes last: ``spawn`` gives the first children the same seeds whatever
#: their number, so adding one leaves the others (and earlier results) unchanged.
_STREAMS = (
    "init", "batches", "augment", "split", "cluster", "refine", "projection", "communities",
    "self_label", "self_train", "consistency",
)


@dataclass(frozen=True)
class Seeds:
    """Independent seeds of one fit (or one ``partial_fit`` call).

    ``init`` seeds the weights and dropout (torch's global generator),
    ``batches`` the batch order and input noise, ``augment`` the image
    augmentation, ``split`` the validation split, ``cluster`` the second
    stage and the clusterer, ``refine`` the refinement's batches and dropout,
    ``projection`` the rows that the input's principal components are fitted on,
    ``communities`` the k-means runs behind the neighbour graph's communities,
    ``self_label`` the self-labelling classifier's weights, rows and batches,
    ``self_train`` the self-training's rows, batches and augmentation,
    ``consistency`` the neighbour consistency's batches, neighbours and augmentation.
    """

    init: int
    batches: int
    augment: int
    split: int
    cluster: int
    refine: int
    projection: int
    communities: int
    self_label: int
    self_train: int
    consistency: int

    @classmethod
    def from_sequence(cls, sequence: np.random.SeedSequence) -> Seeds:
        children = sequence.spawn(len(_STREAMS))
        # 32-bit values: scikit-learn's random_state takes them, and so does torch.
        return cls(*(int(c.generate_state(1, np.uint32)[0]) for c in children))


def root_entropy(random_state) -> int:
    """The entropy of the fit's root ``SeedSequence`` (fresh OS entropy for None)."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def fit_seeds(entropy: int) -> Seeds:
    """The seeds of ``fit``: the first child of the root sequence."""
    return Seeds.from_sequence(np.random.SeedSequence(entropy).spawn(2)[0])


def partial_fit_seeds(entropy: int, call: int) -> Seeds:
    """The seeds of ``partial_fit`` call number ``call`` (0-based), one child each."""
    partial = np.random.SeedSequence(entropy).spawn(2)[1]
    return Seeds.from_sequence(
        np.random.SeedSequence(partial.entropy, spawn_key=(*partial.spawn_key, call))
    )


@dataclass(frozen=True)
class FitPlan:
    """What a fit does, decided before it starts."""

    devices: tuple[torch.device, ...]
    stream: bool
    architecture: str  # 'none', 'mlp', 'conv' or 'module' (the user's own)
    input_components: int  # principal components in front of the network; 0: none
    hidden_layer_sizes: object  # the MLP's widths ('auto' resolved), as the user gave them
    epochs: int
    reducer: object  # 'auto' (a NeighborEmbedding sized on the codes), an estimator, or None
    clusterer: object  # 'auto', 'graph', 'kmeans', 'minibatch_kmeans', 'gmm' or an estimator
    refine: object  # a RefinementStrategy or None
    self_label: bool  # train the self-labelling classifier after the clustering
    seeds: Seeds

    @property
    def device(self) -> torch.device:
        return self.devices[0]


def resolve_plan(
    est, shape: tuple[int, int], *, stream: bool, seeds: Seeds, partial: bool
) -> FitPlan:
    """The plan of one ``fit`` (``partial=False``) or ``partial_fit`` call on ``X`` of ``shape``."""
    n_samples, n_features = shape
    devices = resolve_devices(est.device)
    reducer = resolve_reducer(est, n_samples, partial=partial)
    architecture = resolve_architecture(est, shape, partial=partial)
    if architecture == "none":
        epochs, refine = 0, None
    else:
        epochs = 1 if partial else n_epochs(est, n_samples - n_validation(est, n_samples))
        refine = None if partial else resolve_refine(est, reducer)
    self_label = resolve_self_label(est, architecture, reducer, refine, partial=partial)
    return FitPlan(
        devices=tuple(devices),
        stream=stream,
        architecture=architecture,
        input_components=resolve_input_pca(est, shape, architecture, partial=partial),
        hidden_layer_sizes=resolve_hidden_layer_sizes(est, n_samples, partial=partial),
        epochs=epochs,
        reducer=reducer,
        clusterer=resolve_clusterer(est, n_samples, reducer),
        refine=refine,
        self_label=self_label,
        seeds=seeds,
    )


def network_shape(est, plan: FitPlan) -> dict:
    """What the plan's network is built from: ``{name: (value given, value resolved)}``.

    The parameters that choose the network and those of ``SHAPE_PARAMS`` for
    its architecture. ``architecture``, ``hidden_layer_sizes`` and ``input_pca``
    are resolved as the plan resolved them (``'auto'`` differs between ``fit``
    and ``partial_fit``); the others are their own resolution. Sequences are
    stored as tuples, so that ``[32, 16]`` and ``(32, 16)`` compare equal.
    """
    resolved = {
        "architecture": plan.architecture,
        "hidden_layer_sizes": plan.hidden_layer_sizes,
        "input_pca": plan.input_components or None,
    }
    names = dict.fromkeys((*_CHOOSERS, *SHAPE_PARAMS[plan.architecture]))
    return {
        name: (_frozen(getattr(est, name)), _frozen(resolved.get(name, getattr(est, name))))
        for name in names
    }


def changed_network_params(built: dict, now: dict) -> list[str]:
    """The parameters whose values in ``now`` the network ``built`` does not have.

    Both are :func:`network_shape` records. A parameter counts when its given
    value changed and so did its resolution (``'auto'`` set to what it
    resolved to changes nothing). When the architecture resolves differently,
    the parameters that choose it and changed count (``architecture`` when
    none did); the others only where both architectures are built from them.
    """
    changed, (_, before), (_, after) = [], built["architecture"], now["architecture"]
    if before != after:
        moved = [n for n in _CHOOSERS if not _same_value(built[n][0], now[n][0])]
        changed = moved or ["architecture"]
    for name in SHAPE_PARAMS[after]:
        if name in changed or name not in SHAPE_PARAMS[before]:
            continue
        (given, resolved), (new_given, new_resolved) = built[name], now[name]
        if not _same_value(given, new_given) and not _same_value(resolved, new_resolved):
            changed.append(name)
    return changed


def _frozen(value):
    """``value``, with a list, tuple or array as a tuple of its entries (a dict copied)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(np.asarray(value, dtype=object).ravel().tolist())
    return dict(value) if isinstance(value, dict) else value


def _same_value(a, b) -> bool:
    """``a == b`` for the values of :func:`network_shape` (modules and classes: ``is``)."""
    if a is b:
        return True
    if isinstance(a, (torch.nn.Module, type)) or isinstance(b, (torch.nn.Module, type)):
        return False
    try:
        return bool(_same(a, b))
    except (TypeError, ValueError, RuntimeError):  # e.g. dicts of tensors
        return False


def _network_params_set(est) -> bool:
    """Whether any of ``NETWORK_PARAMS`` differs from its default value."""
    signature = inspect.signature(type(est).__init__).parameters
    for name in NETWORK_PARAMS:
        value, default = getattr(est, name), signature[name].default
        if name == "callbacks":
            if value:  # None and [] alike
                return True
        elif isinstance(default, tuple):
            if np.asarray(value, dtype=object).ravel().tolist() != list(default):
                return True
        elif not _same(value, default):
            return True
    return False


def _same(value, default) -> bool:
    """``value == default`` for a scalar default (``0`` is ``0.0``, ``True`` is not ``1``)."""
    if isinstance(default, Real) and not isinstance(default, bool):
        return isinstance(value, Real) and not isinstance(value, bool) and value == default
    return type(value) is type(default) and value == default


def resolve_architecture(est, shape: tuple[int, int], *, partial: bool) -> str:
    """The network of the fit: ``'none'``, ``'mlp'``, ``'conv'`` or ``'module'``.

    ``architecture='auto'`` is ``'conv'`` with ``image_shape``. Without it,
    it is ``'none'`` (no network: the second stage works on the input) on
    small data -- fewer than ``AUTO_NETWORK_MIN_SAMPLES`` rows of fewer than
    ``AUTO_NETWORK_MIN_FEATURES`` features -- when everything that would
    shape the network or its training is left at its default (``reducer``,
    ``refine``, ``self_label=True``, ``self_label_rounds`` and every parameter of
    ``NETWORK_PARAMS``: ``epochs``,
    ``hidden_layer_sizes``, ``noise``, ``warm_start``, ...) and in ``fit``
    (``partial_fit`` trains a network chunk by chunk), and ``'mlp'``
    otherwise. The measurements behind it (ACC, seeds 0 and 1, two CPU
    cores; ``benchmarks/results/suite.md``): digits (1,797 x 64), no network
    0.936 on every seed in about 3 s, the 500-500-2000 network 0.86 in 70-95
    s; 3,000 generated signals of 128 samples, no network 0.835 / 0.834, the
    network 0.873 / 0.674; but MNIST images (784 features) need the network
    even when few: 2,000 rows 0.59 without, 0.64 / 0.69 with it; 5,000 rows
    0.61 without, 0.88 / 0.90 with it.
    """
    if est.module is not None:
        return "module"
    if est.architecture != "auto":
        return est.architecture
    if est.image_shape is not None:
        return "conv"
    defaults = (
        _is_auto(est.reducer)
        and (est.refine is None or _is_auto(est.refine))
        and est.self_label is not True
        and not est.self_label_rounds
        and not est.self_label_consistency
        and not _network_params_set(est)
    )
    n_samples, n_features = shape
    small = n_samples < AUTO_NETWORK_MIN_SAMPLES and n_features < AUTO_NETWORK_MIN_FEATURES
    if defaults and not partial and small:
        return "none"
    return "mlp"


def resolve_hidden_layer_sizes(est, n_samples: int, *, partial: bool):
    """The fully connected encoder's widths: ``hidden_layer_sizes``, with ``'auto'`` resolved.

    ``'auto'`` is ``AUTO_HIDDEN_LAYER_SIZES`` (500, 500, 2000) from
    ``AUTO_WIDE_MIN_SAMPLES`` rows on and in ``partial_fit``, and
    ``AUTO_HIDDEN_LAYER_SIZES_SMALL`` (500, 500, 1000) below (see the
    measurements next to the constants). Other values are returned as given
    and checked when the network is built.
    """
    value = est.hidden_layer_sizes
    if not _is_auto(value):
        return value
    if partial or n_samples >= AUTO_WIDE_MIN_SAMPLES:
        return AUTO_HIDDEN_LAYER_SIZES
    return AUTO_HIDDEN_LAYER_SIZES_SMALL


def resolve_input_pca(est, shape: tuple[int, int], architecture: str, *, partial: bool) -> int:
    """How many principal components of the input the network sees (0: the input itself).

    ``input_pca='auto'`` is ``AUTO_INPUT_COMPONENTS`` (at most the number of
    rows) for an MLP or no network on inputs of at least
    ``AUTO_NETWORK_MIN_FEATURES`` features with a linear decoder output, in
    ``fit``; none otherwise (a convolutional network needs the pixels, a
    ``partial_fit`` chunk may not represent the data). An integer is checked
    against the network and the shape of ``X``.
    """
    value = est.input_pca
    n_samples, n_features = shape
    if value is None:
        return 0
    if _is_auto(value):
        eligible = architecture in ("mlp", "none") and est.output_activation is None
        if partial or not eligible or n_features < AUTO_NETWORK_MIN_FEATURES:
            return 0
        return min(AUTO_INPUT_COMPONENTS, n_samples, n_features)
    if architecture not in ("mlp", "none"):
        raise ValueError(
            f"input_pca={value} projects the input for a fully connected network or none; "
            f"it cannot be combined with the {architecture!r} network. Use input_pca=None."
        )
    if est.output_activation is not None:
        raise ValueError(
            f"input_pca={value} decodes through the principal components, which an "
            f"output_activation={est.output_activation!r} cannot bound; use "
            "output_activation=None or input_pca=None."
        )
    if value > min(n_samples, n_features):
        raise ValueError(
            f"input_pca={value} must be at most min(n_samples, n_features)="
            f"{min(n_samples, n_features)}."
        )
    return int(value)


def resolve_devices(device) -> list[torch.device]:
    """The training devices: one, or several for distributed data-parallel training."""
    if isinstance(device, (list, tuple)):
        from .training._distributed import resolve_devices as resolve_many

        return resolve_many(device)
    return [resolve_device(device)]


def streams(est, X) -> bool:
    """Whether ``X`` is streamed in blocks instead of copied whole (``streaming``)."""
    if est.streaming != "auto":
        return bool(est.streaming)
    if not streamable(X) or est.validation_fraction or isinstance(est.device, (list, tuple)):
        return False
    n_samples, n_features = X.shape
    return n_samples * n_features * 4 > STREAM_BYTES


def n_validation(est, n_samples: int) -> int:
    """Rows held out for validation (``validation_fraction``)."""
    return int(round(est.validation_fraction * n_samples))


def n_epochs(est, n_samples: int) -> int:
    """Pre-training epochs: ``epochs``, or a budget of ``AUTO_STEPS`` steps for 'auto'.

    ``ceil(1500 / n_batches)`` clipped to [10, 200]: 188 epochs on the 1,797
    digits, 38 on 10,000 MNIST images, 10 from 38,400 rows on (batch 256);
    but no more than ``AUTO_MAX_ROWS`` rows in all: 8 epochs of 70,000 rows,
    2 of 250,000, 1 of a million.
    """
    if est.epochs != "auto":
        return est.epochs
    n_batches = -(-n_samples // min(est.batch_size, n_samples))
    epochs = int(np.clip(-(-AUTO_STEPS // n_batches), 10, 200))
    return max(1, min(epochs, AUTO_MAX_ROWS // n_samples))


def resolve_clusterer(est, n_samples: int, reducer):
    """The clusterer of the plan: ``'auto'`` and ``'kmeans'`` resolved by the second stage and size.

    ``'kmeans'`` runs as mini-batch k-means from ``MINIBATCH_MIN_SAMPLES``
    rows on: full k-means holds all distances of each Lloyd step;
    mini-batch k-means with large batches (4,096 rows) gives centres close
    to it at a fraction of the time on large data. ``'auto'`` stays
    ``'auto'`` (k-means, or the neighbour graph's communities where they fit
    the graph better, see :mod:`skdeepcluster._communities`) when the second
    stage is a neighbour embedding, and is k-means otherwise.
    """
    clusterer = est.clusterer
    if isinstance(clusterer, str) and clusterer == "graph" and not _has_graph(reducer):
        raise ValueError(
            "clusterer='graph' finds communities in the neighbour graph of "
            "reducer='auto' or a NeighborEmbedding; there is none here (reducer="
            f"{'None in partial_fit' if _is_auto(est.reducer) else repr(est.reducer)}). "
            "Use clusterer='auto' or 'kmeans'."
        )
    if _is_auto(clusterer) and not _has_graph(reducer):
        clusterer = "kmeans"
    if isinstance(clusterer, str) and clusterer == "kmeans":
        return kmeans_kind(n_samples)
    return clusterer


def kmeans_kind(n_samples: int) -> str:
    """``'minibatch_kmeans'`` from ``MINIBATCH_MIN_SAMPLES`` rows on, else ``'kmeans'``."""
    return "minibatch_kmeans" if n_samples >= _clustering.MINIBATCH_MIN_SAMPLES else "kmeans"


def _has_graph(reducer) -> bool:
    """Whether the (unfitted) reducer of the plan is a neighbour embedding, with a graph."""
    return _is_auto(reducer) or isinstance(reducer, NeighborEmbedding)


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == "auto"


def resolve_reducer(est, n_samples: int, *, partial: bool):
    """The second stage after the scaler: 'auto' stays 'auto' (sized on the codes later).

    ``reducer='auto'`` is the neighbour embedding at every size (its k-NN
    search scales, see :func:`~skdeepcluster.embedding._neighbors.choose_method`),
    except in ``partial_fit`` (each call refits on one chunk) and when a
    refinement is asked for (it trains through an affine second stage).
    """
    if not _is_auto(est.reducer):
        return est.reducer
    explicit_refine = est.refine is not None and not _is_auto(est.refine)
    if partial or explicit_refine:
        return None
    return "auto"


def resolve_refine(est, reducer):
    """A fresh refinement strategy, or None; ``'auto'`` is IDEC where it can run.

    It can run with a k-means clusterer (it moves the centres) and an affine
    second stage (scaler and/or PCA), through which the encoder is trained.
    """
    refine = est.refine
    kmeans = isinstance(est.clusterer, str) and est.clusterer in KMEANS_CLUSTERERS
    if _is_auto(refine):
        return IDEC() if kmeans and is_affine(reducer) else None
    if not is_affine(reducer):
        return None  # refused with a clear error by the estimator's parameter checks
    if refine is None:
        return None
    return REFINE_SHORTCUTS[refine]() if isinstance(refine, str) else clone(refine)


def refine_strategy(refine, params: dict):
    """The strategy that the shortcut ``refine`` stands for, with ``params`` set on it.

    For ``set_params(refine__<name>=...)`` on ``refine='kmeans' | 'dec' | 'idec'``;
    ``'auto'`` and None stand for no one strategy, and are refused with a
    ``ValueError`` saying to pass a strategy object.
    """
    if isinstance(refine, str) and refine in REFINE_SHORTCUTS:
        return REFINE_SHORTCUTS[refine]().set_params(**params)
    names = ", ".join(f"refine__{name}" for name in params)
    raise ValueError(
        f"{names} sets a parameter of the refinement strategy, but refine={refine!r} is no "
        "strategy to set it on: pass a strategy object, e.g. refine=IDEC() (or one of the "
        f"shortcuts {sorted(REFINE_SHORTCUTS)}), then set its parameters."
    )


def resolve_self_label(est, architecture: str, reducer, refine, *, partial: bool) -> bool:
    """Whether ``fit`` trains the self-labelling classifier (see :mod:`skdeepcluster._self_label`).

    ``'auto'``: with a trained network, the neighbour embedding as the second
    stage (where it was measured: it labels new data better than their place in
    the layout) and no refinement. Never in ``partial_fit``. ``True``,
    ``self_label_rounds > 0`` and ``self_label_consistency > 0`` self-label
    whatever the second stage; without a network they are refused by the
    estimator's parameter checks.
    """
    if partial or architecture == "none" or est.self_label is False:
        return False
    if est.self_label is True or est.self_label_rounds or est.self_label_consistency:
        return True
    neighbor_embedding = _is_auto(reducer) or isinstance(reducer, NeighborEmbedding)
    return neighbor_embedding and refine is None


def make_reducer(plan: FitPlan, est, n_codes: int):
    """The unfitted reducer of the plan, sizing the 'auto' neighbour embedding on the codes."""
    if not _is_auto(plan.reducer):
        return plan.reducer
    return NeighborEmbedding(
        n_components=min(max(est.n_clusters, AUTO_MIN_COMPONENTS), n_codes),
        device="auto" if _is_auto(est.device) else str(plan.device),
        verbose=est.verbose,
    )
