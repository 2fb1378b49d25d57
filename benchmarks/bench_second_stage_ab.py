"""A/B of the neighbour embedding on the same codes: this tree against another checkout.

Fits the defaults, ``AutoencoderKMeans(n_clusters=10, random_state=s)``, saves the
standardized codes, then lays them out with ``NeighborEmbedding(n_components=10,
random_state=e)`` and clusters with ``KMeans(10, n_init=10, random_state=0)``, once
with this tree's package and once with the package of ``--other`` (for example a
``git worktree add /tmp/old <commit>``), each in a fresh process. Separates what the
second stage does from what the codes (pre-training) do.

Usage::

    git worktree add /tmp/old 634e59d
    python benchmarks/bench_second_stage_ab.py --other /tmp/old --data mnist --fit-seeds 2
    python benchmarks/bench_second_stage_ab.py --other /tmp/old --data digits --fit-seeds 0 1 2

Prints the ACC of every embedding seed, per tree; ``benchmarks/results/quality.md``
holds the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _machine
import numpy as np
from bench_core import DEFAULT_MNIST


def load(data: str, mnist_path: str):
    if data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X / 16.0, y
    from skdeepcluster.datasets import load_mnist

    return load_mnist(path=mnist_path, subset="test", return_X_y=True)


def save_codes(X, seed: int, path: Path) -> None:
    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.training import encode_array

    model = AutoencoderKMeans(n_clusters=10, random_state=seed).fit(X)
    codes = encode_array(model.autoencoder_, X, device=model.device_)
    np.save(path, model.scaler_.transform(codes))


def embed(codes_path: str, labels_path: str, seeds: list[int]) -> list[float]:
    """In a child process: ACC of the embedding seeds with the package on sys.path."""
    from sklearn.cluster import KMeans

    from skdeepcluster import NeighborEmbedding
    from skdeepcluster.metrics import cluster_accuracy

    Z, y = np.load(codes_path), np.load(labels_path)
    accs = []
    for seed in seeds:
        E = NeighborEmbedding(n_components=10, random_state=seed).fit_transform(Z)
        labels = KMeans(10, n_init=10, random_state=0).fit_predict(E)
        accs.append(float(cluster_accuracy(y, labels)))
    return accs


def run_child(tree: str, codes: Path, labels: Path, seeds: list[int]) -> list[float]:
    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", str(codes), str(labels),
               *map(str, seeds)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", help="root of the other checkout")
    parser.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--fit-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--ne-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        codes, labels, *seeds = args.child
        print(json.dumps(embed(codes, labels, [int(s) for s in seeds])))
        return 0
    if not args.other:
        parser.error("--other is required")
    X, y = load(args.data, args.mnist_path)
    here = str(Path(__file__).resolve().parents[1])
    print(_machine.describe())
    with tempfile.TemporaryDirectory() as tmp:
        labels = Path(tmp) / "labels.npy"
        np.save(labels, y)
        for seed in args.fit_seeds:
            codes = Path(tmp) / f"codes_{seed}.npy"
            save_codes(X, seed, codes)
            for name, tree in (("this tree", here), ("other", args.other)):
                accs = run_child(tree, codes, labels, args.ne_seeds)
                shown = " / ".join(f"{a:.3f}" for a in accs)
                print(f"| {args.data} | fit seed {seed} | {name} | {shown} | "
                      f"{np.mean(accs):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
