"""Scaling benchmark: a fit streamed from a memmap, and a grid search on Dask workers.

1. Writes ``n_samples x 784`` float32 rows (1,000,000 by default: about 3 GB)
   to a memmap file, then fits ``AutoencoderKMeans`` on it, opened read-only,
   in a fresh subprocess. Reports the peak resident memory of that process
   above its baseline (after imports, with the memmap opened), a sampled peak
   of its anonymous (non file-backed) memory, the seconds per training epoch
   and the rows per second.
2. Runs the same ``GridSearchCV`` over ``AutoencoderKMeans`` on digits with
   ``joblib.parallel_backend('dask')`` on a ``LocalCluster`` of 1 and then 2
   single-threaded worker processes (127.0.0.1 only), and sequentially
   without Dask, and reports wall times.

Usage::

    python benchmarks/bench_scale.py                          # both parts
    python benchmarks/bench_scale.py --parts memmap --n-samples 200000
    python benchmarks/bench_scale.py --parts grid --workers 1 2

Needs the ``distributed`` extra for the grid search
(``pip install -e ".[distributed]"``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _machine

N_FEATURES = 784
N_CENTERS = 10

#: Network and epochs of each grid-search fit: a few seconds per fit, so that the
#: fits, not the scheduling, dominate.
GRID_HIDDEN = (256, 128)
GRID_EPOCHS = 150


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class AnonymousPeak:
    """The peak ``RssAnon`` of this process while in the block, sampled every 50 ms.

    ``VmHWM`` counts the pages of a memmap that the fit has read (the page cache,
    which the kernel can drop); the anonymous memory is what the fit holds itself.
    """

    def __enter__(self):
        self.peak_kib, self._done = _status_kib("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.05):
            self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def write_memmap(path: Path, n_samples: int, seed: int = 0) -> float:
    """Blobs in [0, 1]^784 (10 centres) written to ``path`` in chunks; returns seconds."""
    import numpy as np

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    centers = rng.random((N_CENTERS, N_FEATURES), dtype=np.float32)
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n_samples, N_FEATURES))
    chunk = 50_000
    for a in range(0, n_samples, chunk):
        b = min(a + chunk, n_samples)
        labels = rng.integers(N_CENTERS, size=b - a)
        noise = rng.standard_normal((b - a, N_FEATURES), dtype=np.float32)
        out[a:b] = np.clip(centers[labels] + 0.15 * noise, 0.0, 1.0)
    out.flush()
    del out
    return time.perf_counter() - start


def memmap_child(path: str, n_samples: int, epochs: int) -> dict:
    """Fit on the memmap in this (fresh) process and measure it."""
    import numpy as np

    from skdeepcluster import MLP, AutoencoderKMeans
    from skdeepcluster._clustering import MINIBATCH_MIN_SAMPLES

    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n_samples, N_FEATURES))
    baseline = _status_kib("VmRSS")
    model = AutoencoderKMeans(
        n_clusters=N_CENTERS,
        architecture=MLP((256,)),
        latent_dim=10,
        epochs=epochs,
        batch_size=256,
        refine=None,
        random_state=0,
    )
    with AnonymousPeak() as anonymous:
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
    return {
        "baseline_mib": baseline / 1024,
        "peak_above_baseline_mib": (_status_kib("VmHWM") - baseline) / 1024,
        "peak_anon_mib": anonymous.peak_kib / 1024,
        "fit_s": seconds,
        "n_iter": model.n_iter_,
        "clusterer": (
            type(model.clusterer_).__name__
            if model.clusterer_ is not None
            else ("MiniBatchKMeans" if n_samples >= MINIBATCH_MIN_SAMPLES else "KMeans")
        ),
        "torch_threads": __import__("torch").get_num_threads(),
        "n_labels": int(len(np.unique(model.labels_))),
    }


def time_epochs(path: str, n_samples: int) -> dict:
    """Seconds of one streamed training epoch alone (no validation, encoding, k-means)."""
    import numpy as np
    import torch

    from skdeepcluster import MLPAutoencoder
    from skdeepcluster._data import StreamSource
    from skdeepcluster.training import make_optimizer, train_autoencoder

    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n_samples, N_FEATURES))
    torch.manual_seed(0)
    module = MLPAutoencoder(N_FEATURES, (256,), 10)
    source = StreamSource(X, torch.device("cpu"), 256)
    start = time.perf_counter()
    train_autoencoder(
        module,
        source,
        epochs=1,
        batch_size=256,
        optimizer=make_optimizer("adam", module.parameters(), learning_rate=1e-3),
        generator=torch.Generator().manual_seed(0),
    )
    return {"epoch_s": time.perf_counter() - start}


def run_memmap(n_samples: int, epochs: int, directory: str | None) -> list[str]:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "X.f32"
        write_s = write_memmap(path, n_samples)
        size_gb = path.stat().st_size / 1e9
        print(f"# wrote {size_gb:.2f} GB in {write_s:.0f} s", file=sys.stderr, flush=True)
        results = {}
        for part in ("fit", "epoch"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", part, str(path), str(n_samples),
                 str(epochs)],
                check=True,
                capture_output=True,
                text=True,
            )
            results.update(json.loads(out.stdout.strip().splitlines()[-1]))
    r = results
    return [
        "| data | fit s | epochs | s / epoch (training only) | rows / s | "
        "peak RSS above baseline | peak anonymous memory | clusterer |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| {n_samples:,} x {N_FEATURES} float32 memmap ({size_gb:.2f} GB) | "
        f"{r['fit_s']:.0f} | {r['n_iter']} | {r['epoch_s']:.0f} | "
        f"{n_samples / r['epoch_s']:,.0f} | {r['peak_above_baseline_mib']:.0f} MiB | "
        f"{r['peak_anon_mib']:.0f} MiB | {r['clusterer']} |",
        "",
        f"Baseline (interpreter, torch, skdeepcluster, memmap opened): "
        f"{r['baseline_mib']:.0f} MiB; torch threads {r['torch_threads']}.",
    ]


def grid_search(backend_workers: int | None, n_jobs_torch: int | None) -> float:
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from skdeepcluster import MLP, AutoencoderKMeans

    X, _ = load_digits(return_X_y=True)
    X = X / 16.0
    model = AutoencoderKMeans(
        n_clusters=10,
        architecture=MLP(GRID_HIDDEN),
        epochs=GRID_EPOCHS,
        refine=None,
        n_init=3,
        random_state=0,
        n_jobs=n_jobs_torch,
    )
    grid = {"latent_dim": [5, 10], "learning_rate": [1e-3, 3e-3], "batch_size": [64, 128]}
    search = GridSearchCV(model, grid, cv=2)
    if backend_workers is None:
        start = time.perf_counter()
        search.fit(X)
        return time.perf_counter() - start
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=backend_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        client.wait_for_workers(backend_workers, timeout=120)
        client.run(__import__, "skdeepcluster")  # imports (torch) before the clock starts
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search.fit(X)
        return time.perf_counter() - start


def run_grid(workers: list[int]) -> list[str]:
    rows = [
        "| backend | workers | torch threads per fit | wall s | speed-up vs 1 worker |",
        "|---|---:|---|---:|---:|",
    ]
    import torch

    seq = grid_search(None, None)
    rows.append(
        f"| sequential (no Dask) | - | torch default ({torch.get_num_threads()}) | {seq:.1f} | |"
    )
    seq1 = grid_search(None, 1)
    rows.append(f"| sequential (no Dask) | - | 1 (`n_jobs=1`) | {seq1:.1f} | |")
    base = None
    for k in workers:
        seconds = grid_search(k, 1)
        base = base or seconds
        rows.append(f"| Dask LocalCluster | {k} | 1 | {seconds:.1f} | {base / seconds:.2f}x |")
    return rows


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        part, path, n, epochs = sys.argv[2:6]
        fn = memmap_child if part == "fit" else time_epochs
        args = (path, int(n), int(epochs)) if part == "fit" else (path, int(n))
        print(json.dumps(fn(*args)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["memmap", "grid"])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--dir", default=None, help="folder for the memmap file")
    args = parser.parse_args(argv)

    import torch

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"# bench_scale: `python benchmarks/bench_scale.py {' '.join(sys.argv[1:])}`")
    print(
        f"# {time.strftime('%Y-%m-%d')} | {_machine.describe()} | torch {torch.__version__} "
        f"| load {load}"
    )
    if "memmap" in args.parts:
        print()
        print("\n".join(run_memmap(args.n_samples, args.epochs, args.dir)))
    if "grid" in args.parts:
        print()
        print(
            "GridSearchCV(AutoencoderKMeans) on digits: 8 candidates x 2 folds and the "
            f"refit (hidden {GRID_HIDDEN}, {GRID_EPOCHS} epochs each)."
        )
        print()
        print("\n".join(run_grid(args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
