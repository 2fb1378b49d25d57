"""Training loop and batched inference for autoencoders.

``train_autoencoder`` is a plain keyword-only function over a module, a tensor
and an optimizer, with no estimator inside, so that it can be reused (or
wrapped by distributed launchers) on its own.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "decode_array",
    "encode_array",
    "make_optimizer",
    "to_tensor",
    "train_autoencoder",
]

logger = logging.getLogger(__name__)

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": nn.functional.mse_loss,
    "l1": nn.functional.l1_loss,
}

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
    """Build a torch optimizer from its name (``'adam'``, ``'adamw'``, ``'sgd'``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}.")
    kwargs = {"lr": learning_rate, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = momentum
    return OPTIMIZERS[name](params, **kwargs)


def to_tensor(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """Float32 tensor on ``device`` holding ``X`` (copied only when needed)."""
    X = np.asarray(X, dtype=np.float32)
    if not X.flags.writeable or not X.flags.c_contiguous:
        # torch cannot share read-only memory (e.g. a memmap) without a warning.
        X = np.array(X, dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(X).to(device)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_autoencoder(
    module: nn.Module,
    X: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    loss: str = "mse",
    generator: torch.Generator | None = None,
    verbose: int = 0,
) -> dict[str, list[float]]:
    """Train ``module`` to reconstruct ``X`` with mini-batch gradient descent.

    Batches are drawn by indexing ``X`` (already on the module's device) with a
    fresh permutation each epoch, drawn from ``generator``.

    Parameters
    ----------
    module : torch.nn.Module
        Autoencoder with ``forward(x) -> reconstruction``.
    X : torch.Tensor of shape (n_samples, n_features)
        Training data, float32, on the module's device.
    epochs : int
        Number of passes over ``X``.
    batch_size : int
        Rows per optimisation step (clipped to ``n_samples``).
    optimizer : torch.optim.Optimizer
        Optimizer over ``module``'s parameters.
    loss : {'mse', 'l1'}, default='mse'
        Reconstruction loss.
    generator : torch.Generator, optional
        Source of the batch permutations (CPU generator).
    verbose : int, default=0
        ``> 0`` shows a progress bar with the running loss.

    Returns
    -------
    history : dict
        ``{'train_loss': [...]}``: mean reconstruction loss per epoch.

    Notes
    -----
    When the loss becomes NaN or infinite, training stops, the weights of the
    last finite epoch are restored and a :class:`ConvergenceWarning` is
    issued; the estimator is never left with NaN weights.
    """
    loss_fn = LOSSES[loss]
    n_samples = X.shape[0]
    batch_size = min(batch_size, n_samples)
    history: dict[str, list[float]] = {"train_loss": []}
    last_good = _snapshot(module)

    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=epochs, desc="autoencoder", unit="epoch", leave=True)
    try:
        for epoch in range(epochs):
            module.train()
            perm = torch.randperm(n_samples, generator=generator).to(X.device)
            total = torch.zeros((), device=X.device)
            for start in range(0, n_samples, batch_size):
                xb = X[perm[start : start + batch_size]]
                optimizer.zero_grad(set_to_none=True)
                batch_loss = loss_fn(module(xb), xb)
                batch_loss.backward()
                optimizer.step()
                total += batch_loss.detach() * xb.shape[0]
            epoch_loss = float(total) / n_samples
            if not math.isfinite(epoch_loss):
                module.load_state_dict(last_good)
                warnings.warn(
                    f"The training loss became {epoch_loss} at epoch {epoch + 1}; "
                    "training stopped and the weights of the last finite epoch "
                    "were restored. Lower learning_rate or scale the input.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
                break
            history["train_loss"].append(epoch_loss)
            last_good = _snapshot(module)
            logger.debug("epoch %d: train_loss=%.6g", epoch + 1, epoch_loss)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{epoch_loss:.4g}")
    finally:
        if progress is not None:
            progress.close()
    module.eval()
    return history


def _inference_copy(module: nn.Module, device: torch.device) -> tuple[nn.Module, torch.dtype]:
    """Module to run inference with, and the dtype to feed it.

    On the CPU a float64 copy is used: float32 matrix products give results
    that depend (at the 1e-6 level) on how many rows are in a batch, so
    ``transform(X)[i]`` would differ from ``transform(X[i:i + 1])``. In float64
    the difference is far below anything visible, and the cost is small. On
    accelerators float32 is kept for speed.
    """
    if device.type == "cpu":
        return copy.deepcopy(module).double().eval(), torch.float64
    return module.eval(), torch.float32


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
    fn = getattr(model, fn_name)
    chunks = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch_size):
            xb = torch.as_tensor(np.asarray(X[start : start + batch_size]), dtype=dtype)
            chunks.append(fn(xb.to(device)).cpu().numpy())
    return np.concatenate(chunks, axis=0)


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
