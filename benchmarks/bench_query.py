"""How new points are searched and placed: the HNSW settings of ``predict`` through the embedding.

A fitted model (``bench_partitioned.py`` writes one per sample: ``DIR/runs/
s<rows>-seed<seed>.model.pkl``) labels ``--rows`` new rows read from a shard of
the same folder (``X-<shard>.npy``, ``labels-<shard>.npy``) on one thread.

1. **The search.** The queries are those rows' scaled codes, as
   ``NeighborEmbedding.transform`` searches them; the data are the model's
   training codes. For each faiss ``IndexHNSWFlat`` setting (links per node
   ``M`` and ``efConstruction``, built on one thread as the library builds it)
   and each ``efSearch``: the build's seconds, the search's seconds per 10,000
   queries and the recall@15 of ``--exact`` queries against the exact
   neighbours (float64).
2. **The labels.** ``model.predict`` of the rows with the library's settings,
   then with the graph's (``M=32, efConstruction=64, efSearch=64``): seconds per
   10,000 rows (after the index's build), ACC of each, labels that differ.

Usage::

    python benchmarks/bench_query.py --dir /work/bp/10m --sample 1000000 --rows 50000
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import _machine
import numpy as np
import torch

K = 15
SETTINGS = ((32, 64), (16, 48), (16, 32))
EF_SEARCH = (24, 32, 48, 64)


def load(args):
    """The model, ``--rows`` rows of shard ``--shard`` scaled to [0, 1], their labels."""
    model = pickle.loads(
        (args.dir / "runs" / f"s{args.sample}-seed{args.seed}.model.pkl").read_bytes()
    )
    X = np.load(args.dir / f"X-{args.shard:05d}.npy", mmap_mode="r")[: args.rows]
    y = np.load(args.dir / f"labels-{args.shard:05d}.npy")[: args.rows]
    return model, np.asarray(X, dtype=np.float32) / np.float32(255), y


def queries_and_data(model, X):
    """The scaled float32 codes that ``transform`` searches, and the training codes."""
    from skdeepcluster.embedding._neighbor_embedding import _scaled_float32
    from skdeepcluster.training._inference import encode_array

    stage = model.second_stage_
    codes = encode_array(model.autoencoder_, model._check_new_X(X), device=torch.device("cpu"))
    if stage.scaler is not None:
        codes = stage.scaler.transform(codes)
    ne = stage.reducer
    return _scaled_float32(codes, ne._scale), np.ascontiguousarray(ne._index.data, np.float32)


def search_table(queries, data, n_exact: int) -> list[str]:
    import faiss

    faiss.omp_set_num_threads(1)
    exact = torch.cdist(torch.as_tensor(queries[:n_exact]).double(), torch.as_tensor(data).double())
    truth = exact.topk(K, largest=False).indices.numpy()
    rows = []
    for m, ef_construction in SETTINGS:
        start = time.perf_counter()
        index = faiss.IndexHNSWFlat(data.shape[1], m)
        index.hnsw.efConstruction = ef_construction
        index.add(data)
        build = time.perf_counter() - start
        size = faiss.serialize_index(index).nbytes / data.shape[0]
        for ef_search in EF_SEARCH:
            index.hnsw.efSearch = ef_search
            start = time.perf_counter()
            _, found = index.search(queries, K)
            seconds = (time.perf_counter() - start) / queries.shape[0] * 10_000
            pairs = zip(found[:n_exact], truth, strict=True)
            recall = np.mean([len(set(a) & set(b)) / K for a, b in pairs])
            rows.append(f"| {m} | {ef_construction} | {build:.1f} | {size:.0f} | {ef_search} "
                        f"| {seconds:.3f} | {recall:.4f} |")  # fmt: skip
    return rows


def label_table(model, X, y) -> list[str]:
    import skdeepcluster.embedding._neighbors as neighbors
    from skdeepcluster.metrics import cluster_accuracy

    library = (neighbors.HNSW_QUERY_M, neighbors.HNSW_QUERY_EF_CONSTRUCTION,
               neighbors.HNSW_EF_QUERY)  # fmt: skip
    rows, first = [], None
    for name, (m, ef_construction, ef_search) in (("library", library), ("graph's", (32, 64, 64))):
        neighbors.HNSW_QUERY_M, neighbors.HNSW_QUERY_EF_CONSTRUCTION = m, ef_construction
        neighbors.HNSW_EF_QUERY = ef_search
        model.second_stage_.reducer._index._tree = None
        model.predict(X[:10])  # builds the index
        start = time.perf_counter()
        labels = model.predict(X)
        seconds = (time.perf_counter() - start) / X.shape[0] * 10_000
        first = labels if first is None else first
        rows.append(f"| {name}: M={m}, efConstruction={ef_construction}, efSearch={ef_search} "
                    f"| {seconds:.2f} | {cluster_accuracy(y, labels):.4f} "
                    f"| {int((labels != first).sum())} |")  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="bench_partitioned.py's folder")
    parser.add_argument("--sample", type=int, default=1_000_000, help="the fit's sample rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=int, default=50, help="the shard the new rows come from")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--exact", type=int, default=2_000, help="queries with exact neighbours")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, X, y = load(args)
    print(f"{_machine.describe()}\n")
    queries, data = queries_and_data(model, X)
    print(f"Search: {queries.shape[0]:,} queries among {data.shape[0]:,} codes, one thread\n")
    print("| M | efConstruction | build s | bytes per row | efSearch | s per 10,000 | recall@15 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(search_table(queries, data, args.exact)), flush=True)
    print(f"\n`predict` of {X.shape[0]:,} new rows, one thread\n")
    print("| search | s per 10,000 rows | ACC | labels differing from the first row |")
    print("|---|---:|---:|---:|")
    print("\n".join(label_table(model, X, y)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
