"""DEC and IDEC self-training (Xie et al., 2016; Guo et al., 2017).

Student-t soft assignments of the embedding to trainable centres are pulled
towards a sharpened target distribution, refreshed every ``update_interval``
batches; IDEC keeps the reconstruction loss next to the KL divergence.

J. Xie, R. Girshick and A. Farhadi, "Unsupervised deep embedding for
clustering analysis", ICML 2016.

X. Guo, L. Gao, X. Liu and J. Yin, "Improved deep embedded clustering with
local structure preservation", IJCAI 2017.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..training._inference import INFERENCE_BATCH_SIZE
from ._base import RefinementStrategy, check_embedding_width, embed_all

_EPS = 1e-12


class DEC(RefinementStrategy):
    """Refinement strategy: DEC self-training (Xie et al., 2016).

    Soft assignments ``q`` of the embedding to the centres (Student-t kernel,
    :func:`soft_assignment`) are pulled towards the sharpened target ``p``
    (:func:`target_distribution`), recomputed on all rows (in eval mode)
    before the first batch and then every ``update_interval`` batches. The
    loss per batch is ``KL(p || q)``; the centres are a parameter trained
    with the encoder. Run it with :meth:`refine`, or through
    ``AutoencoderKMeans(refine=DEC(...))``.

    The history has, per epoch (the last one possibly partial),
    ``'refine_loss'``, ``'refine_recon_loss'`` (computed without gradient
    for DEC) and ``'refine_cluster_loss'`` (the KL divergence), and per
    target update after the first, ``'n_changed'`` (the fraction of labels,
    ``argmax q``, that changed).

    Parameters
    ----------
    epochs : int, default=100
        Maximum number of refinement epochs (passes over the data).
    learning_rate : float, default=1e-4
        Learning rate of the refinement's optimizer (of the kind set by the
        estimator's ``optimizer``).
    tol : float, default=1e-3
        Stop when fewer than this fraction of labels change between two
        updates of the target distribution.
    update_interval : int or 'auto', default='auto'
        Number of batches between updates of the target distribution;
        ``'auto'`` updates it once per epoch.
    alpha : float, default=1.0
        Degrees of freedom of the Student-t kernel.

    Examples
    --------
    >>> from skdeepcluster import AutoencoderKMeans
    >>> from skdeepcluster.refine import DEC
    >>> model = AutoencoderKMeans(n_clusters=3, reducer=None, refine=DEC(epochs=20))
    """

    _parameter_constraints: dict = {
        **RefinementStrategy._parameter_constraints,
        "update_interval": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "alpha": [Interval(Real, 0, None, closed="neither")],
    }

    #: Weight of the reconstruction loss (0: DEC).
    gamma = 0.0

    def __init__(self, *, epochs=100, learning_rate=1e-4, tol=1e-3, update_interval="auto",
                 alpha=1.0):
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.tol = tol
        self.update_interval = update_interval
        self.alpha = alpha

    _history_keys = ("refine_loss", "refine_recon_loss", "refine_cluster_loss", "n_changed")
    _trainable_centers = True

    @property
    def _desc(self):
        return "IDEC" if self.gamma > 0 else "DEC"

    def _objective(self, module, source, embed, loss_fn, centers, batch_size):
        interval = self.update_interval
        if interval == "auto":
            interval = -(-source.n_samples // batch_size)  # one epoch of batches
        return _DECObjective(
            module,
            source,
            embed,
            loss_fn,
            centers,
            gamma=self.gamma,
            alpha=self.alpha,
            update_interval=interval,
            tol=self.tol,
        )


class IDEC(DEC):
    """Refinement strategy: IDEC, DEC that keeps the reconstruction loss (Guo et al., 2017).

    Parameters
    ----------
    gamma : float, default=1.0
        Weight of the reconstruction loss next to the clustering (KL) loss:
        the loss per batch is ``KL(p || q) + gamma * recon``. IDEC's
        ``L_r + 0.1 L_c`` (Guo et al., 2017) corresponds to ``gamma=10`` up
        to the overall scale.
    epochs, learning_rate, tol, update_interval, alpha
        As for :class:`DEC` (defaults ``100``, ``1e-4``, ``1e-3``, ``'auto'``,
        ``1.0``).

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skdeepcluster import AutoencoderKMeans
    >>> from skdeepcluster.refine import IDEC
    >>> model = AutoencoderKMeans(n_clusters=3, reducer=None, refine=IDEC(gamma=0.1))
    >>> search = GridSearchCV(model, {"refine__gamma": [0.1, 1.0]})
    """

    _parameter_constraints: dict = {
        **DEC._parameter_constraints,
        "gamma": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, gamma=1.0, *, epochs=100, learning_rate=1e-4, tol=1e-3,
                 update_interval="auto", alpha=1.0):
        super().__init__(
            epochs=epochs,
            learning_rate=learning_rate,
            tol=tol,
            update_interval=update_interval,
            alpha=alpha,
        )
        self.gamma = gamma


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
def soft_assign_all(E: torch.Tensor, centers: torch.Tensor, alpha: float) -> torch.Tensor:
    chunks = [
        soft_assignment(E[s : s + INFERENCE_BATCH_SIZE], centers, alpha)
        for s in range(0, E.shape[0], INFERENCE_BATCH_SIZE)
    ]
    return torch.cat(chunks, dim=0)


class _DECObjective:
    """KL(target || soft assignments), plus ``gamma`` times the reconstruction loss."""

    def __init__(self, module, source, embed, loss_fn, mu, *, gamma, alpha, update_interval, tol):
        self.module, self.source, self.embed, self.loss_fn = module, source, embed, loss_fn
        self.mu, self.gamma, self.alpha = mu, gamma, alpha
        self.update_interval, self.tol = update_interval, tol
        self.E = embed_all(module, source, embed)
        check_embedding_width(self.E, mu)
        self.labels = self.P = None
        self.step = 0
        self.nonfinite = False

    def before_batch(self, state, idx):
        """Refresh the target distribution every ``update_interval`` steps; stop when stable."""
        if self.step % self.update_interval:
            return True
        E = self.E if self.step == 0 else embed_all(self.module, self.source, self.embed)
        q_all = soft_assign_all(E, self.mu.detach(), self.alpha)
        if not bool(torch.isfinite(q_all).all()):
            self.nonfinite = state.stop = True
            return False
        labels = q_all.argmax(1)
        if self.labels is not None:
            changed = float((labels != self.labels).float().mean())
            state.history["n_changed"].append(changed)
            if changed < self.tol:
                state.stop = True
                return False
        self.labels = labels
        self.P = target_distribution(q_all)
        return True

    def batch_loss(self, idx, xb):
        z = self.module.encode(xb)
        log_q = soft_assignment(self.embed(z), self.mu, self.alpha, log=True)
        pb = self.P[idx]
        kl = (torch.xlogy(pb, pb) - pb * log_q).sum(1).mean()
        if self.gamma > 0:
            recon = self.loss_fn(self.module.decode(z), xb)
            loss = kl + self.gamma * recon
        else:
            with torch.no_grad():
                recon = self.loss_fn(self.module.decode(z), xb)
            loss = kl
        self.step += 1
        return loss, {"recon": recon.detach(), "kl": kl.detach()}

    def end_epoch(self, state, totals, n_seen):
        if self.nonfinite:
            return {"refine_loss": math.nan}
        if not n_seen:
            return {}
        recon_loss = float(totals["recon"]) / n_seen
        kl_loss = float(totals["kl"]) / n_seen
        return {
            "refine_loss": kl_loss + self.gamma * recon_loss,
            "refine_recon_loss": recon_loss,
            "refine_cluster_loss": kl_loss,
        }
