"""Benchmark suite: defaults, documented best configurations and simple baselines, per stage.

Data sets (the label count is the number of clusters asked for):

- ``digits``: scikit-learn's 1,797 8 x 8 digits, ``X / 16``;
- ``mnist``: the MNIST test set (10,000 x 784, ``../shared/data/mnist``);
- ``fashion``: Fashion-MNIST, all 70,000 images (the Debian package
  ``dataset-fashion-mnist``, installed with ``apt-get`` when missing; never
  needed by CI);
- ``signals``: 3,000 generated 1-D signals of length 128 (the
  cylinder-bell-funnel problem of Saito, 1994: three shapes of random
  onset, length and height in unit Gaussian noise), three classes;
- ``blobs``: 5,000 generated points in 50 dimensions around 8 centres of
  unequal spread (``make_blobs``, standard deviations 1 to 4);
- ``wine``: scikit-learn's 178 wines x 13 chemical measurements, three
  cultivars;
- only when asked for: ``signals-20k``, ``blobs-20k`` (the same generators
  with 20,000 rows) and ``mnist-pca50``, ``fashion-pca50`` (the first 50
  principal components of the images): few features but many rows, where
  ``architecture='auto'`` has to decide whether a network pays, and a test of
  PCA before the network;
- the test half of the suite (issue 38: no rule or constant was tuned on
  them): ``mnist-permuted`` (the MNIST test set, its pixels permuted by one
  fixed permutation: no spatial structure), ``mnist-14`` (2 x 2 average
  pooling, 196 pixels), ``mnist-noisy`` (inverted, in Gaussian noise of 0.3),
  ``signals-warp`` (20,000 standardized signals of 48 samples, ten shapes
  under random shifts, time warps and noise), ``manifolds-noise`` (20,000
  points on six closed curves in 10 rotated dimensions, plus 40 irrelevant
  features), ``tabular-2k`` / ``tabular-30k`` / ``tabular-wide``
  (``make_classification``: 2,000 x 10 in four classes, 30,000 x 60 in six,
  6,000 x 2,000 in five), and scikit-learn's ``iris`` and ``breast-cancer``.

Configurations: ``KMeans`` (10 restarts), ``scaler + NE + KMeans`` (the
neighbour embedding of the standardized input, no autoencoder), ``PCA + KMeans``
(at most 50 principal components), ``defaults``
(``AutoencoderKMeans(n_clusters=k, random_state=seed)``), ``network
(architecture='mlp')`` (the defaults before they could skip the network on
small data), ``k-means (clusterer='kmeans')`` (the defaults before
``clusterer='auto'`` could choose the neighbour graph's communities) and,
where the documentation names one, ``best``. Every fit runs
alone in a fresh process (``--threads`` torch/BLAS threads) and reports ACC
(Hungarian matching), the mean ARI between the partitions of the seeds (how
stable the configuration is), NMI, the fit's seconds and the seconds of each stage
(validation, pre-training, encoding, k-NN graph, layout, clustering,
refinement, self-labelling with any self-training rounds; measured by wrapping
the functions behind them, so pipeline baselines report the neighbour
embedding's stages only).

Usage::

    python benchmarks/bench_suite.py                                  # everything but fashion
    python benchmarks/bench_suite.py --datasets digits wine --seeds 0
    python benchmarks/bench_suite.py --datasets fashion --configs defaults --json out.jsonl

Prints a markdown table (and appends one JSON line per fit to ``--json``);
``benchmarks/results/suite.md`` holds the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _machine
import numpy as np
from bench_core import DEFAULT_MNIST
from bench_core import load as load_core  # digits and the MNIST test set, as bench_core
from bench_large import StageTimer

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ["digits", "mnist", "signals", "blobs", "wine", "fashion"]
EXTRA = ["signals-20k", "blobs-20k", "mnist-pca50", "fashion-pca50"]  # only when asked for
#: Data sets no rule or constant was tuned on (issue 38): the test half of the suite.
UNSEEN = [
    "mnist-permuted", "mnist-14", "mnist-noisy", "signals-warp", "manifolds-noise",
    "tabular-2k", "tabular-30k", "tabular-wide", "iris", "breast-cancer",
]
CONFIGS = [
    "KMeans", "scaler + NE + KMeans", "PCA + KMeans", "defaults", "network (architecture='mlp')",
    "no network (architecture='none')", "best", "k-means (clusterer='kmeans')",
]
STAGES = [
    "validation",
    "pre-training",
    "encoding",
    "k-NN graph",
    "layout",
    "clustering",
    "refinement",
    "self-labelling",
]


def cylinder_bell_funnel(n: int, length: int = 128, seed: int = 0):
    """``n`` cylinder / bell / funnel signals in unit noise (Saito, 1994), and their classes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    t = np.arange(length)[None]
    start = rng.integers(16, 32, n)[:, None]
    end = start + rng.integers(32, 96, n)[:, None]
    height = rng.normal(6.0, 1.0, (n, 1))
    inside = (t >= start) & (t <= end)
    ramp = (t - start) / (end - start)
    shape = np.select([y[:, None] == 0, y[:, None] == 1], [np.ones_like(ramp), ramp], 1 - ramp)
    X = height * inside * shape + rng.normal(0.0, 1.0, (n, length))
    return X.astype(np.float32), y


