"""Torch autoencoders used by :class:`~skdeepcluster.AutoencoderKMeans`.

The autoencoder contract
------------------------
Every autoencoder, built-in or user-supplied (the estimator's ``module``
parameter), is a :class:`torch.nn.Module` with:

* ``encode(x)``: maps a float32 batch of shape ``(n, n_features)`` to codes of
  shape ``(n, latent_dim)`` (always 2-D, whatever the module does inside);
* ``decode(z)``: maps codes of shape ``(n, latent_dim)`` back to
  ``(n, n_features)``;
* ``forward(x)``: returns the reconstruction of ``x``, normally
  ``decode(encode(x))``, of shape ``(n, n_features)``. A user's module may
  leave it out: :func:`build_module` then wraps it in an
  :class:`EncodeDecodeAutoencoder`, whose ``forward`` is ``decode(encode(x))``.

Inputs and outputs are *flat*: image models (such as :class:`ConvAutoencoder`)
reshape internally, so that one training loop serves every architecture.
Modules must also work in float64 (``module.double()``), which inference on
the CPU uses, and must not depend on the batch size in eval mode.
:func:`check_autoencoder` verifies the shapes on a small probe batch.

Over 600 lines for a reason: three networks and the ``encode``/``decode``
contract, each with numpydoc and a doctest; one concern, the built-in modules.
"""

from __future__ import annotations

import copy
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}

#: Activations allowed at the decoder's output (``None`` means linear output).
OUTPUT_ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module from its name (see ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}."
        ) from None


def _make_output_activation(name: str | None) -> nn.Module | None:
    if name is None:
        return None
    try:
        return OUTPUT_ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown output_activation {name!r}; expected None or one of "
            f"{sorted(OUTPUT_ACTIVATIONS)}."
        ) from None


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_dropout(dropout: Any) -> float:
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, numbers.Real)
        or not 0.0 <= float(dropout) < 1.0
    ):
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}.")
    return float(dropout)


def _check_layer_options(
    activation: str, output_activation: str | None, dropout: Any
) -> tuple[float, nn.Module | None]:
    """Validate the options every autoencoder shares; return the dropout and output layer.

    The activation is checked even when no hidden layer will use it.
    """
    dropout = _check_dropout(dropout)
    make_activation(activation)
    return dropout, _make_output_activation(output_activation)


def _check_int_sequence(values: Any, name: str, *, allow_empty: bool) -> list[int]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}.")
    if not allow_empty and len(values) == 0:
        raise ValueError(f"{name} must not be empty, got {values!r}.")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 1:
            raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}.")
        out.append(int(v))
    return out


def _after_hidden(
    n_out: int, activation: str, dropout: float, norm: type[nn.Module] | None
) -> list[nn.Module]:
    """What follows every hidden layer: ``[norm(n_out)] -> activation -> [Dropout]``."""
    layers: list[nn.Module] = [] if norm is None else [norm(n_out)]
    layers.append(make_activation(activation))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


def _hidden_block(
    n_in: int, n_out: int, activation: str, dropout: float, batch_norm: bool
) -> list[nn.Module]:
    """``Linear -> [BatchNorm1d] -> activation -> [Dropout]``."""
    norm = nn.BatchNorm1d if batch_norm else None
    return [nn.Linear(n_in, n_out), *_after_hidden(n_out, activation, dropout, norm)]


