"""Device resolution and reproducible randomness for the torch parts.

Kept apart from the estimator so that every torch-facing piece (training,
inference, pickling) resolves devices and seeds the same way.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

import torch


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn the ``device`` parameter into a usable :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``'auto'`` picks CUDA when available and the CPU otherwise; with
        several GPUs visible, parallel workers take one each (see
        ``_pick_gpu``). Any string
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
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        index = _pick_gpu(count) if count > 1 else None
        return torch.device("cuda") if index is None else torch.device("cuda", index)
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


#: Names multiprocessing gives worker processes: joblib's loky workers
#: (``LokyProcess-3``), ``multiprocessing.Pool`` workers (``ForkPoolWorker-2``).
_WORKER_PROCESS_NAME = re.compile(r"^(?:LokyProcess|\w*PoolWorker|Process)-(\d+)$")


def _worker_rank() -> int | None:
    """Rank of this process or thread among parallel workers, when one is known.

    ``LOCAL_RANK`` (set by ``torchrun``), the integer name of the Dask worker
    running the current task (``LocalCluster`` names its workers 0, 1, ...),
    or the number in the name of a joblib (loky) or multiprocessing worker
    process, counted from 0. None in a main process.
    """
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and local_rank.isdigit():
        return int(local_rank)
    match = _WORKER_PROCESS_NAME.match(multiprocessing.current_process().name)
    if match:
        return int(match.group(1)) - 1
    if "distributed" in sys.modules:  # only when Dask is already in use
        try:
            from distributed import get_worker

            name = get_worker().name
        except (ImportError, ValueError):
            return None
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            return int(name)
    return None


def _pick_gpu(count: int) -> int | None:
    """Index of the GPU for ``device='auto'`` when ``count > 1`` GPUs are visible.

    A parallel worker whose rank is known (``_worker_rank``) takes GPU
    ``rank % count``, so the workers of a grid search land on different GPUs.
    None (the current CUDA device) in a main process. Nothing is asked of the
    GPUs themselves: that would create a CUDA context on each of them.
    """
    rank = _worker_rank()
    return None if rank is None else rank % count


def n_threads(n_jobs: int) -> int:
    """Number of threads for ``n_jobs`` (negative: ``cpu_count + 1 + n_jobs``, at least 1)."""
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive int or -1.")
    if n_jobs > 0:
        return int(n_jobs)
    from joblib import cpu_count

    return max(1, cpu_count() + 1 + int(n_jobs))


@contextlib.contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[None]:
    """Run the block with torch using ``n_jobs`` CPU threads, then restore the setting.

    ``None`` leaves torch's setting alone. ``torch.set_num_threads`` is
    process-wide: threads of one process (e.g. a Dask worker with several
    threads) share it.
    """
    if n_jobs is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads(n_jobs))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


#: Serialises the seeded sections of fits running in threads of one process.
_SEED_LOCK = threading.RLock()


def _new_seed_lock() -> None:
    # A forked child inherits the lock in whatever state another thread held it.
    global _SEED_LOCK
    _SEED_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_seed_lock)


@contextlib.contextmanager
def torch_seed_context(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore them after.

    Parameter initialisation and dropout draw from torch's global generators;
    forking them keeps ``random_state`` reproducible without changing the
    caller's global random state. Those generators are process-wide, so
    blocks in different threads (e.g. fits on a Dask worker with several
    threads) run one at a time: otherwise a fit could draw from another's
    seed, or have its state reset under it. The lock is re-created in
    forked children.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else 0]
    with _SEED_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
