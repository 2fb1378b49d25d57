"""The affine head: the fitted scaler and PCA as a fixed torch map.

Refinement trains the encoder through the second stage, so that stage must
be differentiable: :func:`affine_head_from_sklearn` turns a fitted
:class:`~sklearn.preprocessing.StandardScaler` and
:class:`~sklearn.decomposition.PCA` into an :class:`AffineHead` module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class AffineHead(nn.Module):
    """Fixed affine map ``((z - mean) / scale - pca_mean) @ components.T``.

    Holds its arrays as buffers (no trainable parameters), so it follows the
    module across ``.to(device)`` and pickling. Each step is skipped when its
    array is None; with all of them None it is the identity.
    """

    def __init__(
        self,
        mean: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        components: torch.Tensor | None = None,
        pca_mean: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.register_buffer("components", components)
        self.register_buffer("pca_mean", pca_mean)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the map to a batch of codes of shape ``(n, latent_dim)``."""
        if self.mean is not None:
            z = z - self.mean
        if self.scale is not None:
            z = z / self.scale
        if self.components is not None:
            if self.pca_mean is not None:
                z = z - self.pca_mean
            z = z @ self.components.T
        return z


def _as_buffer(name, value, ndim, device, dtype):
    if value is None:
        return None
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return torch.as_tensor(np.array(arr, dtype=np.float64), device=device).to(dtype)


def affine_head(
    mean=None,
    scale=None,
    components=None,
    pca_mean=None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> AffineHead:
    """Torch version of ``StandardScaler.transform`` then ``PCA.transform``.

    Computes ``((z - mean) / scale - pca_mean) @ components.T``, skipping each
    step whose array is None (``whiten=False`` PCA only).

    Parameters
    ----------
    mean : array-like of shape (latent_dim,), optional
        The scaler's ``mean_`` (None when it does not centre).
    scale : array-like of shape (latent_dim,), optional
        The scaler's ``scale_``. Zeros are replaced by ones, as scikit-learn
        does for constant features.
    components : array-like of shape (n_components, latent_dim), optional
        The PCA's ``components_``.
    pca_mean : array-like of shape (latent_dim,), optional
        The PCA's ``mean_``; only used with ``components``.
    device : str or torch.device, optional
        Where to place the buffers (CPU by default).
    dtype : torch.dtype, default=torch.float32
        Dtype of the buffers; match the module's.

    Returns
    -------
    head : AffineHead
        A :class:`torch.nn.Module` without trainable parameters.

    Raises
    ------
    ValueError
        If an array has the wrong number of dimensions, non-finite values or
        shapes that do not fit together.
    """
    mean = _as_buffer("mean", mean, 1, device, dtype)
    scale = _as_buffer("scale", scale, 1, device, dtype)
    components = _as_buffer("components", components, 2, device, dtype)
    pca_mean = _as_buffer("pca_mean", pca_mean, 1, device, dtype)
    if scale is not None:
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    if mean is not None and scale is not None and mean.shape != scale.shape:
        raise ValueError(
            f"mean and scale must have the same length, got {mean.shape[0]} and {scale.shape[0]}."
        )
    if pca_mean is not None and components is None:
        raise ValueError("pca_mean was given without components.")
    if components is not None:
        width = components.shape[1]
        for name, arr in (("mean", mean), ("scale", scale), ("pca_mean", pca_mean)):
            if arr is not None and arr.shape[0] != width:
                raise ValueError(
                    f"{name} has length {arr.shape[0]} but components has {width} columns."
                )
    return AffineHead(mean, scale, components, pca_mean)


def affine_head_from_sklearn(
    scaler=None,
    pca=None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> AffineHead:
    """:func:`affine_head` from a fitted StandardScaler and PCA (each may be None).

    Raises
    ------
    ValueError
        If ``pca`` was fitted with ``whiten=True`` (not supported).
    """
    mean = scale = components = pca_mean = None
    if scaler is not None:
        if getattr(scaler, "with_mean", True):
            mean = scaler.mean_
        if getattr(scaler, "with_std", True):
            scale = scaler.scale_
    if pca is not None:
        if getattr(pca, "whiten", False):
            raise ValueError("affine_head_from_sklearn does not support PCA(whiten=True).")
        components, pca_mean = pca.components_, pca.mean_
    return affine_head(mean, scale, components, pca_mean, device=device, dtype=dtype)
