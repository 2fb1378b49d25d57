"""Every rule on combinations of the estimator's parameters, in one place.

:func:`check_params` runs first in :func:`~skdeepcluster._plan.resolve_plan`,
before any training: a combination the estimator cannot honour is refused
with a ``ValueError`` (or a ``TypeError`` for a wrong kind of object) that
names the parameters and says what to use instead. The single parameters'
types and ranges are checked before, by scikit-learn's parameter validation
(``_parameter_constraints``), and the nested objects' by their own.
"""

from __future__ import annotations

import torch

from ._architecture import output_activation
from ._clustering import is_affine
from ._networks import check_encode_decode
from .embedding import NeighborEmbedding
from .label import SelfLabel
from .refine import RefinementStrategy
from .training._callbacks import HOOKS as CALLBACK_HOOKS
from .training._callbacks import Callback

#: Built-in clusterers that refinement can work with (they define the centres):
#: ``'auto'`` is k-means wherever refinement can run (an affine second stage has
#: no neighbour graph to find communities in).
KMEANS_CLUSTERERS = ("auto", "kmeans", "minibatch_kmeans")


def check_params(
    est, shape: tuple[int, int], *, stream: bool, partial: bool, architecture: str, reducer
) -> None:
    """Refuse the combinations of ``est``'s parameters that cannot run on ``X`` of ``shape``.

    ``architecture`` is the network the plan resolved (``'none'``, ``'mlp'``,
    ``'conv'`` or ``'module'``) and ``reducer`` its second stage before sizing
    (``'auto'``, an estimator or None), so that the rules read what the fit
    will do rather than derive it again.
    """
    for name in ("architecture", "augment", "self_label", "refine"):
        value = getattr(est, name)
        if hasattr(value, "_validate_params"):
            value._validate_params()
    _check_data(est, shape, stream=stream, partial=partial)
    _check_no_network(est)
    _check_network(est, shape, architecture)
    _check_augment(est)
    check_callbacks(est.callbacks)
    _check_refine(est)
    _check_self_label(est)
    _check_clusterer(est, reducer)


def is_auto(value) -> bool:
    """Whether ``value`` is the string ``'auto'`` (and not an object or an array)."""
    return isinstance(value, str) and value == "auto"


def has_graph(reducer) -> bool:
    """Whether the (unfitted) reducer of the plan is a neighbour embedding, with a graph."""
    return is_auto(reducer) or isinstance(reducer, NeighborEmbedding)


def _multi_device(est) -> bool:
    return isinstance(est.device, (list, tuple))


def _check_data(est, shape, *, stream: bool, partial: bool) -> None:
    n_samples = shape[0]
    if est.n_clusters > n_samples:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={est.n_clusters}.")
    if stream and (est.validation_fraction or _multi_device(est)):
        raise ValueError(
            "streaming=True cannot be combined with validation_fraction > 0 or a "
            "list of devices; use streaming=False (or 'auto')."
        )
    if partial and _multi_device(est) and len(est.device) > 1:
        raise ValueError("partial_fit trains on one device; got a list of devices.")


def _check_no_network(est) -> None:
    """``architecture='none'`` refuses the options that only a network can use."""
    if not (isinstance(est.architecture, str) and est.architecture == "none"):
        return
    if est.module is not None:
        return
    asked = {}
    if est.augment is not None:
        asked["augment"] = est.augment
    if est.noise:
        asked["noise"] = est.noise
    if est.refine is not None and not is_auto(est.refine):
        asked["refine"] = est.refine
    if est.self_label is True or isinstance(est.self_label, SelfLabel):
        asked["self_label"] = est.self_label
    if asked:
        (name, value), *_ = asked.items()
        raise ValueError(
            f"{name}={value!r} needs a network to train, but architecture='none' "
            "trains none; use architecture='auto', 'mlp' or 'conv' (or MLP(), ConvNet())."
        )


def _check_network(est, shape, architecture: str) -> None:
    """The convolutional network's image shape, the user's module, ``input_pca``."""
    if architecture == "conv" and est.image_shape is None:
        raise ValueError(f"architecture={est.architecture!r} needs image_shape=(C, H, W).")
    if isinstance(est.module, torch.nn.Module):
        check_encode_decode(est.module, est.module)
    value = est.input_pca
    if value is None or is_auto(value):
        return
    if architecture not in ("mlp", "none"):
        raise ValueError(
            f"input_pca={value} projects the input for a fully connected network or none; "
            f"it cannot be combined with the {architecture!r} network. Use input_pca=None."
        )
    activation = output_activation(est.architecture)
    if activation is not None:
        raise ValueError(
            f"input_pca={value} decodes through the principal components, which an "
            f"architecture__output_activation={activation!r} cannot bound; use "
            "output_activation=None or input_pca=None."
        )
    if value > min(shape):
        raise ValueError(
            f"input_pca={value} must be at most min(n_samples, n_features)={min(shape)}."
        )


