"""Pre-training: an autoencoder learns to reconstruct its input.

:func:`train_autoencoder` is a plain keyword-only function over a module, a
tensor (or a data source) and an optimizer, with no estimator inside, so that
it can be reused, or wrapped by the distributed launcher, on its own. It runs
the shared :func:`~skdeepcluster.training._loop.fit_loop` with a
reconstruction objective; early stopping, the NaN guard, learning-rate
schedules, clipping and progress are callbacks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._data import StreamSource, TensorSource, as_source
from ._callbacks import EarlyStopping, GradientNormClipping, LRScheduler, NaNGuard, ProgressBar
from ._inference import INFERENCE_BATCH_SIZE
from ._loop import LoopState, fit_loop
from ._optim import LOSSES

#: Kinds of input corruption for denoising autoencoders.
NOISE_TYPES = ("gaussian", "mask")

#: Learning-rate schedules understood by ``train_autoencoder``.
LR_SCHEDULES = (None, "cosine", "plateau")

#: Patience of the 'plateau' schedule when early stopping is off.
PLATEAU_PATIENCE = 5

def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _noise_generator(
    generator: torch.Generator | None, device: torch.device
) -> torch.Generator | None:
    """Generator for the input noise, on ``device``, seeded from ``generator``.

    Drawing the noise on the data's device avoids a host-to-device copy per
    batch. Its seed comes from ``generator`` so that runs are reproducible.
    Returns ``None`` (torch's global generator) when ``generator`` is ``None``.
    """
    if generator is None:
        return None
    seed = int(torch.randint(2**62, (1,), generator=generator))
    try:
        gen = torch.Generator(device=device)
    except RuntimeError:  # pragma: no cover - backends without device generators
        gen = torch.Generator()
    return gen.manual_seed(seed)


def _corrupt(
    xb: torch.Tensor,
    noise: float,
    noise_type: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Noisy copy of the batch ``xb`` (``xb`` itself is left unchanged)."""
    gen_device = generator.device if generator is not None else xb.device
    if noise_type == "gaussian":
        eps = torch.randn(xb.shape, generator=generator, device=gen_device, dtype=xb.dtype)
        return xb + noise * eps.to(xb.device)
    keep = torch.rand(xb.shape, generator=generator, device=gen_device) >= noise
    return xb * keep.to(device=xb.device, dtype=xb.dtype)


class RandomAffine:
    """Random shifts and rotations of a batch of flattened images (data augmentation).

    Each image of the batch gets its own transform: a rotation by up to
    ``rotation`` degrees and a shift by up to ``shift`` times its height and
    width, drawn uniformly, applied with bilinear interpolation (pixels
    beyond the border repeat the border); with ``flip``, half of the images,
    drawn at random, are also mirrored left to right. The transforms are drawn
    from ``generator`` (a CPU generator), so runs are reproducible.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of each row of the batches, in channel-first order.
    shift : float
        Largest shift, as a fraction of the image's height and width.
    rotation : float
        Largest rotation, in degrees.
    flip : bool, default=False
        Mirror half of the images left to right (for data whose classes are
        mirror-symmetric: clothes, not digits).
    generator : torch.Generator, optional
        Source of the transforms (torch's global generator when None).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        shift: float,
        rotation: float,
        flip: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.image_shape = tuple(int(s) for s in image_shape)
        self.shift = float(shift)
        self.rotation = float(rotation)
        self.flip = bool(flip)
        self.generator = generator

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        n = xb.shape[0]
        u = 2.0 * torch.rand((n, 3), generator=self.generator) - 1.0
        angle = u[:, 0] * math.radians(self.rotation)
        # affine_grid's coordinates span [-1, 1]: a shift of f * side is 2 * f.
        tx, ty = 2.0 * self.shift * u[:, 1], 2.0 * self.shift * u[:, 2]
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Mirroring negates the input's x coordinate: the first column of theta.
        mirror = torch.ones(n)
        if self.flip:
            mirror = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        theta = torch.stack(
            [torch.stack([cos * mirror, -sin, tx], 1), torch.stack([sin * mirror, cos, ty], 1)],
            1,
        ).to(device=xb.device, dtype=xb.dtype)
        images = xb.reshape(n, *self.image_shape)
        grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        out = nn.functional.grid_sample(
            images, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return out.reshape(n, -1)


def _unwrap(module: nn.Module) -> nn.Module:
    """The network inside a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def _global_mean(module: nn.Module, total: torch.Tensor, count: int) -> float:
    """``total / count``, summed over all processes when ``module`` is DDP-wrapped.

    Every rank then sees the same epoch loss, so early stopping and the
    NaN guard take the same decision everywhere (a rank that stopped alone
    would leave the others waiting in the next gradient all-reduce).
    """
    if not isinstance(module, nn.parallel.DistributedDataParallel):
        return float(total) / count
    both = torch.stack([total.float(), torch.full_like(total.float(), float(count))])
    torch.distributed.all_reduce(both)
    return float(both[0]) / float(both[1])


def _mean_loss(
    module: nn.Module,
    X: torch.Tensor | TensorSource | StreamSource,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
) -> torch.Tensor:
    """Row-weighted mean loss of ``module`` on ``X`` (a tensor or a source) in eval mode."""
    module = _unwrap(module)  # no collective calls: every rank evaluates the same X
    module.eval()
    source = as_source(X)
    total = torch.zeros((), device=source.device)
    with torch.no_grad():
        for xb in source.sequential(batch_size):
            total += loss_fn(module(xb), xb) * xb.shape[0]
    return total / source.n_samples


def _check_training_params(
    *,
    epochs,
    batch_size,
    loss,
    noise,
    noise_type,
    n_iter_no_change,
    tol,
    clip_grad_norm,
    lr_schedule,
) -> None:
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def is_real(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    if not is_int(epochs) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}.")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"Unknown noise_type {noise_type!r}; expected one of {NOISE_TYPES}.")
    if not is_real(noise) or noise < 0 or (noise_type == "mask" and noise >= 1):
        bound = "[0, 1)" if noise_type == "mask" else ">= 0"
        raise ValueError(
            f"noise must be a float {bound} for noise_type={noise_type!r}, got {noise!r}."
        )
    if n_iter_no_change is not None and (not is_int(n_iter_no_change) or n_iter_no_change < 1):
        raise ValueError(
            f"n_iter_no_change must be None or a positive integer, got {n_iter_no_change!r}."
        )
    if not is_real(tol) or tol < 0:
        raise ValueError(f"tol must be a non-negative float, got {tol!r}.")
    if clip_grad_norm is not None and (not is_real(clip_grad_norm) or clip_grad_norm <= 0):
        raise ValueError(
            f"clip_grad_norm must be None or a positive float, got {clip_grad_norm!r}."
        )
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"Unknown lr_schedule {lr_schedule!r}; expected one of {LR_SCHEDULES}.")


