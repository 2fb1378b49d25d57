"""Torch autoencoders used by :class:`~skdeepcluster.AutoencoderKMeans`.

The contract every autoencoder follows (built-in or user-supplied):

* ``encode(x)`` maps a float32 batch of shape ``(n, n_features)`` to codes of
  shape ``(n, latent_dim)``;
* ``decode(z)`` maps codes back to ``(n, n_features)``;
* ``forward(x)`` returns ``decode(encode(x))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLPAutoencoder", "make_activation"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module from its name (see ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}."
        ) from None


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``; no activation after the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder ``d - h1 - ... - hk - latent - hk - ... - d``.

    Parameters
    ----------
    n_features : int
        Input (and reconstruction) dimension.
    hidden_layer_sizes : sequence of int
        Widths of the encoder's hidden layers; the decoder mirrors them.
    latent_dim : int
        Dimension of the codes (linear bottleneck).
    activation : str, default='relu'
        Activation between hidden layers (see ``ACTIVATIONS``).
    """

    def __init__(
        self,
        n_features: int,
        hidden_layer_sizes: Sequence[int],
        latent_dim: int,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        sizes = [int(n_features), *map(int, hidden_layer_sizes), int(latent_dim)]
        self.encoder = _mlp(sizes, activation)
        self.decoder = _mlp(sizes[::-1], activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs of shape ``(n, n_features)`` to codes ``(n, latent_dim)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes back to the input space."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``."""
        return self.decode(self.encode(x))
