"""Joint refinement of an autoencoder and its cluster centres.

After pre-training, the estimator holds an autoencoder, the training data on
the device and an initial clustering (centres in the *embedding* space, i.e.
after the fitted scaler and PCA). The functions here fine-tune the encoder
(and decoder) together with the centres:

* :func:`refine_kmeans` -- a k-means loss on the embedding plus the
  reconstruction loss (Song et al., 2013; "Deep k-means" style), with hard
  nearest-centre assignments and centres recomputed once per epoch.
* :func:`refine_dec` -- DEC / IDEC self-training (Xie et al., 2016; Guo et
  al., 2017): Student-t soft assignments, a sharpened target distribution
  refreshed every ``update_interval`` batches, KL divergence plus an optional
  reconstruction term; the centres are trainable parameters.

Both are plain keyword-only functions over a module and a tensor, with no
estimator inside. The embedding is ``embed(module.encode(x))`` where
``embed`` is a fixed differentiable map, typically :func:`affine_head` built
from the fitted :class:`~sklearn.preprocessing.StandardScaler` and
:class:`~sklearn.decomposition.PCA`. Final labels are *not* computed here: the
caller recomputes them (and the inertia) by nearest-centre assignment.

References
----------
C. Song, F. Liu, Y. Huang, L. Wang and T. Tan, "Auto-encoder based data
clustering", CIARP 2013.

J. Xie, R. Girshick and A. Farhadi, "Unsupervised deep embedding for
clustering analysis", ICML 2016.

X. Guo, L. Gao, X. Liu and J. Yin, "Improved deep embedded clustering with
local structure preservation", IJCAI 2017.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from ._data import StreamSource, TensorSource, as_source
from ._training import INFERENCE_BATCH_SIZE, LOSSES, _snapshot

__all__ = [
    "AffineHead",
    "affine_head",
    "affine_head_from_sklearn",
    "lambda_schedule",
    "refine_dec",
    "refine_kmeans",
    "soft_assignment",
    "target_distribution",
]

logger = logging.getLogger(__name__)

#: Signature of the optimizer factories: receives a list of torch parameter
#: groups (valid as the ``params`` argument of any torch optimizer) and
#: returns the optimizer, e.g.
#: ``functools.partial(make_optimizer, "adam", learning_rate=1e-4)``.
OptimizerFactory = Callable[[list], torch.optim.Optimizer]

_EPS = 1e-12


# ----------------------------------------------------------------- embedding
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


# ------------------------------------------------------------------ helpers
def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def _sq_distances(E: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, k)``, clamped at 0 (no gradient use)."""
    d = (E * E).sum(1, keepdim=True) - 2.0 * (E @ C.T) + (C * C).sum(1)[None, :]
    return d.clamp_min_(0.0)


