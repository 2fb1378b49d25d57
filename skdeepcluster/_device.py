"""Device resolution and reproducible randomness for the torch parts.

Kept apart from the estimator so that every torch-facing piece (training,
inference, pickling) resolves devices and seeds the same way.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

__all__ = ["resolve_device", "torch_seed_context", "available_device"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn the ``device`` parameter into a usable :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``'auto'`` picks CUDA when available and the CPU otherwise. Any string
        torch understands (``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``) or a
        :class:`torch.device` is accepted.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string is not a device name or the device is not available on
        this machine.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu', "
            "'cuda', 'cuda:<index>' or 'mps'."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on "
                "this machine; use device='auto' or 'cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    elif dev.type == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available on this "
            "machine; use device='auto' or 'cpu'."
        )
    elif dev.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda', "
            "'cuda:<index>' or 'mps'."
        )
    return dev


def available_device(device: str | torch.device) -> torch.device:
    """Device to restore a pickled model on: ``device`` or the CPU.

    Used when unpickling: a model fitted on a GPU is mapped to the CPU (with a
    warning) when that GPU does not exist on the loading machine.
    """
    try:
        return resolve_device(device)
    except ValueError:
        warnings.warn(
            f"The model was fitted on device {str(device)!r}, which is not "
            "available here; it was loaded on the CPU instead.",
            UserWarning,
            stacklevel=3,
        )
        return torch.device("cpu")


@contextlib.contextmanager
def torch_seed_context(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore them after.

    Parameter initialisation and dropout draw from torch's global generators;
    forking them keeps ``random_state`` reproducible without changing the
    caller's global random state.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