def warped_signals(n: int = 20_000, length: int = 48, n_classes: int = 10, seed: int = 0):
    """``n`` 1-D signals of ``n_classes`` shapes under random shifts, time warps and noise.

    Each class is a sum of three Gaussian bumps of random place, width and sign
    (drawn once); each signal shifts it by up to 8 samples, stretches time by a
    factor in [0.8, 1.25], scales it by a factor in [0.7, 1.3] and adds unit
    noise. Features are standardized, as a user would give them.
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.15, 0.85, (n_classes, 3))
    widths = rng.uniform(0.03, 0.12, (n_classes, 3))
    signs = rng.choice([-3.0, 3.0], (n_classes, 3))
    y = np.arange(n) % n_classes
    t = np.linspace(0.0, 1.0, length)[None, :, None]
    warp = rng.uniform(0.8, 1.25, (n, 1, 1))
    shift = rng.integers(-8, 9, (n, 1, 1)) / length
    u = (t - 0.5) * warp + 0.5 + shift
    bumps = signs[y][:, None] * np.exp(-0.5 * ((u - centres[y][:, None]) / widths[y][:, None]) ** 2)
    X = bumps.sum(-1) * rng.uniform(0.7, 1.3, (n, 1)) + rng.normal(0.0, 1.0, (n, length))
    X = (X - X.mean(0)) / X.std(0)
    return X.astype(np.float32), y


def noisy_manifolds(n: int = 20_000, n_classes: int = 6, n_noise: int = 40, seed: int = 0):
    """Curves (one per class) in 10 dimensions, rotated at random, plus irrelevant features.

    Class ``c`` is a closed curve ``(cos s, sin s, cos 2s, ...)`` of its own radius
    and offset, each point jittered; ``n_noise`` standard normal features carry
    nothing about the class.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    s = rng.uniform(0, 2 * np.pi, n)
    freq = np.arange(1, 6)
    curve = np.concatenate([np.cos(freq * s[:, None]), np.sin(freq * s[:, None])], axis=1)
    offsets = rng.normal(0.0, 1.2, (n_classes, 10))
    X = curve * rng.uniform(0.6, 1.4, n_classes)[y, None] + offsets[y]
    X = X + rng.normal(0.0, 0.25, X.shape)
    rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    X = np.hstack([X @ rotation, rng.normal(0.0, 1.0, (n, n_noise))])
    return X.astype(np.float32), y