@torch.no_grad()
def _embed_all(
    module: nn.Module, source: TensorSource | StreamSource, embed: Callable, batch_size: int
) -> torch.Tensor:
    """Embedding of all rows of ``source`` in eval mode, batched; the mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        chunks = [embed(module.encode(xb)) for xb in source.sequential(batch_size)]
    finally:
        module.train(was_training)
    return torch.cat(chunks, dim=0)


def _check_common(module, X, centers, epochs, batch_size, loss, embed):
    if isinstance(X, (TensorSource, StreamSource)):
        source = X
    elif isinstance(X, torch.Tensor) and X.ndim == 2:
        source = as_source(X)
    else:
        raise TypeError(
            f"X must be a 2-D torch.Tensor or a data source, got {type(X).__name__}."
        )
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    centers = torch.as_tensor(centers).detach().to(device=source.device, dtype=torch.float32)
    centers = centers.clone()
    if centers.ndim != 2 or centers.shape[0] < 1:
        raise ValueError(f"centers must have shape (n_clusters, n_dims), got {centers.shape}.")
    if centers.shape[0] > source.n_samples:
        raise ValueError(
            f"n_samples={source.n_samples} should be >= n_clusters={centers.shape[0]}."
        )
    if not torch.isfinite(centers).all():
        raise ValueError("centers contains NaN or infinite values.")
    embed = _identity if embed is None else embed
    return source, centers, embed, min(int(batch_size), source.n_samples)


def _check_embedding_width(E: torch.Tensor, centers: torch.Tensor) -> None:
    if E.shape[1] != centers.shape[1]:
        raise ValueError(
            f"The embedding has {E.shape[1]} dimensions but centers has {centers.shape[1]}."
        )


def _clip(params: list[torch.Tensor], clip_grad_norm: float | None) -> None:
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(params, clip_grad_norm)


def _warn_nonfinite(what: str, epoch: int) -> None:
    warnings.warn(
        f"The refinement loss became {what} at refinement epoch {epoch + 1}; refinement "
        "stopped and the weights and centres of the last finite step were restored. "
        "Lower the refinement learning rate or set clip_grad_norm.",
        ConvergenceWarning,
        stacklevel=3,
    )


def _progress(verbose: int, total: int, desc: str):
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=True)


# ------------------------------------------------------------ k-means loss
def lambda_schedule(epoch: int, lambda_: float, warmup_epochs: int) -> float:
    """Weight of the k-means term in (0-based) refinement epoch ``epoch``.

    Linear warm-up: ``lambda_ * min(1, epoch / warmup_epochs)``, so the first
    epoch is pure reconstruction and the full weight is reached at epoch
    ``warmup_epochs``; ``warmup_epochs=0`` uses ``lambda_`` from the start.
    """
    if warmup_epochs <= 0:
        return float(lambda_)
    return float(lambda_) * min(1.0, epoch / warmup_epochs)


def _update_centers(
    E: torch.Tensor, labels: torch.Tensor, old_centers: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Lloyd update; empty clusters are re-seeded with far-away points.

    Each empty cluster receives a distinct point among those farthest from
    their assigned centre (points that are alone in their cluster are not
    taken). A cluster that still has no point keeps its old centre. Returns
    the centres, the (possibly changed) labels and the number of re-seeds.
    """
    k = old_centers.shape[0]
    counts = torch.bincount(labels, minlength=k)
    empty = torch.nonzero(counts == 0).flatten()
    n_empty = int(empty.numel())
    n_reseeded = 0
    if n_empty:
        dist = ((E - old_centers[labels]) ** 2).sum(1)
        dist = dist.masked_fill(counts[labels] <= 1, -1.0)
        top = torch.topk(dist, n_empty)
        far = top.indices[top.values >= 0]
        labels = labels.clone()
        n_reseeded = int(far.numel())
        labels[far] = empty[:n_reseeded]
        counts = torch.bincount(labels, minlength=k)
    sums = torch.zeros_like(old_centers).index_add_(0, labels, E)
    centers = sums / counts.clamp_min(1).to(E.dtype)[:, None]
    centers = torch.where((counts > 0)[:, None], centers, old_centers)
    return centers, labels, n_reseeded


