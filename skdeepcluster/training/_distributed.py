"""Data-parallel pre-training of an autoencoder on several devices.

:func:`train_autoencoder_distributed` starts one process per device with
``torch.multiprocessing`` (spawn start method), wraps a copy of the module in
:class:`~torch.nn.parallel.DistributedDataParallel` in each of them and runs
the ordinary :func:`~skdeepcluster.training.train_autoencoder` loop on a
shard of the data. The processes meet through a file store in a temporary
directory and talk on the loopback interface only, so nothing is exposed to
the network.

The worker is a module-level function of this module, so that the spawned
processes can import it: callers need no ``if __name__ == '__main__'`` guard,
and it works from notebooks, scripts and pytest(-xdist) workers alike. The
*module's class*, however, must be importable by the children (the built-in
networks are; a class defined in a notebook cell is not).
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import math
import os
import pickle
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.multiprocessing.spawn import ProcessContext, ProcessException

from .._device import resolve_device
from ._inference import to_tensor
from ._optim import make_optimizer
from ._pretrain import _check_training_params, train_autoencoder

#: Keyword arguments of ``train_autoencoder`` that are forwarded unchanged.
_FORWARDED = (
    "loss",
    "noise",
    "noise_type",
    "n_iter_no_change",
    "tol",
    "clip_grad_norm",
    "lr_schedule",
    "verbose",
    "callbacks",
)

#: Seconds between two polls of the child processes by the parent.
_POLL_INTERVAL = 0.2

#: Seconds the children get to exit after one of them failed, before SIGKILL.
_GRACE_PERIOD = 1.0


def resolve_devices(device: Sequence[str | torch.device]) -> list[torch.device]:
    """Validate a list of devices for data-parallel training.

    Parameters
    ----------
    device : list or tuple of str or torch.device
        One entry per process. Each is resolved with
        :func:`~skdeepcluster._device.resolve_device`. All must be CPUs (the
        CPU may be repeated, e.g. ``['cpu', 'cpu']``) or all CUDA devices,
        each at most once (``'cuda'`` means the current CUDA device).

    Returns
    -------
    devices : list of torch.device
        The resolved devices, CUDA ones with an explicit index.

    Raises
    ------
    ValueError
        If ``device`` is not a non-empty list or tuple, if an entry is not an
        available device, if CPUs and CUDA devices are mixed, if a device type
        other than CPU and CUDA is requested, or if a CUDA device is repeated.
    """
    if not isinstance(device, (list, tuple)):
        raise ValueError(
            "A list or tuple of devices is needed for distributed training "
            f"(e.g. ['cpu', 'cpu'] or ['cuda:0', 'cuda:1']), got {device!r}."
        )
    if len(device) == 0:
        raise ValueError("The list of devices for distributed training is empty.")
    devices = []
    for entry in device:
        if not isinstance(entry, (str, torch.device)):
            raise ValueError(
                f"Each device must be a string or a torch.device, got {entry!r} in {device!r}."
            )
        dev = resolve_device(entry)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        devices.append(dev)
    kinds = {dev.type for dev in devices}
    if not kinds <= {"cpu", "cuda"}:
        raise ValueError(
            f"Distributed training supports CPU and CUDA devices only, got {device!r}."
        )
    if len(kinds) > 1:
        raise ValueError(
            "Distributed training needs devices of a single type: all 'cpu' or all "
            f"'cuda:<index>', got {device!r}."
        )
    if "cuda" in kinds and len(set(devices)) < len(devices):
        raise ValueError(
            f"Each CUDA device may appear only once in the list of devices, got {device!r}."
        )
    return devices


def _loopback_interface() -> str | None:
    """Name of the loopback network interface, for gloo (``None`` if unknown)."""
    if sys.platform.startswith("linux"):
        return "lo"
    if sys.platform == "darwin":
        return "lo0"
    return None


def _worker(rank: int, config: dict[str, Any]) -> None:
    """Body of one process (rank) of :func:`train_autoencoder_distributed`.

    Module-level so that the spawned children can import it. ``config`` holds
    the arguments that every rank shares (see ``_worker_config``).
    """
    interface = _loopback_interface()
    if interface is not None:
        # Only in this child: gloo would otherwise pick the interface that the
        # host name resolves to, which may be unreachable (or not loopback).
        os.environ["GLOO_SOCKET_IFNAME"] = interface
    if config["num_threads"] is not None:
        torch.set_num_threads(config["num_threads"])
    device = torch.device(config["devices"][rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # Each rank its own streams, spawned from the caller's seed: dropout draws
    # from the global generator, batches and noise from the local one.
    rank_seeds = np.random.SeedSequence(config["seed"]).spawn(config["world_size"])[rank]
    dropout_seed, batch_seed = (int(s) for s in rank_seeds.generate_state(2, np.uint64))
    torch.manual_seed(dropout_seed)
    dist.init_process_group(
        config["backend"],
        init_method=config["init_method"],
        rank=rank,
        world_size=config["world_size"],
        timeout=datetime.timedelta(seconds=config["timeout"]),
    )
    try:
        history, ddp = _train_rank(rank, device, config, batch_seed)
        if rank == 0:
            state = {k: v.detach().cpu() for k, v in ddp.module.state_dict().items()}
            partial = os.path.join(config["workdir"], "result.pt.partial")
            torch.save({"state_dict": state, "history": history}, partial)
            os.replace(partial, os.path.join(config["workdir"], "result.pt"))
        dist.barrier()  # leave together: no rank tears the group down under another
    finally:
        dist.destroy_process_group()


def _train_rank(rank: int, device: torch.device, config: dict[str, Any], batch_seed: int):
    """Load the module and this rank's shard, and train the DDP-wrapped module."""
    workdir, world_size = config["workdir"], config["world_size"]
    module = torch.load(
        os.path.join(workdir, "module.pt"), map_location="cpu", weights_only=False
    ).to(device)
    ddp = nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )
    X = np.load(os.path.join(workdir, "X.npy"), mmap_mode="r")
    per_rank = X.shape[0] // world_size
    shard = to_tensor(X[rank::world_size][:per_rank], device)
    del X
    X_val = None
    if config["has_val"]:
        X_val = to_tensor(np.load(os.path.join(workdir, "X_val.npy")), device)
    kwargs = dict(config["train_kwargs"])
    if rank != 0:
        kwargs["verbose"] = 0
    optimizer = make_optimizer(
        config["optimizer"],
        ddp.parameters(),
        learning_rate=config["learning_rate"],
        weight_decay=config["weight_decay"],
    )
    history = train_autoencoder(
        ddp,
        shard,
        optimizer=optimizer,
        generator=torch.Generator().manual_seed(batch_seed),
        X_val=X_val,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        **kwargs,
    )
    return history, ddp


