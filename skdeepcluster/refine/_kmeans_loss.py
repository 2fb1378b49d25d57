"""Refinement with a k-means loss on the embedding (Song et al., 2013).

C. Song, F. Liu, Y. Huang, L. Wang and T. Tan, "Auto-encoder based data
clustering", CIARP 2013.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from ._base import RefinementStrategy, check_embedding_width, embed_all, sq_distances


class KMeansLoss(RefinementStrategy):
    """Refinement strategy: reconstruction plus a k-means loss (Song et al., 2013).

    Per batch the loss is ``recon(decode(encode(x)), x) + lambda_t * mean_i
    ||e_i - mu_{c(i)}||^2`` with ``e = embed(encode(x))`` and ``c(i)`` the
    nearest centre of ``e_i`` (computed without gradient). The centres are
    fixed during an epoch; after it, all rows are embedded in eval mode,
    assigned to their nearest centre, and each centre moves to the mean of
    its points (one Lloyd step). An empty cluster is re-seeded with the point
    farthest from its centre (distinct points for several empty clusters),
    so no division by zero or NaN occurs. Run it with :meth:`refine`, or
    through ``AutoencoderKMeans(refine=KMeansLoss(...))``.

    The history has one entry per epoch in ``'refine_loss'`` (mean total
    loss), ``'refine_recon_loss'``, ``'refine_cluster_loss'`` (mean squared
    distance to the assigned centre, unweighted), ``'refine_lambda'`` and
    ``'n_changed'`` (fraction of labels changed by the epoch).

    Parameters
    ----------
    lambda_ : float, default=0.01
        Weight of the k-means term next to the reconstruction loss. It grows
        linearly from 0 over the first ``warmup_epochs`` epochs.
    epochs : int, default=100
        Maximum number of refinement epochs.
    learning_rate : float, default=1e-4
        Learning rate of the refinement's optimizer (of the kind set by the
        estimator's ``optimizer``): smaller than pre-training's, as
        refinement adjusts a trained network.
    tol : float, default=1e-3
        Stop when, after the warm-up, fewer than this fraction of labels
        change in an epoch.
    warmup_epochs : int, default=5
        Epochs of the linear warm-up of ``lambda_`` (at most ``epochs - 1``).

    Examples
    --------
    >>> from skdeepcluster import AutoencoderKMeans
    >>> from skdeepcluster.refine import KMeansLoss
    >>> model = AutoencoderKMeans(n_clusters=3, reducer=None, refine=KMeansLoss(lambda_=0.1))
    >>> model.get_params()["refine__lambda_"]
    0.1
    """

    _parameter_constraints: dict = {
        **RefinementStrategy._parameter_constraints,
        "lambda_": [Interval(Real, 0, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, lambda_=0.01, *, epochs=100, learning_rate=1e-4, tol=1e-3, warmup_epochs=5):
        self.lambda_ = lambda_
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.tol = tol
        self.warmup_epochs = warmup_epochs

    _history_keys = (
        "refine_loss",
        "refine_recon_loss",
        "refine_cluster_loss",
        "refine_lambda",
        "n_changed",
    )
    _desc = "k-means"

    def _objective(self, module, source, embed, loss_fn, centers, batch_size):
        warmup = min(self.warmup_epochs, max(self.epochs - 1, 0))
        return _KMeansObjective(
            module, source, embed, loss_fn, centers, self.lambda_, warmup, self.tol
        )


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


class _KMeansObjective:
    """Reconstruction plus the weighted squared distance to the nearest (fixed) centre."""

    def __init__(self, module, source, embed, loss_fn, centers, lambda_, warmup_epochs, tol):
        self.module, self.source, self.embed, self.loss_fn = module, source, embed, loss_fn
        self.centers = centers  # updated in place, so the NaN guard saves and restores it
        self.lambda_, self.warmup_epochs, self.tol = lambda_, warmup_epochs, tol
        E = embed_all(module, source, embed)
        check_embedding_width(E, centers)
        self.labels = sq_distances(E, centers).argmin(1)
        self.lam = 0.0

    def before_batch(self, state, idx):
        self.lam = lambda_schedule(state.epoch, self.lambda_, self.warmup_epochs)
        return True

    def batch_loss(self, idx, xb):
        z = self.module.encode(xb)
        e = self.embed(z)
        with torch.no_grad():
            assign = sq_distances(e.detach(), self.centers).argmin(1)
        recon = self.loss_fn(self.module.decode(z), xb)
        clust = ((e - self.centers[assign]) ** 2).sum(1).mean()
        return recon + self.lam * clust, {"recon": recon.detach(), "clust": clust.detach()}

    def end_epoch(self, state, totals, n_seen):
        n_samples = self.source.n_samples
        recon_loss = float(totals["recon"]) / n_samples
        clust_loss = float(totals["clust"]) / n_samples
        total = recon_loss + self.lam * clust_loss
        E = embed_all(self.module, self.source, self.embed)
        if not (math.isfinite(total) and bool(torch.isfinite(E).all())):
            return {"refine_loss": total if not math.isfinite(total) else math.nan}
        labels = sq_distances(E, self.centers).argmin(1)
        centers, labels, _ = _update_centers(E, labels, self.centers)
        self.centers.copy_(centers)
        changed = float((labels != self.labels).float().mean())
        self.labels = labels
        if state.epoch >= self.warmup_epochs and changed < self.tol:
            state.stop = True
        return {
            "refine_loss": total,
            "refine_recon_loss": recon_loss,
            "refine_cluster_loss": clust_loss,
            "refine_lambda": self.lam,
            "n_changed": changed,
        }