def refine_kmeans(
    module: nn.Module,
    X: torch.Tensor,
    centers,
    *,
    embed: Callable[[torch.Tensor], torch.Tensor] | None,
    epochs: int,
    batch_size: int,
    optimizer_factory: OptimizerFactory,
    lambda_: float = 0.1,
    warmup_epochs: int = 5,
    tol: float = 1e-3,
    loss: str = "mse",
    clip_grad_norm: float | None = None,
    generator: torch.Generator | None = None,
    verbose: int = 0,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Fine-tune ``module`` with reconstruction plus a k-means loss on the embedding.

    Per batch the loss is ``recon(decode(encode(x)), x) + lambda_t * mean_i
    ||e_i - mu_{c(i)}||^2`` with ``e = embed(encode(x))`` and ``c(i)`` the
    nearest centre of ``e_i`` (computed without gradient). The centres are
    fixed during an epoch; after it, the whole of ``X`` is embedded in eval
    mode, every point is assigned to its nearest centre and each centre moves
    to the mean of its points (one Lloyd step).

    Parameters
    ----------
    module : torch.nn.Module
        Pre-trained autoencoder with ``encode`` and ``decode``; trained in place.
    X : torch.Tensor of shape (n_samples, n_features), or a data source
        Training data, on the module's device and in its dtype.
    centers : array-like or torch.Tensor of shape (n_clusters, n_dims)
        Initial centres in the embedding space.
    embed : callable or None
        Fixed differentiable map from codes to the embedding (e.g.
        :func:`affine_head`); None is the identity.
    epochs : int
        Maximum number of refinement epochs.
    batch_size : int
        Rows per optimisation step (clipped to ``n_samples``).
    optimizer_factory : callable
        ``optimizer_factory(param_groups) -> torch.optim.Optimizer``; receives
        ``[{'params': [module parameters]}]``.
    lambda_ : float, default=0.1
        Weight of the k-means term after warm-up.
    warmup_epochs : int, default=5
        Linear warm-up of the weight from 0 (see :func:`lambda_schedule`).
    tol : float, default=1e-3
        Stop when, after an epoch at the full weight, the fraction of points
        whose label changed is below ``tol``.
    loss : str, default='mse'
        Reconstruction loss, a key of ``skdeepcluster._training.LOSSES``
        (``'mse'``, ``'l1'``, ``'huber'``).
    clip_grad_norm : float, optional
        Clip the gradient norm of each step to this value.
    generator : torch.Generator, optional
        Source of the batch permutations (CPU generator).
    verbose : int, default=0
        ``> 0`` shows a progress bar.

    Returns
    -------
    centers : torch.Tensor of shape (n_clusters, n_dims)
        Refined centres (detached, on ``X``'s device).
    history : dict
        Lists with one entry per epoch: ``'refine_loss'`` (mean total loss),
        ``'refine_recon_loss'``, ``'refine_cluster_loss'`` (mean squared
        distance to the assigned centre, unweighted), ``'refine_lambda'`` and
        ``'n_changed'`` (fraction of labels changed by the epoch).

    Notes
    -----
    An empty cluster is re-seeded with the point farthest from its centre
    (distinct points for several empty clusters), so no division by zero or
    NaN occurs. When the loss becomes NaN or infinite, the weights and
    centres of the last finite epoch are restored, a
    :class:`~sklearn.exceptions.ConvergenceWarning` is issued and refinement
    stops. ``module`` is left in eval mode.
    """
    source, centers, embed, batch_size = _check_common(
        module, X, centers, epochs, batch_size, loss, embed
    )
    loss_fn = LOSSES[loss]
    n_samples, device = source.n_samples, source.device
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = optimizer_factory([{"params": params}])
    history: dict[str, list[float]] = {
        "refine_loss": [],
        "refine_recon_loss": [],
        "refine_cluster_loss": [],
        "refine_lambda": [],
        "n_changed": [],
    }

    E = _embed_all(module, source, embed, INFERENCE_BATCH_SIZE)
    _check_embedding_width(E, centers)
    labels = _sq_distances(E, centers).argmin(1)
    last_good = (_snapshot(module), centers.clone())

    progress = _progress(verbose, epochs, "refine (k-means)")
    try:
        for epoch in range(epochs):
            lam = lambda_schedule(epoch, lambda_, warmup_epochs)
            module.train()
            tot_recon = torch.zeros((), device=device)
            tot_clust = torch.zeros((), device=device)
            for _, xb in source.batches(batch_size, generator, avoid_singleton=False):
                optimizer.zero_grad(set_to_none=True)
                z = module.encode(xb)
                e = embed(z)
                with torch.no_grad():
                    assign = _sq_distances(e.detach(), centers).argmin(1)
                recon = loss_fn(module.decode(z), xb)
                clust = ((e - centers[assign]) ** 2).sum(1).mean()
                (recon + lam * clust).backward()
                _clip(params, clip_grad_norm)
                optimizer.step()
                tot_recon += recon.detach() * xb.shape[0]
                tot_clust += clust.detach() * xb.shape[0]
            recon_loss = float(tot_recon) / n_samples
            clust_loss = float(tot_clust) / n_samples
            total = recon_loss + lam * clust_loss

            E = _embed_all(module, source, embed, INFERENCE_BATCH_SIZE)
            if not (math.isfinite(total) and bool(torch.isfinite(E).all())):
                module.load_state_dict(last_good[0])
                centers = last_good[1]
                _warn_nonfinite(total if not math.isfinite(total) else "non-finite", epoch)
                break
            new_labels = _sq_distances(E, centers).argmin(1)
            centers, new_labels, n_reseeded = _update_centers(E, new_labels, centers)
            changed = float((new_labels != labels).float().mean())
            labels = new_labels
            last_good = (_snapshot(module), centers.clone())

            history["refine_loss"].append(total)
            history["refine_recon_loss"].append(recon_loss)
            history["refine_cluster_loss"].append(clust_loss)
            history["refine_lambda"].append(lam)
            history["n_changed"].append(changed)
            logger.debug(
                "refine epoch %d: loss=%.6g recon=%.6g cluster=%.6g lambda=%.3g "
                "changed=%.4f reseeded=%d",
                epoch + 1,
                total,
                recon_loss,
                clust_loss,
                lam,
                changed,
                n_reseeded,
            )
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{total:.4g}", changed=f"{changed:.3f}")
            if epoch >= warmup_epochs and changed < tol:
                logger.debug("refine: converged at epoch %d (changed < tol)", epoch + 1)
                break
    finally:
        if progress is not None:
            progress.close()
        module.eval()
    return centers.detach(), history


# ------------------------------------------------------------------ DEC/IDEC
def soft_assignment(
    E: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0, *, log: bool = False
) -> torch.Tensor:
    """Student-t soft assignments of DEC, ``q_ij ∝ (1 + ||e_i - mu_j||^2 / alpha)^(-(alpha+1)/2)``.

    Computed in log space (``log_softmax``), so rows always sum to one and no
    NaN appears, also with coinciding centres. Differentiable in both
    ``E`` and ``centers``.

    Parameters
    ----------
    E : torch.Tensor of shape (n, n_dims)
    centers : torch.Tensor of shape (n_clusters, n_dims)
    alpha : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    log : bool, default=False
        Return ``log q`` instead of ``q``.

    Returns
    -------
    q : torch.Tensor of shape (n, n_clusters)
    """
    sq = ((E[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    logits = -(alpha + 1.0) / 2.0 * torch.log1p(sq / alpha)
    log_q = torch.log_softmax(logits, dim=1)
    return log_q if log else log_q.exp()


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's sharpened target distribution.

    ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')`` with cluster
    frequencies ``f_j = sum_i q_ij``; the divisions are guarded, so a column
    or row of zeros gives zeros, not NaN.
    """
    weight = q**2 / q.sum(0).clamp_min(_EPS)
    return weight / weight.sum(1, keepdim=True).clamp_min(_EPS)


@torch.no_grad()
def _soft_assign_all(E: torch.Tensor, centers: torch.Tensor, alpha: float) -> torch.Tensor:
    chunks = [
        soft_assignment(E[s : s + INFERENCE_BATCH_SIZE], centers, alpha)
        for s in range(0, E.shape[0], INFERENCE_BATCH_SIZE)
    ]
    return torch.cat(chunks, dim=0)


def refine_dec(
    module: nn.Module,
    X: torch.Tensor,
    centers,
    *,
    embed: Callable[[torch.Tensor], torch.Tensor] | None,
    epochs: int,
    batch_size: int,
    optimizer_factory: OptimizerFactory,
    gamma: float = 0.1,
    alpha: float = 1.0,
    update_interval: int = 10,
    tol: float = 1e-3,
    loss: str = "mse",
    clip_grad_norm: float | None = None,
    generator: torch.Generator | None = None,
    verbose: int = 0,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """DEC / IDEC self-training of the encoder and the centres.

    Soft assignments ``q`` (see :func:`soft_assignment`) are pulled towards
    the sharpened target ``p`` (see :func:`target_distribution`). ``p`` is
    recomputed on the whole of ``X`` (in eval mode) before the first batch and
    then every ``update_interval`` batches. The loss per batch is
    ``KL(p || q) + gamma * recon``; ``gamma=0`` is DEC (the decoder gets no
    gradient), ``gamma > 0`` is IDEC. The centres are a trainable parameter
    optimised with the network.

    Parameters
    ----------
    module : torch.nn.Module
        Pre-trained autoencoder with ``encode`` and ``decode``; trained in place.
    X : torch.Tensor of shape (n_samples, n_features), or a data source
        Training data, on the module's device and in its dtype.
    centers : array-like or torch.Tensor of shape (n_clusters, n_dims)
        Initial centres in the embedding space.
    embed : callable or None
        Fixed differentiable map from codes to the embedding; None is the identity.
    epochs : int
        Maximum number of passes over ``X``.
    batch_size : int
        Rows per optimisation step (clipped to ``n_samples``).
    optimizer_factory : callable
        ``optimizer_factory(param_groups) -> torch.optim.Optimizer``; receives
        ``[{'params': [module parameters]}, {'params': [centers],
        'weight_decay': 0.0}]``.
    gamma : float, default=0.1
        Weight of the reconstruction term (0 gives DEC).
    alpha : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    update_interval : int, default=10
        Number of batches between target updates.
    tol : float, default=1e-3
        Stop when the fraction of points whose label (``argmax q``) changed
        between two target updates is below ``tol``.
    loss : str, default='mse'
        Reconstruction loss, a key of ``skdeepcluster._training.LOSSES``
        (``'mse'``, ``'l1'``, ``'huber'``).
    clip_grad_norm : float, optional
        Clip the gradient norm of each step to this value.
    generator : torch.Generator, optional
        Source of the batch permutations (CPU generator).
    verbose : int, default=0
        ``> 0`` shows a progress bar.

    Returns
    -------
    centers : torch.Tensor of shape (n_clusters, n_dims)
        Refined centres (detached, on ``X``'s device).
    history : dict
        Per epoch (the last one possibly partial): ``'refine_loss'`` (mean
        ``KL + gamma * recon``), ``'refine_recon_loss'`` (computed without
        gradient when ``gamma=0``), ``'refine_cluster_loss'`` (KL). Per target
        update after the first: ``'n_changed'``.

    Notes
    -----
    ``gamma`` weighs the reconstruction, so IDEC's ``L_r + 0.1 L_c`` (Guo et
    al., 2017) corresponds to ``gamma=10`` up to the overall scale. When the
    loss or the embedding becomes NaN or infinite, the weights and centres
    of the last target update are restored, a
    :class:`~sklearn.exceptions.ConvergenceWarning` is issued and refinement
    stops. ``module`` is left in eval mode.
    """
    source, centers, embed, batch_size = _check_common(
        module, X, centers, epochs, batch_size, loss, embed
    )
    if int(update_interval) != update_interval or update_interval < 1:
        raise ValueError(f"update_interval must be a positive integer, got {update_interval!r}.")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}.")
    loss_fn = LOSSES[loss]
    device = source.device
    mu = nn.Parameter(centers)
    net_params = [p for p in module.parameters() if p.requires_grad]
    optimizer = optimizer_factory([{"params": net_params}, {"params": [mu], "weight_decay": 0.0}])
    all_params = [*net_params, mu]
    history: dict[str, list[float]] = {
        "refine_loss": [],
        "refine_recon_loss": [],
        "refine_cluster_loss": [],
        "n_changed": [],
    }
    E = _embed_all(module, source, embed, INFERENCE_BATCH_SIZE)
    _check_embedding_width(E, mu)

    labels = None
    P = None
    last_good = (_snapshot(module), mu.detach().clone())
    step = 0
    stop = False
    progress = _progress(verbose, epochs, "refine (IDEC)" if gamma > 0 else "refine (DEC)")
    try:
        for epoch in range(epochs):
            module.train()
            tot_recon = torch.zeros((), device=device)
            tot_kl = torch.zeros((), device=device)
            n_seen = 0
            for idx, xb in source.batches(batch_size, generator, avoid_singleton=False):
                if step % update_interval == 0:
                    E = E if step == 0 else _embed_all(module, source, embed, INFERENCE_BATCH_SIZE)
                    q_all = _soft_assign_all(E, mu.detach(), alpha)
                    if not bool(torch.isfinite(q_all).all()):
                        stop = "nonfinite"
                        break
                    last_good = (_snapshot(module), mu.detach().clone())
                    new_labels = q_all.argmax(1)
                    if labels is not None:
                        changed = float((new_labels != labels).float().mean())
                        history["n_changed"].append(changed)
                        logger.debug("refine step %d: changed=%.4f", step, changed)
                        if changed < tol:
                            stop = "converged"
                            break
                    labels = new_labels
                    P = target_distribution(q_all)
                optimizer.zero_grad(set_to_none=True)
                z = module.encode(xb)
                log_q = soft_assignment(embed(z), mu, alpha, log=True)
                pb = P[idx]
                kl = (torch.xlogy(pb, pb) - pb * log_q).sum(1).mean()
                if gamma > 0:
                    recon = loss_fn(module.decode(z), xb)
                    batch_loss = kl + gamma * recon
                else:
                    with torch.no_grad():
                        recon = loss_fn(module.decode(z), xb)
                    batch_loss = kl
                batch_loss.backward()
                _clip(all_params, clip_grad_norm)
                optimizer.step()
                step += 1
                n_seen += xb.shape[0]
                tot_recon += recon.detach() * xb.shape[0]
                tot_kl += kl.detach() * xb.shape[0]

            if n_seen:
                recon_loss = float(tot_recon) / n_seen
                kl_loss = float(tot_kl) / n_seen
                total = kl_loss + gamma * recon_loss
                if not math.isfinite(total):
                    stop = "nonfinite"
                else:
                    history["refine_loss"].append(total)
                    history["refine_recon_loss"].append(recon_loss)
                    history["refine_cluster_loss"].append(kl_loss)
                    logger.debug(
                        "refine epoch %d: loss=%.6g recon=%.6g kl=%.6g",
                        epoch + 1,
                        total,
                        recon_loss,
                        kl_loss,
                    )
                    if progress is not None:
                        progress.update(1)
                        progress.set_postfix(loss=f"{total:.4g}")
            if stop == "nonfinite":
                module.load_state_dict(last_good[0])
                with torch.no_grad():
                    mu.copy_(last_good[1])
                _warn_nonfinite("NaN or infinite", epoch)
                break
            if stop:
                break
        else:
            # The last steps may have produced non-finite weights with a finite loss.
            if not all(bool(torch.isfinite(p).all()) for p in all_params):
                module.load_state_dict(last_good[0])
                with torch.no_grad():
                    mu.copy_(last_good[1])
                _warn_nonfinite("NaN or infinite", max(epochs - 1, 0))
    finally:
        if progress is not None:
            progress.close()
        module.eval()
    return mu.detach().clone(), history
