"""Overhead of ``train_autoencoder`` against a bare hand-written torch loop.

Both loops train the same initial weights with the same optimizer (Adam,
lr=1e-3), the same batch size and permutation-indexed batches; the bare loop
only adds a per-epoch ``.item()`` on the accumulated loss, as any loop that
reports its loss must. The script prints a markdown table with the median
seconds per epoch of each and their ratio (goal: <= 1.2).

Usage::

    python benchmarks/bench_training_loop.py                 # MNIST test set, CPU/auto
    python benchmarks/bench_training_loop.py --data random --device cuda
    python benchmarks/bench_training_loop.py --n-samples 2000 --epochs 2 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import _machine
import numpy as np
import torch
from torch import nn

from skdeepcluster._device import resolve_device
from skdeepcluster._networks import ConvAutoencoder, MLPAutoencoder
from skdeepcluster.datasets import read_idx
from skdeepcluster.training import make_optimizer, train_autoencoder
from skdeepcluster.training._inference import to_tensor

DEFAULT_DATA = str(
    Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
)


def load_images(path: str, n_samples: int | None, seed: int = 0) -> np.ndarray:
    """MNIST-style IDX images as float32 in [0, 1], shape (n, 784); or random data."""
    if path == "random":
        n = n_samples or 10_000
        return np.random.default_rng(seed).random((n, 784), dtype=np.float32)
    images = read_idx(path)  # validated IDX reader (gzip or plain)
    X = images.reshape(images.shape[0], -1)
    X = X[:n_samples] if n_samples else X
    return (X / 255.0).astype(np.float32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model: nn.Module, X: torch.Tensor, opt, *, epochs: int, batch_size: int, gen):
    n = X.shape[0]
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(X.device)
        total = torch.zeros((), device=X.device)
        for start in range(0, n, batch_size):
            xb = X[perm[start : start + batch_size]]
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(xb), xb)
            loss.backward()
            opt.step()
            total += loss.detach() * xb.shape[0]
        total.item()


def library_loop(model: nn.Module, X: torch.Tensor, opt, *, epochs: int, batch_size: int, gen):
    train_autoencoder(model, X, epochs=epochs, batch_size=batch_size, optimizer=opt, generator=gen)


def time_epoch(loop, init: nn.Module, X, *, epochs: int, batch_size: int) -> float:
    model = copy.deepcopy(init)
    opt = make_optimizer("adam", model.parameters(), learning_rate=1e-3)
    gen = torch.Generator().manual_seed(0)
    sync(X.device)
    t0 = time.perf_counter()
    loop(model, X, opt, epochs=epochs, batch_size=batch_size, gen=gen)
    sync(X.device)
    return (time.perf_counter() - t0) / epochs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="IDX .gz images, or 'random'")
    parser.add_argument("--n-samples", type=int, default=None, help="rows to use (default all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", default="mlp,conv")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    X_np = load_images(args.data, args.n_samples)
    X = to_tensor(X_np, device)
    builders = {
        "mlp": ("MLP 784-500-500-2000-10", lambda: MLPAutoencoder(784, (500, 500, 2000), 10)),
        "conv": ("Conv (32, 64, 128)-10", lambda: ConvAutoencoder((1, 28, 28), 10)),
    }
    loops = {"bare torch loop": bare_loop, "train_autoencoder": library_loop}

    rows = []
    for key in args.models.split(","):
        label, build = builders[key]
        torch.manual_seed(0)
        init = build().to(device)
        # Warm-up (allocator, cuDNN autotuning, thread pools), one epoch each.
        for loop in loops.values():
            time_epoch(loop, init, X, epochs=1, batch_size=args.batch_size)
        times = {name: [] for name in loops}
        for rep in range(args.repeats):
            order = list(loops.items())
            if rep % 2:  # alternate the order to spread drifting machine load
                order.reverse()
            for name, loop in order:
                times[name].append(
                    time_epoch(loop, init, X, epochs=args.epochs, batch_size=args.batch_size)
                )
        bare = statistics.median(times["bare torch loop"])
        lib = statistics.median(times["train_autoencoder"])
        rows.append((label, bare, lib, lib / bare))

    print(
        f"\ndevice={device}, n_samples={X.shape[0]}, batch_size={args.batch_size}, "
        f"epochs per measurement={args.epochs}, repeats={args.repeats} (median), "
        f"torch={torch.__version__}, {_machine.describe()}\n"
    )
    print("| model | bare loop (s/epoch) | train_autoencoder (s/epoch) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label, bare, lib, ratio in rows:
        print(f"| {label} | {bare:.4f} | {lib:.4f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