def train_autoencoder(
    module: nn.Module,
    X: torch.Tensor | TensorSource | StreamSource,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    loss: str = "mse",
    generator: torch.Generator | None = None,
    verbose: int = 0,
    noise: float = 0.0,
    noise_type: str = "gaussian",
    X_val: torch.Tensor | None = None,
    n_iter_no_change: int | None = None,
    tol: float = 1e-4,
    clip_grad_norm: float | None = None,
    lr_schedule: str | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callbacks: Sequence | None = None,
) -> dict[str, Any]:
    """Train ``module`` to reconstruct ``X`` with mini-batch gradient descent.

    Batches are drawn by indexing ``X`` (already on the module's device) with a
    fresh permutation each epoch, drawn from ``generator``; or, for data that
    do not fit in memory, streamed block by block from a
    :class:`~skdeepcluster._data.StreamSource`.

    Parameters
    ----------
    module : torch.nn.Module
        Autoencoder with ``forward(x) -> reconstruction``.
    X : torch.Tensor of shape (n_samples, n_features), or a data source
        Training data, float32, on the module's device; or a ``TensorSource``
        / ``StreamSource`` (see :mod:`skdeepcluster._data`).
    epochs : int
        Maximum number of passes over ``X``.
    batch_size : int
        Rows per optimisation step (clipped to ``n_samples``). When the module
        has batch normalisation, a last batch of a single row is merged into
        the previous one.
    optimizer : torch.optim.Optimizer
        Optimizer over ``module``'s parameters.
    loss : {'mse', 'l1', 'huber'}, default='mse'
        Reconstruction loss (see ``LOSSES``).
    generator : torch.Generator, optional
        Source of the batch permutations (CPU generator) and of the seed of
        the input noise. With the same seed, initial weights and device, two
        runs give identical weights.
    verbose : int, default=0
        ``> 0`` shows a progress bar with the running losses.
    noise : float, default=0.0
        Strength of the input corruption (denoising autoencoder): the standard
        deviation of the Gaussian noise added to each training batch, or the
        fraction of its entries set to zero. Only the *input* of training
        batches is corrupted; the target stays clean, and neither validation
        nor inference see noise.
    noise_type : {'gaussian', 'mask'}, default='gaussian'
        Kind of corruption (see ``noise``).
    X_val : torch.Tensor of shape (n_val, n_features) or a source, optional
        Validation data on the same device. Its loss is computed after each
        epoch in eval mode and monitored instead of the training loss. An
        empty tensor counts as no validation data.
    n_iter_no_change : int, optional
        Early stopping: stop when the monitored loss has not improved by at
        least ``tol`` for ``n_iter_no_change`` consecutive epochs, then restore
        the weights of the epoch with the lowest monitored loss. ``None``
        trains for ``epochs`` epochs and keeps the last weights.
    tol : float, default=1e-4
        Minimum improvement of the monitored loss for early stopping.
    clip_grad_norm : float, optional
        Clip the global gradient norm to this value before each step.
    lr_schedule : {None, 'cosine', 'plateau'}, default=None
        ``'cosine'`` anneals the learning rate to 0 over ``epochs`` epochs;
        ``'plateau'`` divides it by 10 when the monitored loss stalls (for
        ``n_iter_no_change // 2`` epochs, or 5 without early stopping). The
        schedulers change the optimizer's learning rate in place.
    augment : callable, optional
        Data augmentation: applied to each training batch, which the module
        then learns to reconstruct (input and target are the augmented batch;
        ``noise`` corrupts the input after it). For example
        :class:`RandomAffine` for images. Validation data are never augmented.
    callbacks : sequence of Callback, optional
        Further callbacks (see :mod:`skdeepcluster.training`), called after
        the built-in ones that the arguments above stand for.

    Returns
    -------
    history : dict
        ``'train_loss'``: mean reconstruction loss of the training batches per
        epoch (on the noisy inputs when ``noise > 0``, in training mode);
        ``'val_loss'``: validation loss per epoch (empty without ``X_val``);
        ``'best_epoch'``: index into those lists of the epoch with the lowest
        monitored loss (``None`` when no epoch completed).

    Notes
    -----
    ``module`` may be wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel`, with each process
    passing its own shard as ``X``: gradients are then averaged by DDP and the
    epoch losses over all processes, so every process takes the same
    early-stopping decisions (see :ref:`scaling`).

    When a loss becomes NaN or infinite, training stops, the weights of the
    last finite epoch are restored (those of the best epoch with early
    stopping) and a :class:`ConvergenceWarning` is issued; the module is
    never left with NaN weights. The module is left in eval mode.
    """
    _check_training_params(
        epochs=epochs,
        batch_size=batch_size,
        loss=loss,
        noise=noise,
        noise_type=noise_type,
        n_iter_no_change=n_iter_no_change,
        tol=tol,
        clip_grad_norm=clip_grad_norm,
        lr_schedule=lr_schedule,
    )
    source = as_source(X)
    X_val = _check_validation(X_val, source)
    batch_norm = has_batch_norm(module)
    if batch_norm and (source.n_samples < 2 or batch_size < 2):
        raise ValueError(
            "Training an autoencoder with batch normalization needs at least 2 samples "
            f"and batch_size >= 2, got n_samples={source.n_samples}, batch_size={batch_size}."
        )
    batch_size = min(batch_size, source.n_samples)
    noise_gen = _noise_generator(generator, source.device) if noise > 0 else None
    objective = _Reconstruction(
        module,
        LOSSES[loss],
        n_samples=source.n_samples,
        corrupt=None if noise <= 0 else lambda xb: _corrupt(xb, noise, noise_type, noise_gen),
        augment=augment,
        X_val=X_val,
    )
    state = LoopState(
        stage="pretrain",
        module=module,
        optimizer=optimizer,
        params=[p for p in module.parameters() if p.requires_grad],
        n_epochs=epochs,
        history={"train_loss": [], "val_loss": [], "best_epoch": None},
    )
    builtins = _builtin_callbacks(
        n_iter_no_change, tol, lr_schedule, clip_grad_norm, "autoencoder" if verbose else None
    )
    return fit_loop(
        objective,
        state,
        lambda: source.batches(batch_size, generator, avoid_singleton=batch_norm),
        [*builtins, *(callbacks or ())],
    )


