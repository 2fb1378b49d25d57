"""The networks :class:`~skdeepcluster.AutoencoderKMeans` builds, as objects holding their shape.

``architecture=MLP(hidden_layer_sizes=(500, 500, 2000), dropout=0.1)`` or
``architecture=ConvNet(channels=(32, 64))``: each is a small scikit-learn-style
object (``get_params``, ``set_params``, ``clone``), so that the estimator
grid-searches its settings as ``architecture__dropout``; the strings
``'mlp'`` and ``'conv'`` stand for ``MLP()`` and ``ConvNet()``. The fit plan
resolves ``'auto'`` (and ``hidden_layer_sizes='auto'``) into the object the
pre-training stage builds its network from (:meth:`NetworkSpec.build`).
"""

from __future__ import annotations

import numbers
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

from ._networks import (
    ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    ConvAutoencoder,
    MLPAutoencoder,
    build_module,
    resolve_image_shape,
)


class NetworkSpec(BaseEstimator):
    """Base class of the network specifications (:class:`MLP`, :class:`ConvNet`).

    A subclass names its ``kind`` (``'mlp'`` or ``'conv'``) and builds its
    untrained autoencoder in :meth:`build`.
    """

    _parameter_constraints: dict = {
        "activation": [StrOptions(set(ACTIVATIONS))],
        "output_activation": [StrOptions(set(OUTPUT_ACTIVATIONS)), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
    }

    kind = ""

    def _options(self) -> dict:
        return dict(
            activation=self.activation,
            output_activation=self.output_activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
        )


class MLP(NetworkSpec):
    """A fully connected autoencoder ``d-h1-...-hk-latent-hk-...-h1-d``.

    Pass it as ``AutoencoderKMeans(architecture=MLP(...))``; its parameters are
    then reached as ``architecture__<name>`` (``set_params``, grid search).

    Parameters
    ----------
    hidden_layer_sizes : array-like of int or 'auto', default='auto'
        Widths of the encoder's hidden layers (the decoder mirrors them).
        ``'auto'``: ``(500, 500, 2000)``, the network of DEC and its
        successors, from 20,000 rows on (and in ``partial_fit``), and the
        cheaper ``(500, 500, 1000)`` below. Narrow it for small or
        low-dimensional data; ``()`` gives a linear encoder.
    activation : {'relu', 'elu', 'leaky_relu', 'tanh', 'gelu'}, default='relu'
        Activation of the hidden layers.
    output_activation : {'sigmoid', 'tanh'} or None, default=None
        Activation of the reconstruction: ``'sigmoid'`` for inputs in [0, 1],
        ``'tanh'`` for [-1, 1], None (linear) otherwise. Not with ``input_pca``.
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer during training; try 0.1-0.2 when
        the network overfits small data.
    batch_norm : bool, default=False
        Batch normalisation after each hidden layer.

    See Also
    --------
    ConvNet : The convolutional network, for images.

    Examples
    --------
    >>> from skdeepcluster import AutoencoderKMeans, MLP
    >>> model = AutoencoderKMeans(3, architecture=MLP(hidden_layer_sizes=(64, 32)))
    >>> model.set_params(architecture__dropout=0.1).get_params()["architecture__dropout"]
    0.1
    """

    _parameter_constraints: dict = {
        **NetworkSpec._parameter_constraints,
        "hidden_layer_sizes": ["array-like", StrOptions({"auto"})],
    }

    kind = "mlp"

    def __init__(
        self,
        hidden_layer_sizes="auto",
        *,
        activation="relu",
        output_activation=None,
        dropout=0.0,
        batch_norm=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output_activation = output_activation
        self.dropout = dropout
        self.batch_norm = batch_norm

    def build(self, n_features: int, latent_dim: int, image_shape=None) -> MLPAutoencoder:
        """The untrained :class:`~skdeepcluster.MLPAutoencoder` of ``n_features`` inputs.

        ``hidden_layer_sizes`` must be resolved (not ``'auto'``); an
        ``image_shape`` is only checked against ``n_features``.
        """
        if image_shape is not None:
            resolve_image_shape(image_shape, n_features)
        hidden = int_sequence(self.hidden_layer_sizes, "hidden_layer_sizes", allow_empty=True)
        return MLPAutoencoder(n_features, hidden, latent_dim, **self._options())


class ConvNet(NetworkSpec):
    """A convolutional autoencoder for images given as flat rows (needs ``image_shape``).

    Stride-2 convolutions halve the height and width at each layer, then a
    linear layer maps to the codes; the decoder mirrors it with transposed
    convolutions. Pass it as ``AutoencoderKMeans(architecture=ConvNet(...),
    image_shape=(C, H, W))``.

    Parameters
    ----------
    channels : array-like of int, default=(32, 64, 128)
        Channels of the encoder's convolutions, one per layer. Fewer layers
        for small images (each halves the side).
    activation : {'relu', 'elu', 'leaky_relu', 'tanh', 'gelu'}, default='relu'
        Activation after each convolution.
    output_activation : {'sigmoid', 'tanh'} or None, default=None
        Activation of the reconstruction (``'sigmoid'`` for pixels in [0, 1]).
    dropout : float in [0, 1), default=0.0
        Dropout after each convolution during training.
    batch_norm : bool, default=False
        Batch normalisation after each convolution.

    See Also
    --------
    MLP : The fully connected network.

    Examples
    --------
    >>> from skdeepcluster import ConvNet
    >>> ConvNet(channels=(16, 32)).get_params()["channels"]
    (16, 32)
    """

    _parameter_constraints: dict = {
        **NetworkSpec._parameter_constraints,
        "channels": ["array-like"],
    }

    kind = "conv"

    def __init__(
        self,
        channels=(32, 64, 128),
        *,
        activation="relu",
        output_activation=None,
        dropout=0.0,
        batch_norm=False,
    ):
        self.channels = channels
        self.activation = activation
        self.output_activation = output_activation
        self.dropout = dropout
        self.batch_norm = batch_norm

    def build(self, n_features: int, latent_dim: int, image_shape=None) -> ConvAutoencoder:
        """The untrained :class:`~skdeepcluster.ConvAutoencoder` of images of ``image_shape``."""
        shape = resolve_image_shape(image_shape, n_features)
        channels = int_sequence(self.channels, "channels", allow_empty=False)
        return ConvAutoencoder(shape, latent_dim, channels=channels, **self._options())


#: The networks that ``architecture='mlp' | 'conv'`` stand for.
SHORTCUTS = {"mlp": MLP, "conv": ConvNet}


def output_activation(architecture):
    """The output activation of a network object (None for a string shortcut)."""
    return architecture.output_activation if isinstance(architecture, NetworkSpec) else None


def int_sequence(value, name: str, *, allow_empty: bool) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints; a ``ValueError`` naming ``name`` otherwise."""
    sizes = np.asarray(value, dtype=object).ravel()
    ok = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes)
    if not ok or (not allow_empty and sizes.size == 0):
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}.")
    return tuple(int(s) for s in sizes)


class UserModule:
    """The user's ``module`` (a class or an instance) and ``module_kwargs``, as the plan's network.

    Not a parameter object: the plan wraps ``AutoencoderKMeans(module=...)``
    in it so that every network of the plan is built the same way.
    """

    kind = "module"

    def __init__(self, module, module_kwargs=None):
        self.module = module
        self.module_kwargs = module_kwargs

    def build(self, n_features: int, latent_dim: int, image_shape=None):
        """The module to train (a class instantiated with ``module_kwargs``)."""
        return build_module(self.module, self.module_kwargs, n_features)
