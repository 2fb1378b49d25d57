"""Principal components of the input in front of the network (``input_pca``).

Wide inputs (784 pixels) carry most of their variance in a few dozen
directions. :class:`ProjectedAutoencoder` puts a fixed orthonormal
projection onto the first principal components in front of any
autoencoder and maps its reconstruction back to the input space, so that
everything downstream (the training loop, streaming, refinement,
``reconstruct`` and ``inverse_transform``, pickling) sees an ordinary
autoencoder of the input. The basis is fitted with scikit-learn's
:class:`~sklearn.decomposition.PCA` on at most ``MAX_FIT_ROWS`` sampled rows.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn

from ._data import read_sorted_rows

#: Rows the basis is fitted on at most: the covariance of 784 features is well
#: estimated from 20,000 rows (Fashion-MNIST's 70,000: 50 components fitted on
#: 20,000 sampled rows keep 0.8622 of the variance of all rows, fitted on all of
#: them 0.8626, in 0.3 s instead of 0.7 s), and a million-row memmap is not read in
#: full (3 GB) for it.
MAX_FIT_ROWS = 20_000


class ProjectedAutoencoder(nn.Module):
    """An autoencoder of the input's first principal components.

    ``encode(x)`` projects ``x`` onto the components (``(x - mean) @
    components.T``) and encodes the projection with ``inner``; ``decode(z)``
    decodes with ``inner`` and maps back to the input space (``@ components +
    mean``). The mean and components are fixed buffers, not trained. Since
    the components are orthonormal, the mean squared reconstruction error of
    ``x`` is that of its projection (scaled) plus a constant, so training this
    module trains ``inner`` on the components.

    :class:`~skdeepcluster.AutoencoderKMeans` builds one when ``input_pca``
    asks for it (``autoencoder_``).

    Parameters
    ----------
    inner : torch.nn.Module
        Autoencoder of ``n_components`` features, with ``encode`` and ``decode``.
    mean : array-like of shape (n_features,)
        Mean of the input.
    components : array-like of shape (n_components, n_features)
        Orthonormal rows: the principal axes.

    Attributes
    ----------
    n_features : int
        Input (and reconstruction) dimension.
    n_components : int
        Number of principal components that ``inner`` sees.
    latent_dim : int
        Dimension of the codes (that of ``inner``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skdeepcluster import MLPAutoencoder, ProjectedAutoencoder
    >>> from skdeepcluster._projection import fit_projection
    >>> X = np.random.default_rng(0).normal(size=(100, 20)).astype(np.float32)
    >>> mean, components = fit_projection(X, 5, seed=0)
    >>> ae = ProjectedAutoencoder(MLPAutoencoder(5, (8,), latent_dim=2), mean, components)
    >>> ae.encode(torch.zeros(3, 20)).shape, ae(torch.zeros(3, 20)).shape
    (torch.Size([3, 2]), torch.Size([3, 20]))
    """

    def __init__(self, inner: nn.Module, mean, components) -> None:
        super().__init__()
        components = torch.as_tensor(np.asarray(components), dtype=torch.float32)
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        if components.ndim != 2 or mean.shape != (components.shape[1],):
            raise ValueError(
                "components must have shape (n_components, n_features) and mean "
                f"(n_features,); got {tuple(components.shape)} and {tuple(mean.shape)}."
            )
        self.inner = inner
        self.register_buffer("mean", mean)
        self.register_buffer("components", components)
        self.n_components, self.n_features = components.shape
        self.latent_dim = getattr(inner, "latent_dim", None)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The principal components of ``x``: ``(x - mean) @ components.T``."""
        return (x - self.mean) @ self.components.T

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs of shape ``(n, n_features)`` to codes."""
        return self.inner.encode(self.project(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes back to the input space."""
        return self.inner.decode(z) @ self.components + self.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``."""
        return self.decode(self.encode(x))


def sample_rows(X, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` rows of ``X`` (an array or a memmap), drawn without replacement.

    The rows are read in increasing order, so a memmap is read front to back,
    and its pages are released afterwards (``_data.release_pages``).
    """
    n_samples = X.shape[0]
    if n_samples <= max_rows:
        return read_sorted_rows(X)
    rng = np.random.default_rng(seed)
    return read_sorted_rows(X, np.sort(rng.choice(n_samples, size=max_rows, replace=False)))


def fit_projection(X, n_components: int, *, seed: int, max_rows: int | None = None):
    """The mean and the first ``n_components`` principal axes of ``X``.

    Fitted on at most ``max_rows`` (default ``MAX_FIT_ROWS``) rows sampled
    with ``seed``; returns float32 arrays of shapes ``(n_features,)`` and
    ``(n_components, n_features)``.
    """
    sample = sample_rows(X, MAX_FIT_ROWS if max_rows is None else max_rows, seed)
    pca = PCA(n_components=n_components, random_state=seed).fit(sample)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
