"""Fingerprints of fits: hashes of ``labels_`` and of an embedding, for refactors.

A change that should not change behaviour (moving code, new parameter objects)
is checked by running this before and after it on the same machine: every hash
must stay. Each configuration exercises one path of ``fit``: no network, the
MLP with self-labelling (consistency, rounds), the convolutional network with
image augmentation, refinement, denoising with early stopping, and the
defaults and the self-labelling with flipped augmentation on 6,000 MNIST
test images.

    python benchmarks/bench_fingerprint.py --mnist-path ../shared/data/mnist

Results: ``benchmarks/results/fingerprint.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
from _machine import describe


def _mnist(path: Path, n: int):
    with gzip.open(path / "t10k-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:n] / 255.0
    with gzip.open(path / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return X, y


def configurations(mnist_path: Path):
    """(name, X, y, parameters) of each fit."""
    from sklearn.datasets import load_digits

    from skdeepcluster import MLP, ConvNet, ImageAugment, SelfLabel

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    M, My = _mnist(mnist_path, 6_000)
    yield "digits defaults", X, y, {}
    yield "digits MLP + SelfLabel(rounds, consistency)", X, y, dict(
        architecture=MLP((64, 32)), epochs=20, self_label=SelfLabel(rounds=2, consistency=200)
    )
    yield "digits ConvNet + ImageAugment", X, y, dict(
        architecture=ConvNet((8, 16), dropout=0.1, batch_norm=True), image_shape=(1, 8, 8),
        epochs=3, augment=ImageAugment(0.1, flip=True),
        self_label=SelfLabel(rounds=1, augment=ImageAugment(0.05, flip=True)),
    )
    yield "digits IDEC", X, y, dict(
        architecture=MLP((64,), activation="tanh", output_activation="sigmoid"), epochs=10,
        refine="idec", input_pca=None,
    )
    yield "digits mask noise + early stopping", X, y, dict(
        architecture=MLP((32,)), noise=0.2, noise_type="mask", validation_fraction=0.1,
        n_iter_no_change=2, epochs=30,
    )
    yield "MNIST 6,000 defaults", M, My, {}
    yield "MNIST 6,000 SelfLabel(rounds, consistency, flips)", M, My, dict(
        architecture="mlp", image_shape=(1, 28, 28), epochs=15,
        self_label=SelfLabel(rounds=2, consistency=300, augment=ImageAugment(0.1, flip=True)),
    )


def _hash(array) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def main(argv=None) -> int:
    import warnings

    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.metrics import cluster_accuracy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-path", type=Path, default=Path("../shared/data/mnist"))
    args = parser.parse_args(argv)
    print(describe())
    print("\n| fit | labels_ | transform (500 rows) | ACC | s |\n|---|---|---|---|---:|")
    for name, X, y, params in configurations(args.mnist_path):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a classifier not kept is part of a path
            model = AutoencoderKMeans(10, random_state=0, **params).fit(X)
        embedding = model.transform(X[:500])
        print(
            f"| {name} | {_hash(model.labels_.astype(np.int64))} | {_hash(embedding)} | "
            f"{cluster_accuracy(y, model.labels_):.4f} | {time.perf_counter() - start:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