@contextlib.contextmanager
def _main_module_hidden(module: nn.Module) -> Iterator[None]:
    """Keep the spawned children from re-running the caller's ``__main__``.

    With the spawn start method, each child first re-executes the parent's
    main script (as ``__mp_main__``), so that objects defined there can be
    unpickled. A script without an ``if __name__ == '__main__'`` guard would
    then call this function again in every child, which fails, and a guarded
    one would still redo its top-level work (e.g. loading data). The children
    only need ``module``'s classes, so the main module is replaced by an empty
    one while they start, unless one of those classes is defined in it (the
    caller then needs the guard, as with any spawn-based code).
    """
    main = sys.modules.get("__main__")
    needs_main = any(type(m).__module__ == "__main__" for m in module.modules())
    if main is None or needs_main:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _stop(context: ProcessContext) -> None:
    """Terminate (then kill) the children that are still running; reap all."""
    for process in context.processes:
        if process.is_alive():
            process.terminate()
    for process in context.processes:
        process.join(_GRACE_PERIOD)
        if process.is_alive():  # pragma: no cover - stuck in C code, ignoring SIGTERM
            process.kill()
            process.join()
    for path in context.error_files:
        if path is not None and os.path.exists(path):
            os.remove(path)


def train_autoencoder_distributed(
    module: nn.Module,
    X: np.ndarray,
    *,
    devices: Sequence[str | torch.device],
    optimizer: str,
    learning_rate: float,
    weight_decay: float = 0.0,
    seed: int,
    epochs: int,
    batch_size: int,
    backend: str | None = None,
    timeout: float = 600.0,
    X_val: np.ndarray | None = None,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train ``module`` with DistributedDataParallel, one process per device.

    Each process (rank) trains a copy of ``module`` on its shard of ``X``
    with :func:`~skdeepcluster.training.train_autoencoder`; gradients are
    averaged over the ranks after every step, so all copies stay identical.
    The weights of rank 0 are then loaded into ``module``, in place.

    Parameters
    ----------
    module : torch.nn.Module
        Autoencoder with ``forward(x) -> reconstruction``. It is saved with
        :func:`torch.save` and loaded by each child, so its class must be
        importable there (defined in a module, not in a notebook cell). Its
        weights are replaced by the trained ones; it stays on its device.
    X : ndarray of shape (n_samples, n_features)
        Training data (converted to float32). Rank ``r`` of ``world_size =
        len(devices)`` trains on the rows ``X[r::world_size]``, truncated to
        ``n_samples // world_size`` rows so that every rank takes the same
        number of steps: up to ``world_size - 1`` rows (among the last ones)
        are left out of training.
    devices : sequence of str or torch.device
        One device per process, see :func:`resolve_devices`; e.g.
        ``['cpu', 'cpu']`` or ``['cuda:0', 'cuda:1']``. A single device is
        allowed (one child process, no data parallelism).
    optimizer : {'adam', 'adamw', 'sgd'}
        Optimizer name, see :func:`~skdeepcluster.training.make_optimizer`.
    learning_rate : float
        Learning rate of the optimizer.
    weight_decay : float, default=0.0
        L2 penalty of the optimizer.
    seed : int
        Root of the random streams: rank ``r`` takes the ``r``-th child of
        ``numpy.random.SeedSequence(seed).spawn(world_size)`` for its batch
        order and input noise and for its global torch generator (dropout).
    epochs : int
        Maximum number of passes over the data.
    batch_size : int
        Global batch size: each rank uses ``ceil(batch_size / world_size)``
        rows per step, so one step sees about as many rows as one step of
        single-process training.
    backend : str, optional
        Backend of the process group; ``'nccl'`` when all devices are CUDA
        devices and ``'gloo'`` otherwise.
    timeout : float, default=600.0
        Seconds that the process group waits for the rendezvous and for each
        collective operation; a rank that hangs (e.g. after another rank
        died) fails after that long.
    X_val : ndarray of shape (n_val, n_features), optional
        Validation data, evaluated in full by every rank (with identical
        weights) after each epoch.
    **train_kwargs
        Further keyword arguments of ``train_autoencoder``: ``loss``,
        ``noise``, ``noise_type``, ``n_iter_no_change``, ``tol``,
        ``clip_grad_norm``, ``lr_schedule``, ``verbose`` (shown by rank 0
        only) and ``callbacks`` (copied to every rank, so they must pickle).

    Returns
    -------
    history : dict
        The history returned by ``train_autoencoder`` on rank 0; its
        ``'train_loss'`` entries are averaged over all ranks.

    Raises
    ------
    TypeError
        If an unknown keyword argument is given.
    ValueError
        If a parameter is invalid or ``X`` has fewer rows than processes.
    RuntimeError
        If a child process fails; the message holds its traceback. The other
        children are then stopped.

    Notes
    -----
    The children are started with the ``'spawn'`` method (a fresh Python
    interpreter each; CUDA cannot be forked), so starting them costs a few
    seconds. They rendezvous through a file store in a temporary directory
    (no port is reserved in advance), and gloo is bound to the loopback
    interface. CPU ranks split the parent's intra-op threads between them.
    The data travel to the children through a temporary directory (a memory
    map of ``X``), which is removed afterwards, as are the children.
    """
    _check_forwarded(train_kwargs, epochs=epochs, batch_size=batch_size)
    resolved = resolve_devices(devices)
    if backend is None:
        backend = "nccl" if all(d.type == "cuda" for d in resolved) else "gloo"
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array, got shape {X.shape}.")
    if X.shape[0] < len(resolved):
        raise ValueError(
            f"X has {X.shape[0]} rows, fewer than the {len(resolved)} processes: each "
            "process needs at least one row."
        )
    n_cpu = sum(d.type == "cpu" for d in resolved)
    config = {
        "world_size": len(resolved),
        "backend": backend,
        "timeout": float(timeout),
        "devices": [str(d) for d in resolved],
        "has_val": X_val is not None,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "seed": int(seed),
        "epochs": int(epochs),
        "batch_size": math.ceil(batch_size / len(resolved)),
        "train_kwargs": {k: train_kwargs[k] for k in _FORWARDED if k in train_kwargs},
        "num_threads": max(1, torch.get_num_threads() // n_cpu) if n_cpu else None,
    }
    result = _run_workers(module, X, X_val, config)
    module.load_state_dict(result["state_dict"])
    module.eval()
    return result["history"]


def _check_forwarded(train_kwargs: dict[str, Any], *, epochs: int, batch_size: int) -> None:
    """Check the keyword arguments forwarded to ``train_autoencoder`` in the parent."""
    unknown = sorted(set(train_kwargs) - set(_FORWARDED))
    if unknown:
        raise TypeError(
            f"train_autoencoder_distributed() got unexpected keyword argument(s) {unknown}; "
            f"accepted: {list(_FORWARDED)}."
        )
    skip = ("verbose", "callbacks")
    check = {
        k: v.default
        for k, v in inspect.signature(train_autoencoder).parameters.items()
        if k in _FORWARDED and k not in skip
    }
    check.update({k: v for k, v in train_kwargs.items() if k not in skip})
    _check_training_params(epochs=epochs, batch_size=batch_size, **check)


def _other_failures(context, reported: int) -> str:
    """The errors that ranks other than ``reported`` raised, as text ('' if none).

    torch reports the first rank it finds failed. When one rank raises, the ranks
    waiting for it in a collective fail too ("connection closed"), and under load
    one of those may be the one reported; the cause is then in another rank's
    error file, written by torch's own child process (all ranks are joined by then).
    """
    text = ""
    for rank, path in enumerate(context.error_files):
        if rank == reported or path is None or not os.access(path, os.R_OK):
            continue
        with open(path, "rb") as f:
            trace = pickle.load(f)
        text += f"\n\n-- process {rank} failed too:\n{trace}"
    return text


def _run_workers(module: nn.Module, X: np.ndarray, X_val, config: dict[str, Any]) -> dict:
    """Start the ranks on a temporary working directory; rank 0's weights and history."""
    world_size = config["world_size"]
    workdir = tempfile.mkdtemp(prefix="skdeepcluster-ddp-")
    context = None
    try:
        torch.save(module, os.path.join(workdir, "module.pt"))
        np.save(os.path.join(workdir, "X.npy"), X)
        if X_val is not None:
            np.save(os.path.join(workdir, "X_val.npy"), np.asarray(X_val, dtype=np.float32))
        # The ranks meet through a file store in the working directory, not a TCP port
        # picked in advance: a port found free here could be taken by another process
        # (a Dask cluster of a parallel test run) before rank 0 bound it, and rank 1
        # then talked to that process and died with SIGABRT ("terminate called without
        # an active exception"), in 3 of 7 full test runs on a two-core machine.
        store = os.path.join(workdir, "rendezvous")
        config = dict(config, workdir=workdir, init_method=f"file://{store}")
        with _main_module_hidden(module):
            context = mp.start_processes(
                _worker, args=(config,), nprocs=world_size, join=False, start_method="spawn"
            )
        try:
            while not context.join(timeout=_POLL_INTERVAL, grace_period=_GRACE_PERIOD):
                pass
        except ProcessException as exc:
            raise RuntimeError(
                f"Distributed training failed in process {exc.error_index} "
                f"(of {world_size}, pid {exc.error_pid}): {exc}"
                + _other_failures(context, exc.error_index)
            ) from None
        result_path = os.path.join(workdir, "result.pt")
        if not os.path.exists(result_path):
            raise RuntimeError(
                "Distributed training ended without a result from process 0."
            )  # pragma: no cover - defensive
        return torch.load(result_path, map_location="cpu", weights_only=True)
    finally:
        if context is not None:
            _stop(context)
        shutil.rmtree(workdir, ignore_errors=True)
