"""What every refinement strategy shares: the strategy base class and the loop set-up.

A strategy is a small scikit-learn-style object (``get_params``,
``set_params``, ``clone``) holding its own hyper-parameters, so that
``AutoencoderKMeans(refine=IDEC(gamma=0.1))`` grid-searches as
``refine__gamma``. Its :meth:`RefinementStrategy.refine` fine-tunes a trained
autoencoder and the cluster centres through a fixed differentiable map
``embed`` (the affine head of the second stage), with the shared training
loop. A new method is one new module: a subclass and its objective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral, Real

import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval
from torch import nn

from .._data import StreamSource, TensorSource, as_source
from ..training._callbacks import NaNGuard, ProgressBar
from ..training._inference import INFERENCE_BATCH_SIZE
from ..training._loop import LoopState, fit_loop
from ..training._optim import LOSSES
from ..training._pretrain import has_batch_norm

#: Signature of the optimizer factories: receives a list of torch parameter
#: groups (valid as the ``params`` argument of any torch optimizer) and
#: returns the optimizer, e.g.
#: ``functools.partial(make_optimizer, "adam", learning_rate=1e-4)``.
OptimizerFactory = Callable[[list], torch.optim.Optimizer]


class RefinementStrategy(BaseEstimator):
    """Base class of the refinement strategies (:class:`KMeansLoss`, :class:`DEC`, :class:`IDEC`).

    :meth:`refine` is the same for every strategy: it validates the inputs,
    builds the objective and the optimizer and runs the shared training loop
    (stage ``'refine'``) with the NaN guard, a progress bar when ``verbose``
    and the caller's callbacks. A subclass defines ``__init__`` with its
    hyper-parameters (including ``epochs``, ``learning_rate`` and ``tol``),
    ``_objective`` (the loss of a batch and the end-of-epoch bookkeeping),
    ``_history_keys`` and ``_desc``; ``_trainable_centers`` makes the centres
    a trained parameter.
    """

    _parameter_constraints: dict = {
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    #: Whether the optimizer trains the centres too (DEC) or they follow the data.
    _trainable_centers = False

    def refine(
        self,
        module: nn.Module,
        X: torch.Tensor | TensorSource | StreamSource,
        centers,
        *,
        embed: Callable[[torch.Tensor], torch.Tensor] | None,
        batch_size: int,
        optimizer_factory: OptimizerFactory,
        loss: str = "mse",
        generator: torch.Generator | None = None,
        callbacks: Sequence = (),
        verbose: int = 0,
    ) -> tuple[torch.Tensor, dict[str, list[float]]]:
        """Fine-tune ``module`` and ``centers`` together; return the centres and the history.

        Parameters
        ----------
        module : torch.nn.Module
            Pre-trained autoencoder with ``encode`` and ``decode``; trained in
            place and left in eval mode.
        X : torch.Tensor of shape (n_samples, n_features), or a data source
            Training data, on the module's device and in its dtype.
        centers : array-like or torch.Tensor of shape (n_clusters, n_dims)
            Initial centres in the embedding space.
        embed : callable or None
            Fixed differentiable map from codes to the embedding (e.g. an
            :class:`AffineHead`); None is the identity.
        batch_size : int
            Rows per optimisation step (clipped to ``n_samples``).
        optimizer_factory : callable
            ``optimizer_factory(param_groups) -> torch.optim.Optimizer``, at
            this strategy's ``learning_rate``; receives
            ``[{'params': [module parameters]}]``, plus
            ``{'params': [centers], 'weight_decay': 0.0}`` when the centres
            are trained.
        loss : {'mse', 'l1', 'huber'}, default='mse'
            Reconstruction loss.
        generator : torch.Generator, optional
            Source of the batch permutations (CPU generator).
        callbacks : sequence of Callback, default=()
            Further callbacks of the loop (``state.stage == 'refine'``), e.g.
            :class:`~skdeepcluster.training.GradientNormClipping`.
        verbose : int, default=0
            ``> 0`` shows a progress bar.

        Returns
        -------
        centers : torch.Tensor of shape (n_clusters, n_dims)
            Refined centres (detached, on ``X``'s device).
        history : dict
            Lists of per-epoch metrics (see the strategy).

        Notes
        -----
        When the loss or the embedding becomes NaN or infinite, the weights
        and centres of the last finite epoch are restored, a
        :class:`~sklearn.exceptions.ConvergenceWarning` is issued and
        refinement stops.
        """
        self._validate_params()
        source, centers, embed, batch_size = check_common(
            X, centers, self.epochs, batch_size, loss, embed
        )
        net = [p for p in module.parameters() if p.requires_grad]
        groups = [{"params": net}]
        if self._trainable_centers:
            centers = nn.Parameter(centers)
            groups.append({"params": [centers], "weight_decay": 0.0})
        objective = self._objective(module, source, embed, LOSSES[loss], centers, batch_size)
        state = LoopState(
            stage="refine",
            module=module,
            optimizer=optimizer_factory(groups),
            params=[p for group in groups for p in group["params"]],
            n_epochs=self.epochs,
            history={k: [] for k in self._history_keys},
            extra={"centers": centers},
        )
        builtins = [
            NaNGuard(hint="Lower the refinement's learning_rate or add GradientNormClipping.")
        ]
        if verbose:
            builtins.append(ProgressBar(f"refine ({self._desc})"))
        fit_loop(
            objective,
            state,
            # Batch normalisation cannot train on a batch of one row.
            lambda: source.batches(batch_size, generator, avoid_singleton=has_batch_norm(module)),
            [*builtins, *callbacks],
        )
        return centers.detach().clone(), state.history


def identity(z: torch.Tensor) -> torch.Tensor:
    return z


def sq_distances(E: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, k)``, clamped at 0 (no gradient use)."""
    d = (E * E).sum(1, keepdim=True) - 2.0 * (E @ C.T) + (C * C).sum(1)[None, :]
    return d.clamp_min_(0.0)


@torch.no_grad()
def embed_all(
    module: nn.Module, source: TensorSource | StreamSource, embed: Callable
) -> torch.Tensor:
    """Embedding of all rows of ``source`` in eval mode, batched; the mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        chunks = [embed(module.encode(xb)) for xb in source.sequential(INFERENCE_BATCH_SIZE)]
    finally:
        module.train(was_training)
    return torch.cat(chunks, dim=0)


def check_common(X, centers, epochs, batch_size, loss, embed):
    """Validate the shared arguments; the source, centres, map and batch size to use."""
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
    embed = identity if embed is None else embed
    return source, centers, embed, min(int(batch_size), source.n_samples)


def check_embedding_width(E: torch.Tensor, centers: torch.Tensor) -> None:
    if E.shape[1] != centers.shape[1]:
        raise ValueError(
            f"The embedding has {E.shape[1]} dimensions but centers has {centers.shape[1]}."
        )
