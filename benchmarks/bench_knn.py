"""k-nearest-neighbour search: recall and seconds of the candidate methods on the same data.

The data are the standardized autoencoder codes of the large benchmark
(``bench_large.py --save-codes``), or, with ``--pca``, the standardized
10-component PCA of its images (no training needed). Each method searches
the ``k = 15`` neighbours of every row among all rows (the graph of
``NeighborEmbedding.fit``) and of 10,000 held-out rows (``transform``);
recall@15 is measured against the exact graph of 5,000 random rows.

Candidates, through the library's ``NeighborIndex``: the exact tiled torch
search (``'exact'``), scipy's KD-tree (``'kdtree'``, exact), faiss's HNSW
graph (``'hnsw'``, the default for large data) and pynndescent
(``'nndescent'``, the umap-learn extra); and usearch (HNSW), where installed.

Usage::

    python benchmarks/bench_knn.py --codes /tmp/skdeepcluster-large/codes_250000.npy
    python benchmarks/bench_knn.py --pca --sizes 60000 250000 --methods kdtree hnsw

Prints a markdown table; ``benchmarks/results/large.md`` holds the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import _machine
import numpy as np

K = 15
N_CHECK = 5_000


def exact_rows(data, rows, k):
    import torch

    from skdeepcluster.embedding import knn_search

    t = torch.as_tensor(data)
    return knn_search(t[rows], t, k + 1)[1].numpy()[:, 1:]  # without the row itself


def run(method: str, data: np.ndarray, k: int, seed: int):
    """Graph of every row (self excluded); returns (seconds, neighbours of every row)."""
    import torch

    from skdeepcluster.embedding import NeighborIndex

    start = time.perf_counter()
    if method == "usearch":  # a candidate we measured, not one the library uses
        from usearch.index import Index

        ind = Index(ndim=data.shape[1], metric="l2sq", dtype="f32")
        ind.add(np.arange(data.shape[0]), data, threads=os.cpu_count())
        index = ind.search(data, k + 1, threads=os.cpu_count()).keys[:, 1:]
    else:  # the library's own code path: 'exact', 'kdtree', 'hnsw' (faiss), 'nndescent'
        index = NeighborIndex(data, method, random_state=seed).graph(k, torch.device("cpu"))
        index = index[1].numpy()
    return time.perf_counter() - start, index


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(a) & set(b)) for a, b in zip(found, truth, strict=True))
    return hits / truth.size


def load(args, n):
    if args.codes:
        return np.load(args.codes, mmap_mode="r")[:n].astype(np.float32)
    from bench_large import N_FEATURES, build
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    data_path, _ = build(args.rows, args.dir, args.mnist_path)
    X = np.memmap(data_path, dtype=np.float32, mode="r", shape=(args.rows, N_FEATURES))[:n]
    pca = PCA(n_components=10, random_state=0).fit(X[: min(n, 50_000)])
    return StandardScaler().fit_transform(pca.transform(X)).astype(np.float32)


def main(argv=None) -> int:
    from bench_core import DEFAULT_MNIST
    from bench_large import DEFAULT_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", default=None, help=".npy of codes (n, d)")
    parser.add_argument("--pca", action="store_true", help="PCA-10 of the images instead")
    parser.add_argument("--sizes", type=int, nargs="*", default=[60_000, 250_000])
    parser.add_argument(
        "--methods", nargs="*", default=["exact", "kdtree", "hnsw", "nndescent", "usearch"]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", default=DEFAULT_DIR)
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    args = parser.parse_args(argv)
    lines = ["| rows | method | graph s | recall@15 |", "|---|---|---|---|"]
    for n in args.sizes:
        data = load(args, n)
        rows = np.random.default_rng(0).choice(n, min(N_CHECK, n), replace=False)
        truth = exact_rows(data, rows, K)
        for method in args.methods:
            try:
                seconds, index = run(method, data, K, seed=0)
            except ImportError as exc:
                print(f"{method}: skipped ({exc})", flush=True)
                continue
            line = f"| {n:,} | {method} | {seconds:.1f} | {recall(index[rows], truth):.4f} |"
            print(line, flush=True)
            lines.append(line)
    print(_machine.describe())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