def tabular(n: int, n_features: int, n_informative: int, n_classes: int, seed: int = 0):
    """A generated mixture (``make_classification``): informative, redundant and noise features."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n, n_features, n_informative=n_informative, n_redundant=min(4, n_features - n_informative),
        n_classes=n_classes, n_clusters_per_class=1, class_sep=2.0, weights=None,
        random_state=seed,
    )
    return X.astype(np.float32), y


def _mnist_variant(name: str, mnist_path: str):
    X, y = load_core("mnist", mnist_path)
    if name == "mnist-permuted":  # one fixed permutation of the pixels: no spatial structure
        return X[:, np.random.default_rng(0).permutation(X.shape[1])], y, None
    if name == "mnist-14":  # 2 x 2 average pooling
        return X.reshape(-1, 14, 2, 14, 2).mean((2, 4)).reshape(-1, 196), y, (1, 14, 14)
    # inverted, in Gaussian noise of standard deviation 0.3
    noise = np.random.default_rng(0).normal(0.0, 0.3, X.shape)
    return (1.0 - X + noise).astype(np.float32), y, (1, 28, 28)


def _fashion():
    from skdeepcluster.datasets import load_fashion_mnist

    if not FASHION_DIR.is_dir():  # benchmark only: install the Debian package once
        subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], check=True)
    X, y = load_fashion_mnist(path=FASHION_DIR, subset="all", return_X_y=True)
    return X, y


def load(name: str, mnist_path: str):
    """``(X, y, image_shape)`` of a data set of the suite."""
    from sklearn import datasets

    if name in ("digits", "mnist"):
        return (*load_core(name, mnist_path), (1, 8, 8) if name == "digits" else (1, 28, 28))
    if name == "fashion":
        return (*_fashion(), (1, 28, 28))
    if name in ("signals", "signals-20k"):
        return (*cylinder_bell_funnel(3000 if name == "signals" else 20_000), None)
    if name in ("blobs", "blobs-20k"):
        X, y = datasets.make_blobs(
            5000 if name == "blobs" else 20_000, n_features=50, centers=8,
            cluster_std=np.linspace(1.0, 4.0, 8), random_state=0,
        )
        return X.astype(np.float32), y, None
    if name in ("mnist-pca50", "fashion-pca50"):
        from sklearn.decomposition import PCA

        X, y, _ = load(name.removesuffix("-pca50"), mnist_path)
        return PCA(50, random_state=0).fit_transform(X).astype(np.float32), y, None
    if name == "wine":
        X, y = datasets.load_wine(return_X_y=True)
        return X.astype(np.float32), y, None
    if name.startswith("mnist-"):
        return _mnist_variant(name, mnist_path)
    if name == "signals-warp":
        return (*warped_signals(), None)
    if name == "manifolds-noise":
        return (*noisy_manifolds(), None)
    if name in TABULAR:
        return (*tabular(*TABULAR[name]), None)
    if name in ("iris", "breast-cancer"):
        loader = datasets.load_iris if name == "iris" else datasets.load_breast_cancer
        X, y = loader(return_X_y=True)
        return X.astype(np.float32), y, None
    raise ValueError(f"unknown data set {name!r}")


#: rows, features, informative features, classes of the generated tabular sets
TABULAR = {
    "tabular-2k": (2000, 10, 6, 4),
    "tabular-30k": (30_000, 60, 12, 6),
    "tabular-wide": (6000, 2000, 20, 5),
}


def best(name: str, k: int, seed: int, image_shape):
    """The documented best configuration of a data set, or None."""
    from skdeepcluster import AutoencoderKMeans, ImageAugment, SelfLabel

    if name == "mnist":  # README, "best on MNIST": the defaults + six augmented rounds
        return AutoencoderKMeans(
            n_clusters=k, architecture="mlp", image_shape=image_shape,
            self_label=SelfLabel(rounds=6, augment=ImageAugment(0.1)), random_state=seed,
        )
    if name == "fashion":  # README, "best on Fashion-MNIST": + neighbour consistency, flips
        return AutoencoderKMeans(
            n_clusters=k, architecture="mlp", image_shape=image_shape,
            self_label=SelfLabel(consistency=3000, augment=ImageAugment(0.1, flip=True)),
            random_state=seed,
        )
    return None


def build(config: str, name: str, k: int, seed: int, image_shape, n_features: int = 0):
    from sklearn.cluster import KMeans
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skdeepcluster import AutoencoderKMeans, NeighborEmbedding

    if config == "KMeans":
        return KMeans(n_clusters=k, n_init=10, random_state=seed)
    if config == "scaler + NE + KMeans":
        return make_pipeline(
            StandardScaler(),
            NeighborEmbedding(n_components=k, random_state=seed),
            KMeans(n_clusters=k, n_init=10, random_state=seed),
        )
    if config == "PCA + KMeans":  # at most 50 components, as input_pca='auto'
        from sklearn.decomposition import PCA

        return make_pipeline(
            PCA(n_components=min(50, n_features), random_state=seed),
            KMeans(n_clusters=k, n_init=10, random_state=seed),
        )
    if config == "defaults":
        return AutoencoderKMeans(n_clusters=k, random_state=seed)
    if config == "network (architecture='mlp')":  # the defaults before issue 16
        return AutoencoderKMeans(n_clusters=k, architecture="mlp", random_state=seed)
    if config == "no network (architecture='none')":
        return AutoencoderKMeans(n_clusters=k, architecture="none", random_state=seed)
    if config == "best":
        return best(name, k, seed, image_shape)
    if config == "k-means (clusterer='kmeans')":  # the defaults before clusterer='auto'
        return AutoencoderKMeans(n_clusters=k, clusterer="kmeans", random_state=seed)
    raise ValueError(f"unknown configuration {config!r}")


class SuiteTimer(StageTimer):
    """The large benchmark's stage timer, plus input validation."""

    def install(self):
        from skdeepcluster import _estimator

        super().install()
        self.wrap(_estimator.AutoencoderKMeans, "_validate_fit_data", "validation")


