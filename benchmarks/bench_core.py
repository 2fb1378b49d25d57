"""Core benchmark: AutoencoderKMeans next to plain k-means on digits and MNIST.

Each (dataset, method) runs in a fresh subprocess so that its peak memory is
its own: the table reports the peak resident memory of the process above the
baseline measured after imports and data loading.

Usage::

    python benchmarks/bench_core.py                       # digits + MNIST test set
    python benchmarks/bench_core.py --datasets digits     # quick
    python benchmarks/bench_core.py --mnist-path /path/to/mnist --seed 1

Prints a markdown table: method x ACC / NMI / ARI / fit seconds / peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import _machine

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

#: Methods per dataset, in table order. ``conv`` rows need an image shape.
METHODS = [
    "KMeans (raw pixels)",
    "PCA(50) + KMeans",
    "AutoencoderKMeans (defaults)",
    "AutoencoderKMeans + PCA(0.9)",
    "AutoencoderKMeans conv",
]
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28)}


def load(dataset: str, mnist_path: str):
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return (X / 16.0).astype("float32"), y
    from skdeepcluster.datasets import load_mnist

    return load_mnist(path=mnist_path, subset="test", return_X_y=True)


def build(method: str, dataset: str, n_clusters: int, seed: int):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    from skdeepcluster import AutoencoderKMeans

    if method == "KMeans (raw pixels)":
        return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    if method == "PCA(50) + KMeans":
        return make_pipeline(
            PCA(n_components=50, random_state=seed),
            KMeans(n_clusters=n_clusters, n_init=10, random_state=seed),
        )
    if method == "AutoencoderKMeans (defaults)":
        return AutoencoderKMeans(n_clusters=n_clusters, random_state=seed)
    if method == "AutoencoderKMeans + PCA(0.9)":
        # PCA keeping 90 % of the variance of the standardized codes, then k-means and
        # IDEC refinement (refine='auto' refines only without a reducer, so ask for it).
        return AutoencoderKMeans(
            n_clusters=n_clusters,
            reducer=PCA(n_components=0.9),
            refine="idec",
            random_state=seed,
        )
    if method == "AutoencoderKMeans conv":
        return AutoencoderKMeans(
            n_clusters=n_clusters, image_shape=IMAGE_SHAPES[dataset], random_state=seed
        )
    raise ValueError(f"unknown method {method!r}")


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(dataset: str, method: str, mnist_path: str, seed: int) -> dict:
    """Fit one method in this process and return its scores (child process)."""
    import numpy as np

    import skdeepcluster  # noqa: F401  (import cost is part of the baseline)
    from skdeepcluster.metrics import clustering_scores

    X, y = load(dataset, mnist_path)
    n_clusters = len(np.unique(y))
    model = build(method, dataset, n_clusters, seed)
    baseline = peak_rss_mb()
    start = time.perf_counter()
    labels = model.fit_predict(X)
    seconds = time.perf_counter() - start
    return {
        "dataset": dataset,
        "method": method,
        **clustering_scores(y, labels),
        "seconds": seconds,
        "peak_mb": peak_rss_mb() - baseline,
        "n_samples": int(X.shape[0]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist"])
    parser.add_argument("--methods", nargs="+", default=METHODS, help="subset of the methods")
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.mnist_path, args.seed)))
        return 0

    import torch

    print(f"# bench_core: `python benchmarks/bench_core.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"# {time.strftime('%Y-%m-%d')} | {_machine.describe()} | torch {torch.__version__} "
        f"| CUDA: {torch.cuda.is_available()} | seed {args.seed}"
    )
    print()
    print("| dataset | method | ACC | NMI | ARI | fit s | peak MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dataset in args.datasets:
        for method in args.methods:
            cmd = [sys.executable, __file__, "--one", dataset, method,
                   "--mnist-path", args.mnist_path, "--seed", str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {dataset} | {method} | failed: {proc.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"| {dataset} (n={r['n_samples']}) | {method} | {r['accuracy']:.3f} | "
                f"{r['nmi']:.3f} | {r['ari']:.3f} | {r['seconds']:.1f} | {r['peak_mb']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
