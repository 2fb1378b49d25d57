"""Training loop and batched inference for autoencoders.

``train_autoencoder`` is a plain keyword-only function over a module, a tensor
and an optimizer, with no estimator inside, so that it can be reused (or
wrapped by distributed launchers) on its own.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from ._data import StreamSource, TensorSource, as_source, iter_row_blocks

__all__ = [
    "LOSSES",
    "LR_SCHEDULES",
    "NOISE_TYPES",
    "OPTIMIZERS",
    "RandomAffine",
    "decode_array",
    "encode_array",
    "make_optimizer",
    "reconstruct_array",
    "to_tensor",
    "train_autoencoder",
]

logger = logging.getLogger(__name__)

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": nn.functional.mse_loss,
    "l1": nn.functional.l1_loss,
    "huber": nn.functional.huber_loss,
}

#: Kinds of input corruption for denoising autoencoders.
NOISE_TYPES = ("gaussian", "mask")

#: Learning-rate schedules understood by ``train_autoencoder``.
LR_SCHEDULES = (None, "cosine", "plateau")

#: Patience of the 'plateau' schedule when early stopping is off.
PLATEAU_PATIENCE = 5

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}

#: Rows per batch for inference (transform/predict); large batches amortise
#: the per-call overhead while keeping memory bounded.
INFERENCE_BATCH_SIZE = 4096


def make_optimizer(
    name: str,
    params,
    *,
    learning_rate: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Build a torch optimizer from its name (``'adam'``, ``'adamw'``, ``'sgd'``).

    ``params`` is an iterable of tensors or of parameter-group dicts. The
    fused implementation is used when every parameter is a floating-point
    tensor on the CPU or a CUDA device: one kernel per step instead of a
    dozen per tensor (about 20 % off a CPU training epoch of the default
    autoencoder), with the same update rule.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}.")
    params = list(params)
    kwargs = {"lr": learning_rate, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = momentum
    if _fusable(params):
        kwargs["fused"] = True
    return OPTIMIZERS[name](params, **kwargs)


def _fusable(params: list) -> bool:
    """Whether the fused optimizer kernels support all of ``params``."""
    tensors = []
    for p in params:
        group = p["params"] if isinstance(p, dict) else p
        tensors.extend([group] if isinstance(group, torch.Tensor) else group)
    devices = {t.device for t in tensors}
    return (
        len(devices) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and all(t.dtype in (torch.float32, torch.float64) for t in tensors)
    )


def to_tensor(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """Float32 tensor on ``device`` holding ``X`` (copied only when needed)."""
    X = np.asarray(X, dtype=np.float32)
    if not X.flags.writeable or not X.flags.c_contiguous:
        # torch cannot share read-only memory (e.g. a memmap) without a warning.
        X = np.array(X, dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(X).to(device)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _has_batch_norm(module: nn.Module) -> bool:
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
    beyond the border repeat the border). The transforms are drawn from
    ``generator`` (a CPU generator), so runs are reproducible.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of each row of the batches, in channel-first order.
    shift : float
        Largest shift, as a fraction of the image's height and width.
    rotation : float
        Largest rotation, in degrees.
    generator : torch.Generator, optional
        Source of the transforms (torch's global generator when None).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        shift: float,
        rotation: float,
        generator: torch.Generator | None = None,
    ) -> None:
        self.image_shape = tuple(int(s) for s in image_shape)
        self.shift = float(shift)
        self.rotation = float(rotation)
        self.generator = generator

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        n = xb.shape[0]
        u = 2.0 * torch.rand((n, 3), generator=self.generator) - 1.0
        angle = u[:, 0] * math.radians(self.rotation)
        # affine_grid's coordinates span [-1, 1]: a shift of f * side is 2 * f.
        tx, ty = 2.0 * self.shift * u[:, 1], 2.0 * self.shift * u[:, 2]
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
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


def _make_scheduler(
    lr_schedule: str | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    n_iter_no_change: int | None,
):
    if lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if lr_schedule == "plateau":
        patience = max(1, n_iter_no_change // 2) if n_iter_no_change else PLATEAU_PATIENCE
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.1, patience=patience
        )
    return None


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
    loss_fn = LOSSES[loss]
    source = as_source(X)
    n_samples, device = source.n_samples, source.device
    if X_val is not None:
        if isinstance(X_val, torch.Tensor) and X_val.shape[0] == 0:
            X_val = None
        else:
            X_val = as_source(X_val)
            if X_val.n_features != source.n_features:
                raise ValueError(
                    f"X_val must have shape (n_val, {source.n_features}), "
                    f"got {X_val.n_features} features."
                )
    batch_norm = _has_batch_norm(module)
    if batch_norm and n_samples < 2:
        raise ValueError(
            "Training an autoencoder with batch normalization needs at least 2 samples, "
            f"got n_samples={n_samples}."
        )
    batch_size = min(batch_size, n_samples)
    noise_gen = _noise_generator(generator, device) if noise > 0 else None
    scheduler = _make_scheduler(
        lr_schedule, optimizer, epochs=epochs, n_iter_no_change=n_iter_no_change
    )
    params = [p for p in module.parameters() if p.requires_grad]

    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "best_epoch": None}
    last_good = _snapshot(module)
    best_state: dict[str, torch.Tensor] | None = None
    best_loss = math.inf  # lowest monitored loss so far
    ref_loss = math.inf  # loss the next epoch must beat by tol
    n_no_change = 0

    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=epochs, desc="autoencoder", unit="epoch", leave=True)
    try:
        for epoch in range(epochs):
            module.train()
            total = torch.zeros((), device=device)
            for _, xb in source.batches(batch_size, generator, avoid_singleton=batch_norm):
                if augment is not None:
                    xb = augment(xb)
                x_in = _corrupt(xb, noise, noise_type, noise_gen) if noise > 0 else xb
                optimizer.zero_grad(set_to_none=True)
                batch_loss = loss_fn(module(x_in), xb)
                batch_loss.backward()
                if clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, clip_grad_norm)
                optimizer.step()
                total += batch_loss.detach() * xb.shape[0]
            epoch_loss = _global_mean(module, total, n_samples)
            val_loss = None
            if X_val is not None and math.isfinite(epoch_loss):
                # Averaged over DDP ranks too: GPUs may differ in the last bits.
                val_loss = _global_mean(
                    module, _mean_loss(module, X_val, loss_fn, INFERENCE_BATCH_SIZE), 1
                )
            bad = next(
                (
                    (what, v)
                    for what, v in (("training", epoch_loss), ("validation", val_loss))
                    if v is not None and not math.isfinite(v)
                ),
                None,
            )
            if bad is not None:
                what, value = bad
                module.load_state_dict(last_good)
                warnings.warn(
                    f"The {what} loss became {value} at epoch {epoch + 1}; "
                    "training stopped and the weights of the last finite epoch "
                    "were restored. Lower learning_rate or scale the input.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
                break
            history["train_loss"].append(epoch_loss)
            if val_loss is not None:
                history["val_loss"].append(val_loss)
            last_good = _snapshot(module)

            monitored = epoch_loss if val_loss is None else val_loss
            if monitored < best_loss:
                best_loss = monitored
                history["best_epoch"] = epoch
                if n_iter_no_change is not None:
                    best_state = last_good
            if monitored < ref_loss - tol:
                ref_loss = monitored
                n_no_change = 0
            else:
                n_no_change += 1
            if scheduler is not None:
                if lr_schedule == "plateau":
                    scheduler.step(monitored)
                else:
                    scheduler.step()

            if val_loss is None:
                logger.debug("epoch %d: train_loss=%.6g", epoch + 1, epoch_loss)
            else:
                logger.debug(
                    "epoch %d: train_loss=%.6g val_loss=%.6g", epoch + 1, epoch_loss, val_loss
                )
            if progress is not None:
                progress.update(1)
                postfix = {"loss": f"{epoch_loss:.4g}"}
                if val_loss is not None:
                    postfix["val_loss"] = f"{val_loss:.4g}"
                progress.set_postfix(postfix)
            if n_iter_no_change is not None and n_no_change >= n_iter_no_change:
                logger.debug(
                    "early stopping at epoch %d: no improvement of at least %g for %d epochs",
                    epoch + 1,
                    tol,
                    n_iter_no_change,
                )
                break
    finally:
        if progress is not None:
            progress.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history


def _inference_copy(module: nn.Module, device: torch.device) -> tuple[nn.Module, torch.dtype]:
    """Module to run inference with, and the dtype to feed it.

    A float64 copy is used: float32 matrix products give results that depend
    (at the 1e-6 level) on how many rows are in a batch, so
    ``transform(X)[i]`` would differ from ``transform(X[i:i + 1])``. In float64
    the difference is far below anything visible, and inference is cheap next
    to training. Apple's MPS has no float64, so float32 is kept there.
    """
    if device.type == "mps":
        return module.eval(), torch.float32
    return copy.deepcopy(module).double().eval(), torch.float64


def _apply_batched(
    fn_name: str,
    module: nn.Module,
    X: np.ndarray,
    *,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    module.eval()
    model, dtype = _inference_copy(module, device)
    fn = model if fn_name == "forward" else getattr(model, fn_name)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    out = None
    with torch.inference_mode():
        # Fresh writable blocks (torch warns on read-only views); the pages of a
        # memory-mapped X are released as the blocks go by. The result is written
        # into one array allocated once, so that large inputs do not leave a trail
        # of small allocations between the freed blocks (heap fragmentation).
        for start, xb in iter_row_blocks(X, batch_size, dtype=np_dtype):
            result = fn(torch.from_numpy(xb).to(device)).cpu().numpy()
            if out is None:
                out = np.empty((X.shape[0], *result.shape[1:]), dtype=result.dtype)
            out[start : start + result.shape[0]] = result
    return out


def encode_array(
    module: nn.Module,
    X: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> np.ndarray:
    """Codes of ``X`` as an array, computed in large batches.

    Runs under :func:`torch.inference_mode` with the module in eval mode, so
    dropout and input noise are off. On the CPU the computation is done in
    float64 (see ``_inference_copy``) and a float64 array is returned.
    """
    return _apply_batched("encode", module, X, device=device, batch_size=batch_size)


def decode_array(
    module: nn.Module,
    Z: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> np.ndarray:
    """Decoded inputs for codes ``Z``, computed in large batches (see ``encode_array``)."""
    return _apply_batched("decode", module, Z, device=device, batch_size=batch_size)


def reconstruct_array(
    module: nn.Module,
    X: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> np.ndarray:
    """Reconstructions ``module(X)`` as an array, in large batches (see ``encode_array``)."""
    return _apply_batched("forward", module, X, device=device, batch_size=batch_size)