def child(name: str, config: str, seed: int, mnist_path: str) -> dict | None:
    """One fit in this (fresh) process."""
    from skdeepcluster.metrics import clustering_scores

    X, y, image_shape = load(name, mnist_path)
    k = len(np.unique(y))
    model = build(config, name, k, seed, image_shape, X.shape[1])
    if model is None:
        return None
    timer = SuiteTimer()
    timer.install()
    start = time.perf_counter()
    labels = model.fit_predict(X)
    fit_s = time.perf_counter() - start
    scores = clustering_scores(y, labels)
    return {
        "dataset": name,
        "config": config,
        "seed": seed,
        "acc": scores["accuracy"],
        "nmi": scores["nmi"],
        "fit_s": fit_s,
        "stages": dict(timer.seconds),
        "architecture": getattr(model, "architecture_", None),
        "clusterer": type(getattr(model, "clusterer_", None)).__name__,
        "machine": _machine.numerics(),
        "labels": np.asarray(labels).tolist(),  # for the ARI between seeds; not saved
    }


def run_one(name: str, config: str, seed: int, args) -> dict | None:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.update(dict(item.split("=", 1) for item in args.env))
    command = [sys.executable, __file__, "--child", name, config, str(seed)]
    command += ["--mnist-path", args.mnist_path]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def stability(runs: list[dict]) -> str:
    """Mean ARI between the partitions of every pair of seeds ('' for one seed)."""
    from sklearn.metrics import adjusted_rand_score

    labels = [r["labels"] for r in runs if "labels" in r]
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    return f"{np.mean([adjusted_rand_score(a, b) for a, b in pairs]):.3f}" if pairs else ""


def table(results: list[dict]) -> list[str]:
    head = "| data | configuration | ACC per seed | ACC | ARI between seeds | NMI | fit s | "
    head += " | ".join(STAGES) + " |"
    lines = [head, "|" + "---|" * (7 + len(STAGES))]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["config"]), []).append(r)
    for (name, config), runs in groups.items():
        accs = " / ".join(f"{r['acc']:.3f}" for r in runs)
        mean = {key: np.mean([r[key] for r in runs]) for key in ("acc", "nmi", "fit_s")}
        stages = " | ".join(
            f"{np.mean([r['stages'].get(s, 0.0) for r in runs]):.1f}" for s in STAGES
        )
        lines.append(
            f"| {name} | {config} | {accs} | {mean['acc']:.3f} | {stability(runs)} "
            f"| {mean['nmi']:.3f} "
            f"| {mean['fit_s']:.1f} | {stages} |"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=DATASETS[:-1], choices=DATASETS + EXTRA + UNSEEN
    )
    parser.add_argument(
        "--configs", nargs="+", default=CONFIGS[:5] + CONFIGS[6:7], choices=CONFIGS
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch/BLAS threads per fit")
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per fit")
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="KEY=VALUE",
        help="environment of each fit, e.g. MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=avx2",
    )
    parser.add_argument("--child", nargs=3, metavar=("DATASET", "CONFIG", "SEED"))
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        name, config, seed = args.child
        print(json.dumps(child(name, config, int(seed), args.mnist_path)))
        return 0
    results = []
    for name in args.datasets:
        for config in args.configs:
            for seed in args.seeds:
                result = run_one(name, config, seed, args)
                if result is None:
                    break  # no documented best configuration for this data set
                results.append(result)
                saved = {k: v for k, v in result.items() if k != "labels"}
                print(json.dumps(saved), flush=True)
                if args.json is not None:
                    with args.json.open("a") as f:
                        f.write(json.dumps(saved) + "\n")
    if results:
        print(f"\n{_machine.describe(results[0]['machine'])} per fit; env: {args.env or 'as is'}")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
