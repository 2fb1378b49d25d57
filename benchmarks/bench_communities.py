"""Seconds and memory of the clustering stage of ``clusterer='auto'`` at large n.

The stage runs :func:`skdeepcluster._communities.fit_graph_communities` (the
communities of the neighbour graph), k-means and the ``'auto'`` rule
(:func:`~skdeepcluster._communities.prefer_communities`), as the estimator
does after the layout. It stands in for the embedding and graph of the large
benchmark (``bench_large.py``) without their hour-long fits: a 10-D mixture of
10 Gaussian clusters, and a graph of 15 random neighbours per row within the
row's cluster, symmetrized (about 30 edges per row, as the fuzzy graphs of the
large benchmark). Each size runs in a fresh process; peak is ``ru_maxrss``
before and after the stage.

Usage::

    python benchmarks/bench_communities.py --sizes 250000 1000000

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import _machine
import numpy as np


def stand_in(n: int, k: int = 10, seed: int = 0):
    """The embedding and graph that stand in for the large benchmark's."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    y = rng.integers(k, size=n)
    embedding = rng.normal(scale=4, size=(k, 10))[y] + rng.normal(size=(n, 10))
    order = np.argsort(y, kind="stable")
    starts, sizes = np.searchsorted(y[order], np.arange(k)), np.bincount(y, minlength=k)
    rows = np.repeat(np.arange(n), 15)
    cols = order[starts[y][rows] + rng.integers(0, sizes[y][rows])]
    weights = rng.random(rows.shape[0]).astype(np.float32)
    graph = sparse.coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    return embedding, graph


def child(n: int) -> dict:
    """One size, in this process."""
    from skdeepcluster._clustering import fit_clusterer
    from skdeepcluster._communities import fit_graph_communities, prefer_communities
    from skdeepcluster._plan import kmeans_kind

    embedding, graph = stand_in(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    communities = fit_graph_communities(embedding, graph, 10, 12345)
    middle = time.perf_counter()
    _, _, labels = fit_clusterer(
        embedding, clusterer=kmeans_kind(n), n_clusters=10, n_init=10, random_state=0
    )
    prefer_communities(communities, labels, graph)
    end = time.perf_counter()
    return {
        "n": n,
        "edges": int(graph.nnz),
        "communities_s": middle - start,
        "kmeans_and_rule_s": end - middle,
        "before_mib": before,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    print(_machine.describe())
    print("| rows | edges | communities s | k-means + rule s | peak MiB (before the stage) |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n)], check=True, capture_output=True,
            text=True,
        ).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {r['n']:,} | {r['edges']:,} | {r['communities_s']:.1f} | "
            f"{r['kmeans_and_rule_s']:.1f} | {r['peak_mib']:.0f} ({r['before_mib']:.0f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