def _check_validation(X_val, source):
    """``X_val`` as a source of the training data's width, or None (also when empty)."""
    if X_val is None or (isinstance(X_val, torch.Tensor) and X_val.shape[0] == 0):
        return None
    X_val = as_source(X_val)
    if X_val.n_features != source.n_features:
        raise ValueError(
            f"X_val must have shape (n_val, {source.n_features}), "
            f"got {X_val.n_features} features."
        )
    return X_val


def _builtin_callbacks(n_iter_no_change, tol, lr_schedule, clip_grad_norm, progress):
    """The callbacks that ``train_autoencoder``'s keyword arguments stand for."""
    callbacks = [NaNGuard(hint="Lower learning_rate or scale the input.")]
    callbacks.append(EarlyStopping(patience=n_iter_no_change, tol=tol))
    if lr_schedule is not None:
        patience = max(1, n_iter_no_change // 2) if n_iter_no_change else PLATEAU_PATIENCE
        callbacks.append(LRScheduler(lr_schedule, patience=patience))
    if clip_grad_norm is not None:
        callbacks.append(GradientNormClipping(clip_grad_norm))
    if progress is not None:
        callbacks.append(ProgressBar(progress))
    return callbacks


class _Reconstruction:
    """Objective of pre-training: the reconstruction loss of (augmented, noisy) batches."""

    def __init__(self, module, loss_fn, *, n_samples, corrupt, augment, X_val):
        self.module = module
        self.loss_fn = loss_fn
        self.n_samples = n_samples
        self.corrupt = corrupt
        self.augment = augment
        self.X_val = X_val

    def before_batch(self, state, idx):
        return True

    def batch_loss(self, idx, xb):
        if self.augment is not None:
            xb = self.augment(xb)
        x_in = xb if self.corrupt is None else self.corrupt(xb)
        loss = self.loss_fn(self.module(x_in), xb)
        return loss, {"train_loss": loss.detach()}

    def end_epoch(self, state, totals, n_seen):
        logs = {"train_loss": _global_mean(self.module, totals["train_loss"], self.n_samples)}
        if self.X_val is not None and math.isfinite(logs["train_loss"]):
            # Averaged over DDP ranks too: GPUs may differ in the last bits.
            val = _mean_loss(self.module, self.X_val, self.loss_fn, INFERENCE_BATCH_SIZE)
            logs["val_loss"] = _global_mean(self.module, val, 1)
        return logs