def _mlp(
    sizes: Sequence[int],
    activation: str,
    *,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``; nothing after the last."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers.extend(_hidden_block(n_in, n_out, activation, dropout, batch_norm))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder ``d-h1-...-hk-latent-hk-...-h1-d``.

    Parameters
    ----------
    n_features : int
        Input (and reconstruction) dimension.
    hidden_layer_sizes : sequence of int
        Widths of the encoder's hidden layers; the decoder mirrors them. May be
        empty (a linear autoencoder).
    latent_dim : int
        Dimension of the codes (linear bottleneck).
    activation : str, default='relu'
        Activation between hidden layers (see ``ACTIVATIONS``).
    output_activation : {None, 'sigmoid', 'tanh'}, default=None
        Applied to the decoder's output; ``None`` keeps it linear. Use
        ``'sigmoid'`` for data scaled to ``[0, 1]``, ``'tanh'`` for ``[-1, 1]``.
    dropout : float, default=0.0
        Dropout probability after each hidden layer of encoder and decoder
        (never on the codes or the output). Active only in training mode.
    batch_norm : bool, default=False
        Insert :class:`~torch.nn.BatchNorm1d` after each hidden linear layer
        (before its activation). Training then needs batches of two or more rows.

    Examples
    --------
    >>> import torch
    >>> from skdeepcluster import MLPAutoencoder
    >>> ae = MLPAutoencoder(20, (16, 8), latent_dim=2)
    >>> ae.encode(torch.zeros(5, 20)).shape
    torch.Size([5, 2])
    >>> ae(torch.zeros(5, 20)).shape
    torch.Size([5, 20])
    """

    def __init__(
        self,
        n_features: int,
        hidden_layer_sizes: Sequence[int],
        latent_dim: int,
        activation: str = "relu",
        *,
        output_activation: str | None = None,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        n_features = _check_positive_int(n_features, "n_features")
        latent_dim = _check_positive_int(latent_dim, "latent_dim")
        hidden = _check_int_sequence(hidden_layer_sizes, "hidden_layer_sizes", allow_empty=True)
        dropout, out_act = _check_layer_options(activation, output_activation, dropout)
        super().__init__()

        self.n_features = n_features
        self.latent_dim = latent_dim
        sizes = [n_features, *hidden, latent_dim]
        kw = dict(dropout=dropout, batch_norm=bool(batch_norm))
        self.encoder = _mlp(sizes, activation, **kw)
        self.decoder = _mlp(sizes[::-1], activation, **kw)
        if out_act is not None:
            self.decoder.append(out_act)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs of shape ``(n, n_features)`` to codes ``(n, latent_dim)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes back to the input space."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``."""
        return self.decode(self.encode(x))


class IdentityAutoencoder(nn.Module):
    """No autoencoder: the codes are the inputs (``architecture='none'``).

    What :class:`~skdeepcluster.AutoencoderKMeans` fits in place of a network
    when ``architecture='none'`` (or ``'auto'`` on small data): ``encode`` and
    ``decode`` return their input, so the second stage works on the input
    features, and there is nothing to train.

    Parameters
    ----------
    n_features : int
        Input dimension, which is also the dimension of the codes.

    Examples
    --------
    >>> import torch
    >>> from skdeepcluster import IdentityAutoencoder
    >>> ae = IdentityAutoencoder(3)
    >>> ae.encode(torch.ones(2, 3)).shape, ae.latent_dim
    (torch.Size([2, 3]), 3)
    """

    def __init__(self, n_features: int) -> None:
        n_features = _check_positive_int(n_features, "n_features")
        super().__init__()
        self.n_features = self.latent_dim = n_features

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The codes: ``x`` itself."""
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction: ``z`` itself."""
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``: ``x`` itself."""
        return x


class EncodeDecodeAutoencoder(nn.Module):
    """A user's module with ``encode`` and ``decode`` but no ``forward``, made an autoencoder.

    The estimator's ``module`` needs only ``encode`` and ``decode``; training
    calls the module itself, so a module without its own ``forward`` is
    wrapped in this one, whose ``forward(x)`` is ``decode(encode(x))``.
    ``encode`` and ``decode`` are the wrapped module's, and so are the
    attributes this one lacks (``autoencoder_.latent_dim`` reads the user's).

    Parameters
    ----------
    inner : torch.nn.Module
        The module with ``encode`` and ``decode``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> class EncodeDecode(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.enc, self.dec = nn.Linear(4, 2), nn.Linear(2, 4)
    ...     def encode(self, x):
    ...         return self.enc(x)
    ...     def decode(self, z):
    ...         return self.dec(z)
    >>> ae = EncodeDecodeAutoencoder(EncodeDecode())
    >>> ae(torch.zeros(3, 4)).shape, ae.encode(torch.zeros(3, 4)).shape
    (torch.Size([3, 4]), torch.Size([3, 2]))
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped module's codes of ``x``."""
        return self.inner.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The wrapped module's reconstruction from the codes ``z``."""
        return self.inner.decode(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``: ``decode(encode(x))``."""
        return self.inner.decode(self.inner.encode(x))

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "inner" or name.startswith("__"):
                raise
            return getattr(super().__getattr__("inner"), name)


def has_own_forward(module: nn.Module) -> bool:
    """Whether ``module``'s class defines ``forward`` (not torch's unimplemented one)."""
    return getattr(type(module), "forward", nn.Module.forward) is not nn.Module.forward


def missing_methods(module: Any) -> list[str]:
    """The methods of the autoencoder contract, ``encode`` and ``decode``, that ``module`` lacks."""
    return [name for name in ("encode", "decode") if not callable(getattr(module, name, None))]


def resolve_image_shape(image_shape: Sequence[int], n_features: int | None) -> tuple[int, int, int]:
    """Validate ``image_shape`` against ``n_features`` and return ``(C, H, W)``.

    Parameters
    ----------
    image_shape : sequence of int
        ``(C, H, W)`` or ``(H, W)`` (shorthand for ``(1, H, W)``). One entry may
        be ``-1``; it is inferred from ``n_features`` as in :func:`numpy.reshape`.
    n_features : int or None
        Number of features of the flat data (``C * H * W``). ``None`` skips the
        check (and then forbids ``-1``).

    Returns
    -------
    tuple of int
        ``(C, H, W)`` with ``C * H * W == n_features``.

    Raises
    ------
    ValueError
        If ``image_shape`` is not 2 or 3 integers, has an entry that is neither
        positive nor a single ``-1``, or does not multiply to ``n_features``.

    Examples
    --------
    >>> resolve_image_shape((1, 28, -1), 784)
    (1, 28, 28)
    >>> resolve_image_shape((8, 8), 64)
    (1, 8, 8)
    """
    if n_features is not None:
        n_features = _check_positive_int(n_features, "n_features")
    if isinstance(image_shape, str) or not isinstance(image_shape, Sequence):
        raise ValueError(
            f"image_shape must be a tuple (C, H, W) or (H, W) of integers, got {image_shape!r}."
        )
    if len(image_shape) not in (2, 3) or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in image_shape
    ):
        raise ValueError(
            f"image_shape must be a tuple (C, H, W) or (H, W) of integers, got {image_shape!r}."
        )
    shape = [int(v) for v in image_shape]
    if len(shape) == 2:
        shape = [1, *shape]
    if any(v < 1 and v != -1 for v in shape) or shape.count(-1) > 1:
        raise ValueError(
            f"image_shape={tuple(image_shape)!r} must hold positive integers, with at most "
            "one -1 (inferred from n_features)."
        )
    known = 1
    for v in shape:
        if v != -1:
            known *= v
    if n_features is None:
        if -1 in shape:
            raise ValueError(
                f"image_shape={tuple(image_shape)!r} contains -1, which can only be "
                "inferred when n_features is known."
            )
    elif -1 in shape:
        if n_features % known:
            raise ValueError(
                f"image_shape={tuple(image_shape)!r} does not fit "
                f"n_features={n_features}: {n_features} is not divisible by {known}."
            )
        shape[shape.index(-1)] = n_features // known
    elif known != n_features:
        raise ValueError(
            f"image_shape={tuple(image_shape)!r} holds {known} values per image but the "
            f"data has {n_features} features (n_features={n_features}); C * H * W must "
            "equal n_features."
        )
    return (shape[0], shape[1], shape[2])


def _conv_out(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


def _conv_encoder(
    in_channels: int,
    size: tuple[int, int],
    channels: Sequence[int],
    kernel_size: int,
    after: Callable[[int], list[nn.Module]],
) -> tuple[nn.Sequential, list[tuple[int, int]]]:
    """Stride-2 convolutions through ``channels``, each followed by ``after(out_channels)``.

    Returns the encoder and the ``(H, W)`` before each convolution and after the last.
    """
    pad = kernel_size // 2
    sizes = [size]
    layers: list[nn.Module] = []
    for in_ch, out_ch in zip([in_channels, *channels[:-1]], channels, strict=True):
        layers.append(nn.Conv2d(in_ch, out_ch, kernel_size, stride=2, padding=pad))
        layers.extend(after(out_ch))
        sizes.append(tuple(_conv_out(n, kernel_size, 2, pad) for n in sizes[-1]))
    return nn.Sequential(*layers), sizes


def _conv_decoder(
    channels: Sequence[int],
    sizes: Sequence[tuple[int, int]],
    kernel_size: int,
    after: Callable[[int], list[nn.Module]],
) -> nn.Sequential:
    """Transposed convolutions from ``channels[0]`` through ``channels[1:]``, hitting ``sizes``.

    A stride-2 transposed convolution maps n to 2n - 1 + output_padding (odd
    kernel, padding k // 2): output_padding in {0, 1} reaches every size the
    encoder went through. Every layer but the last is followed by ``after``.
    """
    layers: list[nn.Module] = []
    n_layers = len(channels) - 1
    for i in range(n_layers):
        (in_h, in_w), (out_h, out_w) = sizes[i], sizes[i + 1]
        layers.append(
            nn.ConvTranspose2d(
                channels[i],
                channels[i + 1],
                kernel_size,
                stride=2,
                padding=kernel_size // 2,
                output_padding=(out_h - (2 * in_h - 1), out_w - (2 * in_w - 1)),
            )
        )
        if i < n_layers - 1:
            layers.extend(after(channels[i + 1]))
    return nn.Sequential(*layers)


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder for images, with flat inputs and outputs.

    The encoder is a stack of stride-2 convolutions (each halving the height
    and width, rounding up) followed by a linear bottleneck; the decoder is a
    linear layer followed by transposed convolutions that reproduce the
    encoder's spatial sizes exactly, so any image size works (down to 1x1).

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)``; one entry may be ``-1`` when
        ``n_features`` is given (see :func:`resolve_image_shape`).
    latent_dim : int
        Dimension of the codes.
    n_features : int, optional
        Flat input dimension; only needed to infer a ``-1`` in ``image_shape``
        (checked against it otherwise).
    channels : sequence of int, default=(32, 64, 128)
        Output channels of the encoder's convolutions; the decoder mirrors them.
    kernel_size : int, default=3
        Odd kernel size of every (transposed) convolution.
    activation : str, default='relu'
        Activation after every hidden layer (see ``ACTIVATIONS``).
    output_activation : {None, 'sigmoid', 'tanh'}, default=None
        Applied to the decoder's output.
    dropout : float, default=0.0
        Dropout probability after each hidden layer (not on codes or output).
    batch_norm : bool, default=False
        Insert :class:`~torch.nn.BatchNorm2d` after each hidden (transposed)
        convolution.

    Attributes
    ----------
    image_shape : tuple of int
        The resolved ``(C, H, W)``.
    n_features : int
        ``C * H * W``.
    spatial_sizes : list of tuple of int
        ``(H, W)`` before each convolution and after the last one.

    Examples
    --------
    >>> import torch
    >>> from skdeepcluster import ConvAutoencoder
    >>> ae = ConvAutoencoder((1, 28, 28), latent_dim=10)
    >>> ae.spatial_sizes  # each stride-2 convolution halves H and W, rounding up
    [(28, 28), (14, 14), (7, 7), (4, 4)]
    >>> codes = ae.encode(torch.zeros(4, 784))
    >>> codes.shape, ae.decode(codes).shape
    (torch.Size([4, 10]), torch.Size([4, 784]))
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        *,
        n_features: int | None = None,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 3,
        activation: str = "relu",
        output_activation: str | None = None,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        c, h, w = resolve_image_shape(image_shape, n_features)
        latent_dim = _check_positive_int(latent_dim, "latent_dim")
        channels = _check_int_sequence(channels, "channels", allow_empty=False)
        kernel_size = _check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}.")
        dropout, out_act = _check_layer_options(activation, output_activation, dropout)
        super().__init__()

        self.image_shape = (c, h, w)
        self.n_features = c * h * w
        self.latent_dim = latent_dim
        after_2d = functools.partial(
            _after_hidden,
            activation=activation,
            dropout=dropout,
            norm=nn.BatchNorm2d if batch_norm else None,
        )
        self.conv_encoder, self.spatial_sizes = _conv_encoder(
            c, (h, w), channels, kernel_size, after_2d
        )
        bottom_h, bottom_w = self.spatial_sizes[-1]
        n_flat = channels[-1] * bottom_h * bottom_w
        self.fc_encoder = nn.Linear(n_flat, latent_dim)
        self.fc_decoder = nn.Sequential(
            *_hidden_block(latent_dim, n_flat, activation, dropout, bool(batch_norm))
        )
        self.conv_decoder = _conv_decoder(
            [*channels[::-1], c], self.spatial_sizes[::-1], kernel_size, after_2d
        )
        if out_act is not None:
            self.conv_decoder.append(out_act)
        self._bottom_shape = (channels[-1], bottom_h, bottom_w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map flat inputs ``(n, C*H*W)`` to codes ``(n, latent_dim)``."""
        h = self.conv_encoder(x.reshape(x.shape[0], *self.image_shape))
        return self.fc_encoder(h.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes back to flat reconstructions ``(n, C*H*W)``."""
        h = self.fc_decoder(z).reshape(z.shape[0], *self._bottom_shape)
        return self.conv_decoder(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` (flat in, flat out)."""
        return self.decode(self.encode(x))


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def check_autoencoder(module: Any, n_features: int) -> int:
    """Check that ``module`` follows the autoencoder contract; return its latent dim.

    The module is probed with a 2-row float32 batch (of zeros) on its own
    device, in eval mode and without gradients; its training flag is restored
    afterwards and its weights and buffers are left untouched.

    Parameters
    ----------
    module : object
        Candidate autoencoder.
    n_features : int
        Expected input and reconstruction dimension.

    Returns
    -------
    latent_dim : int
        Width of the codes returned by ``module.encode``.

    Raises
    ------
    TypeError
        If ``module`` is not a :class:`torch.nn.Module` or lacks callable
        ``encode``/``decode`` methods.
    ValueError
        If encoding or decoding the probe fails or gives the wrong shapes.
    """
    name = type(module).__name__
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"The autoencoder must be a torch.nn.Module with encode and decode "
            f"methods, got {name} ({module!r})."
        )
    for method in ("encode", "decode"):
        if not callable(getattr(module, method, None)):
            raise TypeError(
                f"The autoencoder {name} must define a callable {method}() method; "
                "see skdeepcluster._networks for the contract."
            )
    n_features = _check_positive_int(n_features, "n_features")
    probe = torch.zeros(2, n_features, dtype=torch.float32, device=_module_device(module))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            try:
                z = module.encode(probe)
            except Exception as exc:
                raise ValueError(
                    f"{name}.encode failed on a float32 batch of shape (2, {n_features}) "
                    f"(n_features={n_features}): {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != 2:
                got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                raise ValueError(
                    f"{name}.encode must return a 2-D tensor of shape (n_samples, "
                    f"latent_dim); on an input of shape (2, {n_features}) it returned {got}."
                )
            if z.shape[1] < 1:
                raise ValueError(f"{name}.encode returned codes with 0 columns.")
            try:
                x_hat = module.decode(z)
            except Exception as exc:
                raise ValueError(
                    f"{name}.decode failed on codes of shape {tuple(z.shape)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(x_hat, torch.Tensor) or tuple(x_hat.shape) != (2, n_features):
                got = (
                    tuple(x_hat.shape) if isinstance(x_hat, torch.Tensor) else type(x_hat).__name__
                )
                raise ValueError(
                    f"{name}.decode must return a tensor of shape (n_samples, n_features) "
                    f"= (2, {n_features}); it returned {got}."
                )
    finally:
        module.train(was_training)
    return int(z.shape[1])


def _accepts_n_features(factory: Any) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    param = params.get("n_features")
    return param is not None and param.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def build_module(
    module: Any,
    module_kwargs: Mapping[str, Any] | None,
    n_features: int,
) -> nn.Module:
    """Make the autoencoder to train from the estimator's ``module`` parameter.

    Parameters
    ----------
    module : type, callable or torch.nn.Module
        * a class (or any other callable factory): called with
          ``n_features=n_features`` and ``**module_kwargs`` when its signature
          has an ``n_features`` parameter, else with ``**module_kwargs`` only;
        * a module instance: deep-copied, so that the object passed by the
          user is never trained in place. ``module_kwargs`` must then be empty.
    module_kwargs : dict or None
        Keyword arguments for the class.
    n_features : int
        Number of input features of the data.

    Returns
    -------
    torch.nn.Module
        A fresh module that passed :func:`check_autoencoder`; one without its
        own ``forward`` comes wrapped in an :class:`EncodeDecodeAutoencoder`.

    Raises
    ------
    TypeError
        If ``module`` is neither a module nor a callable, if calling it fails
        on its arguments, or if the result breaks the contract.
    ValueError
        On inconsistent arguments or wrong shapes (see :func:`check_autoencoder`).
    """
    kwargs = dict(module_kwargs or {})
    if isinstance(module, nn.Module):
        if kwargs:
            raise ValueError(
                f"module_kwargs={kwargs!r} can only be used when module is a class; "
                f"got an instance of {type(module).__name__}."
            )
        built = copy.deepcopy(module)
    elif callable(module):
        name = getattr(module, "__name__", repr(module))
        if _accepts_n_features(module):
            if "n_features" in kwargs and kwargs["n_features"] != n_features:
                raise ValueError(
                    f"module_kwargs sets n_features={kwargs['n_features']!r} but the data "
                    f"has n_features={n_features}; leave n_features out of module_kwargs."
                )
            kwargs["n_features"] = n_features
        try:
            built = module(**kwargs)
        except TypeError as exc:
            raise TypeError(
                f"Could not build the autoencoder {name} with arguments {kwargs!r}: {exc}"
            ) from exc
    else:
        raise TypeError(
            "module must be a torch.nn.Module class or instance with encode and decode "
            f"methods, got {type(module).__name__} ({module!r})."
        )
    check_encode_decode(module, built)
    check_autoencoder(built, n_features)
    return built if has_own_forward(built) else EncodeDecodeAutoencoder(built)


def check_encode_decode(module: Any, built: Any) -> None:
    """Refuse a module without ``encode`` and ``decode``: a ``TypeError`` naming ``module``.

    ``module`` is the estimator's parameter (a class or an instance), ``built``
    the module made from it (the instance itself, or the class's instance).
    """
    name = getattr(module, "__name__", type(module).__name__)
    missing = missing_methods(built)
    if isinstance(built, nn.Module) and not missing:
        return
    what = (
        f"has no callable {' or '.join(f'{m}()' for m in missing)} method"
        if isinstance(built, nn.Module)
        else f"{'is' if built is module else 'builds'} a {type(built).__name__}, not a "
        "torch.nn.Module"
    )
    raise TypeError(
        f"module={name} {what}: the autoencoder must be a torch.nn.Module with "
        "encode(x) -> z and decode(z) -> x_hat (forward is optional)."
    )
