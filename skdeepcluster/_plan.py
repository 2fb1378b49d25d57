"""The fit plan: every ``'auto'`` of :class:`~skdeepcluster.AutoencoderKMeans` resolved once.

``fit`` first turns the parameters and the shape of ``X`` into a frozen
:class:`FitPlan` -- devices, streaming, epochs, the second stage, the
refinement strategy and the random streams -- and then runs its stages over
it. The same stages run at 1,000 rows and at 10,000,000: only the plan
changes. Each rule carries the reason (or measurement) behind it.

Over 600 lines for a reason: one short function per ``'auto'`` rule, each with
its reason; they fill one frozen plan and read best next to it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state

from . import _clustering
from ._architecture import MLP, ConvNet, NetworkSpec, UserModule, output_activation
from ._architecture import SHORTCUTS as ARCHITECTURES
from ._checks import KMEANS_CLUSTERERS, check_params
from ._checks import has_graph as _has_graph
from ._checks import is_auto as _is_auto
from ._clustering import is_affine
from ._data import streamable
from ._device import resolve_device
from .embedding import NeighborEmbedding
from .label import SelfLabel
from .refine import DEC, IDEC, KMeansLoss
from .training._augment import ImageAugment
from .training._optim import make_optimizer

#: Optimizer steps that ``epochs='auto'`` aims for (see the ``epochs`` docstring).
AUTO_STEPS = 1500

#: ``epochs='auto'`` shows pre-training at most this many rows in all (but every row
#: once): ten passes over 60,000 rows, one over a million, instead of ten passes at
#: any size (43 minutes of a million-row fit on two CPU cores). See
#: ``benchmarks/results/large.md``.
AUTO_MAX_ROWS = 600_000

#: ``architecture='auto'`` lets the data choose between the network and none
#: (:mod:`skdeepcluster._choice`), except on fewer rows than ``CHOICE_MIN_SAMPLES`` of
#: fewer features than ``AUTO_NETWORK_MIN_FEATURES``: there it trains none. There the
#: label-free score is not to be trusted: an overfitted network's codes fall into a few
#: tight groups that score high, and it would keep the network on wine (ACC 0.725
#: against 0.933 without) and breast cancer (0.699 against 0.938); on iris the network
#: does better (0.869 against 0.827, means of three seeds). See ``suite.md``.
CHOICE_MIN_SAMPLES = 2000
AUTO_NETWORK_MIN_FEATURES = 256

#: The choice scores each candidate's partition of at most ``CHOICE_ROWS`` sampled
#: rows, the network's after ``CHOICE_EPOCH_SHARE`` of its pre-training epochs.
CHOICE_ROWS = 5000
CHOICE_EPOCH_SHARE = 0.2

#: The ``'auto'`` neighbour embedding has ``max(n_clusters, AUTO_MIN_COMPONENTS)``
#: dimensions (at most as many as the codes have): with only ``n_clusters``, data of
#: few clusters got a cramped layout (``benchmarks/results/suite.md``).
AUTO_MIN_COMPONENTS = 10

#: ``input_pca='auto'`` feeds the network (or, without one, the second stage) the
#: first ``AUTO_INPUT_COMPONENTS`` principal components of inputs of at least
#: ``AUTO_NETWORK_MIN_FEATURES`` features: as good or better, and faster, on the
#: image sets of ``benchmarks/results/suite.md``.
AUTO_INPUT_COMPONENTS = 50

#: ``MLP(hidden_layer_sizes='auto')``: the ``d-500-500-2000-10`` network of DEC and
#: its successors from ``AUTO_WIDE_MIN_SAMPLES`` rows on (and in ``partial_fit``,
#: whose chunks do not tell the data's size), the cheaper ``d-500-500-1000-10``
#: below, where it clusters as well in two thirds of the time (``suite.md``).
AUTO_HIDDEN_LAYER_SIZES = (500, 500, 2000)
AUTO_HIDDEN_LAYER_SIZES_SMALL = (500, 500, 1000)
AUTO_WIDE_MIN_SAMPLES = 20_000

#: The parameters of the network and its training: ``architecture='auto'`` trains a
#: network whenever one of them is set away from its default.
NETWORK_PARAMS = (
    "latent_dim", "loss", "optimizer", "learning_rate", "weight_decay", "batch_size",
    "epochs", "noise", "noise_type", "augment", "validation_fraction", "n_iter_no_change",
    "tol", "callbacks", "warm_start",
)

#: The parameters each network is built from (besides ``architecture``, ``module`` and
#: ``image_shape``, which choose it): a network that ``warm_start`` or ``partial_fit``
#: trains further keeps the values it was built with, and a change of them is warned
#: about (see :func:`network_shape`).
SHAPE_PARAMS = {
    "mlp": (
        "input_pca", "latent_dim", *(f"architecture__{name}" for name in MLP._get_param_names()),
    ),
    "conv": (
        "image_shape", "latent_dim",
        *(f"architecture__{name}" for name in ConvNet._get_param_names()),
    ),
    "module": ("module", "module_kwargs", "input_pca"),
    "none": ("input_pca",),
}

#: The parameters that choose the network (with the data's shape and 'auto' rules).
_CHOOSERS = ("architecture", "module", "image_shape")

#: ``streaming='auto'`` streams data whose float32 copy would exceed this size.
STREAM_BYTES = 2**30

#: ``clusterer='auto'`` with a neighbour graph: its communities where they fit the
#: graph better than k-means' clusters, k-means otherwise (``_communities``).
GRAPH_OR_KMEANS = "graph_or_kmeans"


#: The strategies that ``refine='kmeans' | 'dec' | 'idec'`` stand for.
REFINE_SHORTCUTS = {"kmeans": KMeansLoss, "dec": DEC, "idec": IDEC}

#: The objects that the shortcuts of each component stand for in ``set_params``.
_SHORTCUT_OBJECTS = {
    "refine": REFINE_SHORTCUTS,
    "architecture": ARCHITECTURES,
    "self_label": {"auto": SelfLabel, True: SelfLabel},
    "augment": {None: ImageAugment},
}
_EXAMPLES = {
    "refine": "IDEC()", "architecture": "MLP()", "self_label": "SelfLabel()",
    "augment": "ImageAugment()",
}

#: The random streams of a fit, each spawned from one ``SeedSequence``.
#: A new stream goes last: ``spawn`` gives the first children the same seeds whatever
#: their number, so adding one leaves the others (and earlier results) unchanged.
_STREAMS = (
    "init", "batches", "augment", "split", "cluster", "refine", "projection", "communities",
    "self_label", "self_train", "consistency", "choice",
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
    ``consistency`` the neighbour consistency's batches, neighbours and augmentation,
    ``choice`` the rows that ``architecture='auto'`` scores its candidates on.
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
    choice: int

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
class Training:
    """How the network is trained: the optimizer, the loss, the batches, early stopping."""

    optimizer: str
    learning_rate: float
    weight_decay: float
    batch_size: int
    loss: str
    noise: float
    noise_type: str
    validation_fraction: float
    n_iter_no_change: int | None
    tol: float

    def make_optimizer(self, params, learning_rate=None, *, learning_rate_scale=1.0):
        """The optimizer of ``params`` (``learning_rate``, default this one, times the scale)."""
        rate = self.learning_rate if learning_rate is None else learning_rate
        return make_optimizer(
            self.optimizer, params, learning_rate=rate * learning_rate_scale,
            weight_decay=self.weight_decay,
        )

    def loop_params(self, *, epochs: int, verbose: int) -> dict:
        """Keyword arguments of the pre-training loop."""
        return dict(
            epochs=epochs, batch_size=self.batch_size, loss=self.loss, noise=self.noise,
            noise_type=self.noise_type, n_iter_no_change=self.n_iter_no_change, tol=self.tol,
            verbose=verbose,
        )


@dataclass(frozen=True)
class ChoicePlan:
    """What ``architecture='auto'`` needs to choose: the sample, when to look, the other plan."""

    n_rows: int  # the rows of the sample the candidates are scored on
    probe_epoch: int  # the pre-training epoch after which the network is scored (1-based)
    fallback: FitPlan  # the plan of the fit without a network
    sample_plan: FitPlan  # the fallback's, quiet, its clusterer sized for the sample


@dataclass(frozen=True)
class FitPlan:
    """What a fit does, decided before it starts: the stages read this, not the parameters."""

    devices: tuple[torch.device, ...]
    stream: bool
    n_clusters: int
    architecture: str  # 'none', 'mlp', 'conv' or 'module' (the user's own)
    architecture_reason: str  # why, in a few words
    choice: object  # a ChoicePlan where the data choose between it and no network, or None
    network: object  # the MLP or ConvNet ('auto' widths resolved), the user's module, or None
    image_shape: object
    latent_dim: int
    input_components: int  # principal components in front of the network; 0: none
    epochs: int
    training: Training
    augment: object  # an ImageAugment (or any object with ``make``), or None
    callbacks: tuple  # the user's training callbacks, as given (copied for each fit)
    standardize: bool
    reducer: object  # the second stage's reducer (an estimator) or None
    size_reducer_on_codes: bool  # the 'auto' neighbour embedding: at most one dim per code
    clusterer: object  # 'graph_or_kmeans', 'graph', 'kmeans', ... or an estimator
    n_init: object
    refine: object  # a RefinementStrategy or None
    self_label: object  # a SelfLabel (its ``augment`` resolved) or None
    self_label_request: object  # what asked for self-labelling ('name=value'), None: 'auto'
    warm_start: bool
    entropy: int  # of the root SeedSequence (random_state resolved)
    seeds: Seeds
    verbose: int

    @property
    def device(self) -> torch.device:
        return self.devices[0]


def resolve_plan(
    est, shape: tuple[int, int], *, stream: bool, partial: bool, seeds: Seeds | None = None,
    entropy: int | None = None, call: int = 0,
) -> FitPlan:
    """The plan of one ``fit`` (``partial=False``) or ``partial_fit`` call on ``X`` of ``shape``.

    Checks every combination of parameters (:func:`~skdeepcluster._checks.check_params`)
    once the network and the reducer are chosen, before anything else is resolved.
    The seeds are ``seeds`` when given, else those of ``fit`` or of ``partial_fit`` call
    number ``call``, spawned from ``entropy`` (default: ``random_state``'s). Where
    ``architecture='auto'`` leaves the choice to the data, the plan trains the network
    and holds the plan without one in its :class:`ChoicePlan`.
    """
    architecture, reason, choose = choose_architecture(est, shape, partial=partial)
    reducer_given = resolve_reducer(est, partial=partial)
    check_params(
        est, shape, stream=stream, partial=partial, architecture=architecture,
        reducer=reducer_given,
    )
    if entropy is None:
        entropy = root_entropy(est.random_state)
    if seeds is None:
        seeds = partial_fit_seeds(entropy, call) if partial else fit_seeds(entropy)
    common = dict(stream=stream, partial=partial, seeds=seeds, entropy=entropy)
    plan = _plan_for(est, shape, architecture, reason, reducer_given, **common)
    if not choose:
        return plan
    fallback = _plan_for(
        est, shape, "none", "the data chose no network", reducer_given, **common
    )  # its reason is the choice's record, set where the network is dropped
    n_rows = min(CHOICE_ROWS, shape[0])
    sample = replace(
        _plan_for(est, (n_rows, shape[1]), "none", reason, reducer_given, **common), verbose=0
    )
    choice = ChoicePlan(
        n_rows=n_rows, probe_epoch=max(1, round(plan.epochs * CHOICE_EPOCH_SHARE)),
        fallback=fallback, sample_plan=sample,
    )
    return replace(plan, choice=choice)


def _plan_for(
    est, shape, architecture: str, reason: str, reducer_given, *, stream, partial, seeds,
    entropy,
) -> FitPlan:
    """The plan with ``architecture`` (and no choice left to make)."""
    n_samples = shape[0]
    devices = resolve_devices(est.device)
    input_components = resolve_input_pca(est, shape, architecture, partial=partial)
    if architecture == "none":
        epochs, refine = 0, None
    else:
        epochs = 1 if partial else n_epochs(est, n_samples - n_validation(est, n_samples))
        refine = None if partial else resolve_refine(est, reducer_given)
    n_codes = _n_codes(est, shape, architecture, input_components)
    reducer = make_auto_reducer(est, devices[0], n_codes) if _is_auto(reducer_given) else (
        reducer_given
    )
    return FitPlan(
        devices=tuple(devices), stream=stream, n_clusters=est.n_clusters,
        architecture=architecture, architecture_reason=reason, choice=None,
        network=resolve_network(est, architecture, n_samples, partial),
        image_shape=est.image_shape, latent_dim=est.latent_dim,
        input_components=input_components, epochs=epochs, training=resolve_training(est),
        augment=est.augment, callbacks=tuple(est.callbacks or ()),
        standardize=est.standardize, reducer=reducer,
        size_reducer_on_codes=_is_auto(reducer_given) and n_codes is None,
        clusterer=resolve_clusterer(est, n_samples, reducer_given),
        n_init=est.n_init, refine=refine,
        self_label=resolve_self_label(est, architecture, reducer_given, refine, partial=partial),
        self_label_request=self_label_request(est), warm_start=est.warm_start,
        entropy=entropy, seeds=seeds, verbose=est.verbose,
    )


def resolve_training(est) -> Training:
    """The training settings of the plan, as given."""
    return Training(
        optimizer=est.optimizer, learning_rate=est.learning_rate,
        weight_decay=est.weight_decay, batch_size=est.batch_size, loss=est.loss,
        noise=est.noise, noise_type=est.noise_type,
        validation_fraction=est.validation_fraction, n_iter_no_change=est.n_iter_no_change,
        tol=est.tol,
    )


def _n_codes(est, shape, architecture: str, input_components: int):
    """The number of codes the network gives (None for the user's module: known once built)."""
    if architecture in ("mlp", "conv"):
        return est.latent_dim
    if architecture == "none":
        return input_components or shape[1]
    return None


def make_auto_reducer(est, device, n_codes):
    """``reducer='auto'``: the neighbour embedding of ``max(n_clusters, 10)`` dimensions
    (at most ``n_codes``, when known)."""
    n_components = max(est.n_clusters, AUTO_MIN_COMPONENTS)
    return NeighborEmbedding(
        n_components=n_components if n_codes is None else min(n_components, n_codes),
        device="auto" if _is_auto(est.device) else str(device),
        verbose=est.verbose,
    )


def make_reducer(plan: FitPlan, n_codes: int):
    """The unfitted reducer of the second stage for ``n_codes`` codes (a fresh copy)."""
    reducer = plan.reducer
    if reducer is None:
        return None
    if plan.size_reducer_on_codes and reducer.n_components > n_codes:
        return clone(reducer).set_params(n_components=n_codes)
    return reducer


def resolve_network(est, architecture: str, n_samples: int, partial: bool):
    """The network the plan builds: an :class:`~skdeepcluster.MLP` or
    :class:`~skdeepcluster.ConvNet` with ``hidden_layer_sizes='auto'`` resolved, the
    user's module (class or instance), or None."""
    if architecture == "module":
        return UserModule(est.module, est.module_kwargs)
    if architecture == "none":
        return None
    given = est.architecture
    # A shallow copy: the user's object stays as given, its values are the plan's.
    spec = type(given)(**given.get_params()) if isinstance(given, NetworkSpec) else (
        ARCHITECTURES[architecture]()
    )
    if isinstance(spec, MLP) and _is_auto(spec.hidden_layer_sizes):
        wide = partial or n_samples >= AUTO_WIDE_MIN_SAMPLES
        spec.set_params(
            hidden_layer_sizes=AUTO_HIDDEN_LAYER_SIZES if wide else AUTO_HIDDEN_LAYER_SIZES_SMALL
        )
    return spec


def network_shape(est, plan: FitPlan) -> dict:
    """What the plan's network is built from: ``{name: (value given, value resolved)}``.

    The parameters that choose the network and those of ``SHAPE_PARAMS`` for
    its architecture (``architecture__<name>``: the network object's). The
    architecture (its kind for an object), ``hidden_layer_sizes`` and
    ``input_pca`` are resolved as the plan resolved them (``'auto'`` differs
    between ``fit`` and ``partial_fit``); the others are their own
    resolution. Sequences are stored as tuples, so that ``[32, 16]`` and
    ``(32, 16)`` compare equal.
    """
    resolved = {"architecture": plan.architecture, "input_pca": plan.input_components or None}
    if isinstance(plan.network, NetworkSpec):
        resolved.update(
            {f"architecture__{k}": v for k, v in plan.network.get_params().items()}
        )
    names = dict.fromkeys((*_CHOOSERS, *SHAPE_PARAMS[plan.architecture]))
    return {
        name: (_frozen(_given(est, name)), _frozen(resolved.get(name, _given(est, name))))
        for name in names
    }


def _given(est, name: str):
    """The value ``name`` has on ``est``: ``architecture__<p>`` is the network object's (or
    its default for a string architecture); an architecture object is its kind."""
    architecture = est.architecture
    if name == "architecture":
        return architecture.kind if isinstance(architecture, NetworkSpec) else architecture
    if name.startswith("architecture__"):
        param = name[len("architecture__"):]
        spec = architecture if isinstance(architecture, NetworkSpec) else None
        if spec is None:
            spec = ARCHITECTURES.get(architecture, MLP)()
        return spec.get_params().get(param)
    return getattr(est, name)


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
    """The network the fit starts with: ``'none'``, ``'mlp'``, ``'conv'`` or ``'module'``."""
    return choose_architecture(est, shape, partial=partial)[0]


def choose_architecture(est, shape: tuple[int, int], *, partial: bool) -> tuple[str, str, bool]:
    """``(architecture, reason, choose)``: the network of the plan, why, and whether the
    data choose between it and no network (:mod:`skdeepcluster._choice`).

    ``architecture='auto'`` is ``'conv'`` with ``image_shape``. Without it, it
    is the MLP, kept or dropped by the data in ``fit``, when everything that
    would shape the network or its training is left at its default
    (``reducer``, ``refine``, ``self_label`` other than ``'auto'`` or False,
    and every parameter of ``NETWORK_PARAMS``: ``epochs``, ``noise``,
    ``warm_start``, ...): a parameter set for the network asks for one, and
    ``partial_fit`` trains one chunk by chunk. Two shortcuts skip the
    measurement where it cannot pay (see ``CHOICE_MIN_SAMPLES``): no network
    on fewer than ``CHOICE_MIN_SAMPLES`` rows of fewer than
    ``AUTO_NETWORK_MIN_FEATURES`` features, and the network on several devices.
    """
    if est.module is not None:
        return "module", "a module was given", False
    if isinstance(est.architecture, NetworkSpec) or est.architecture != "auto":
        kind = getattr(est.architecture, "kind", est.architecture)
        return kind, "as given", False
    if est.image_shape is not None:
        return "conv", "image_shape was given: a convolutional network", False
    defaults = (
        _is_auto(est.reducer)
        and (est.refine is None or _is_auto(est.refine))
        and (est.self_label is False or _is_auto(est.self_label))
        and not _network_params_set(est)
    )
    if not defaults:
        return "mlp", "a parameter of the network or its use was set", False
    if partial:
        return "mlp", "partial_fit trains a network chunk by chunk", False
    n_samples, n_features = shape
    if n_samples < CHOICE_MIN_SAMPLES and n_features < AUTO_NETWORK_MIN_FEATURES:
        return "none", (
            f"fewer than {CHOICE_MIN_SAMPLES:,} rows of fewer than "
            f"{AUTO_NETWORK_MIN_FEATURES} features"
        ), False
    if isinstance(est.device, (list, tuple)):
        return "mlp", "training on several devices", False
    return "mlp", "chosen by the data", True


def resolve_input_pca(est, shape: tuple[int, int], architecture: str, *, partial: bool) -> int:
    """How many principal components of the input the network sees (0: the input itself).

    ``input_pca='auto'`` is ``AUTO_INPUT_COMPONENTS`` (at most the number of
    rows) for an MLP or no network on inputs of at least
    ``AUTO_NETWORK_MIN_FEATURES`` features with a linear decoder output, in
    ``fit``; none otherwise (a convolutional network needs the pixels, a
    ``partial_fit`` chunk may not represent the data). An integer is checked
    against the network and the shape of ``X`` by the parameter checks.
    """
    value = est.input_pca
    n_samples, n_features = shape
    if value is None:
        return 0
    if _is_auto(value):
        eligible = architecture in ("mlp", "none") and output_activation(est.architecture) is None
        if partial or not eligible or n_features < AUTO_NETWORK_MIN_FEATURES:
            return 0
        return min(AUTO_INPUT_COMPONENTS, n_samples, n_features)
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
    stage is a neighbour embedding (``'graph_or_kmeans'``), and is k-means
    otherwise. ``clusterer='graph'`` without a graph is refused by the checks.
    """
    clusterer = est.clusterer
    if _is_auto(clusterer):
        clusterer = GRAPH_OR_KMEANS if _has_graph(reducer) else "kmeans"
    if isinstance(clusterer, str) and clusterer == "kmeans":
        return kmeans_kind(n_samples)
    return clusterer


def kmeans_kind(n_samples: int) -> str:
    """``'minibatch_kmeans'`` from ``MINIBATCH_MIN_SAMPLES`` rows on, else ``'kmeans'``."""
    return "minibatch_kmeans" if n_samples >= _clustering.MINIBATCH_MIN_SAMPLES else "kmeans"


def resolve_reducer(est, *, partial: bool):
    """The second stage after the scaler ('auto': sized on the codes by :func:`resolve_plan`).

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


def expand_shortcuts(est, params: dict) -> dict:
    """``params`` of ``set_params``, with each component given as a shortcut and set by
    ``<component>__<name>`` replaced by the object it stands for, the names set on it.

    ``refine='kmeans' | 'dec' | 'idec'``, ``architecture='mlp' | 'conv'``,
    ``self_label='auto' | True`` (``SelfLabel()``) and ``augment=None``
    (``ImageAugment()``); other shortcuts stand for no one object and are
    refused with a ``ValueError`` saying to pass an object.
    """
    params = dict(params)
    for component, shortcuts in _SHORTCUT_OBJECTS.items():
        prefix = f"{component}__"
        nested = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        current = params.get(component, getattr(est, component))
        if not nested or hasattr(current, "set_params"):
            continue
        key = current if isinstance(current, (str, bool)) or current is None else None
        if key not in shortcuts:
            names = ", ".join(prefix + name for name in nested)
            raise ValueError(
                f"{names} sets a parameter of {component}, but {component}={current!r} is no "
                f"object to set it on: pass one (e.g. {component}={_EXAMPLES[component]}, or "
                f"one of the shortcuts {sorted(map(repr, shortcuts))}), then set its parameters."
            )
        params = {k: v for k, v in params.items() if not k.startswith(prefix)}
        params[component] = shortcuts[key]().set_params(**nested)
    return params


def resolve_self_label(est, architecture: str, reducer, refine, *, partial: bool):
    """The self-labelling strategy of the fit (a fresh :class:`~skdeepcluster.SelfLabel`), or None.

    ``'auto'``: ``SelfLabel()`` with a trained network, the neighbour embedding
    as the second stage (where it labels new data better than their place in
    the layout) and no refinement. Never in ``partial_fit``. ``True`` (the
    default ``SelfLabel()``) and a ``SelfLabel`` self-label whatever the second
    stage; without a network the checks refuse them. The strategy's
    ``augment='auto'`` is resolved to the estimator's ``augment``.
    """
    given = est.self_label
    if partial or architecture == "none" or given is False:
        return None
    if _is_auto(given):
        neighbor_embedding = _is_auto(reducer) or isinstance(reducer, NeighborEmbedding)
        if not (neighbor_embedding and refine is None):
            return None
    strategy = clone(given) if isinstance(given, SelfLabel) else SelfLabel()
    if _is_auto(strategy.augment):
        strategy.set_params(augment=est.augment)
    return strategy


def self_label_request(est):
    """What asked for self-labelling (``'self_label=...'``), or None for ``'auto'`` and False."""
    given = est.self_label
    if given is False or _is_auto(given):
        return None
    return f"self_label={given!r}"