def _check_augment(est) -> None:
    """Image augmentation needs ``image_shape`` and one device; mask noise below 1."""
    own = getattr(est.self_label, "augment", None)
    augments = {"augment": est.augment}
    if own is not None and not is_auto(own):
        augments["self_label__augment"] = own
    for name, value in augments.items():
        if value is not None and not callable(getattr(value, "make", None)):
            raise TypeError(
                f"{name}={value!r} is not an augmentation: pass an ImageAugment (or an "
                "object with its make(image_shape, n_features, seed) method), or None."
            )
        if value is not None and est.image_shape is None:
            raise ValueError(
                f"{name}={value!r} shifts and rotates images; it needs image_shape=(C, H, W)."
            )
    if est.augment is not None and _multi_device(est):
        raise ValueError(
            f"augment={est.augment!r} is not supported with a list of devices "
            "(data-parallel pre-training); use one device."
        )
    if est.noise_type == "mask" and est.noise >= 1:
        raise ValueError(
            f"noise={est.noise} is the fraction of masked inputs; it must be < 1 "
            "with noise_type='mask'."
        )


def check_callbacks(callbacks) -> None:
    """Each entry of ``callbacks`` is a training callback: a ``TypeError`` names it if not.

    The loop calls every hook of every callback, so an entry must be a
    :class:`~skdeepcluster.training.Callback` instance or have all of its
    hooks; a class is refused too (its hooks are unbound).
    """
    for i, callback in enumerate(callbacks or ()):
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


def _check_refine(est) -> None:
    """A refinement moves k-means centres through an affine second stage."""
    refine = est.refine
    if refine is None or is_auto(refine):
        return
    if not (isinstance(est.clusterer, str) and est.clusterer in KMEANS_CLUSTERERS):
        raise ValueError(
            f"refine={refine!r} needs clusterer='kmeans', got "
            f"{est.clusterer!r}; use refine=None (or 'auto') with other clusterers."
        )
    reducer = None if isinstance(est.reducer, str) else est.reducer
    if not is_affine(reducer):
        raise ValueError(
            f"refine={refine!r} works through the scaler and a PCA reducer "
            f"only; it cannot be combined with reducer={est.reducer!r}."
        )
    if not isinstance(refine, (str, RefinementStrategy)) and not callable(
        getattr(refine, "refine", None)
    ):
        raise TypeError(f"refine={refine!r} is not a refinement strategy.")


def _check_self_label(est) -> None:
    """Neighbour consistency trains on the neighbour embedding's graph; an augmentation of
    its own is for the consistency and the self-training rounds."""
    strategy = est.self_label
    if not isinstance(strategy, SelfLabel):
        return
    own_augment = strategy.augment is not None and not is_auto(strategy.augment)
    if own_augment and not (strategy.rounds or strategy.consistency):
        raise ValueError(
            f"self_label__augment={strategy.augment!r} augments the neighbour consistency "
            "and the self-training rounds; set self_label__consistency > 0 or "
            "self_label__rounds > 0."
        )
    reducer = est.reducer
    if strategy.consistency and not is_auto(reducer):
        if not isinstance(reducer, NeighborEmbedding):
            raise ValueError(
                f"self_label__consistency={strategy.consistency} trains on the neighbour "
                "embedding's graph, but reducer is "
                f"{type(reducer).__name__ if reducer is not None else None}; use "
                "reducer='auto' or a NeighborEmbedding, or self_label__consistency=0."
            )


def _check_clusterer(est, reducer) -> None:
    """``clusterer='graph'`` finds communities in the neighbour embedding's graph."""
    clusterer = est.clusterer
    if not (isinstance(clusterer, str) and clusterer == "graph") or has_graph(reducer):
        return
    raise ValueError(
        "clusterer='graph' finds communities in the neighbour graph of "
        "reducer='auto' or a NeighborEmbedding; there is none here (reducer="
        f"{'None in partial_fit' if is_auto(est.reducer) else repr(est.reducer)}). "
        "Use clusterer='auto' or 'kmeans'."
    )
