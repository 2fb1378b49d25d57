"""Large benchmark: the defaults on up to 1,000,000 deformed MNIST digits.

The data set is built once, the way MNIST8M / infiMNIST was built from MNIST:
the 10,000 images of the MNIST test set (``../shared/data/mnist``), followed by
deformed copies of them -- a random rotation (up to 15 degrees), scaling
(0.9 to 1.1) and shift (up to 3 pixels), then an elastic distortion (a random
displacement field smoothed by a Gaussian of 4 pixels, amplitude 34 pixels,
as in Simard et al., 2003) -- labels carried over. It is written to a float32
memmap of ``n_rows x 784`` (3.1 GB for a million rows) with its labels, from a
seeded generator: chunk ``i`` draws from the ``i``-th child of
``SeedSequence(seed)``, so anyone rebuilds the same rows.

Each size then runs ``AutoencoderKMeans(n_clusters=10, random_state=seed)``
(the defaults) on the first ``n`` rows of the memmap in a fresh process and
reports ACC, NMI, the seconds of each stage (pre-training, encoding, k-NN
graph, layout, clustering, refinement, self-labelling) and the peak resident
memory.
``--unseen`` fits on ``n`` deformed copies and predicts the 10,000 originals
(never seen in ``fit``).

Usage::

    python benchmarks/bench_large.py --build 1000000            # the data, once
    python benchmarks/bench_large.py --sizes 60000 250000 1000000
    python benchmarks/bench_large.py --sizes 60000 --unseen
    python benchmarks/bench_large.py --sizes 250000 --save-codes /tmp   # for bench_knn.py

Prints a markdown table; ``benchmarks/results/large.md`` holds the results.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import _machine
import numpy as np
from bench_core import DEFAULT_MNIST
from bench_scale import AnonymousPeak, _status_kib  # peak and resident memory

DEFAULT_DIR = Path(os.environ.get("SKDEEPCLUSTER_BENCH_DATA", "/tmp/skdeepcluster-large"))
N_FEATURES = 784
N_ORIGINALS = 10_000
CHUNK = 10_000


def _elastic_fields(n: int, generator, *, sigma=4.0, alpha=34.0):
    """Smoothed random displacement fields, (n, 28, 28, 2), in grid units ([-1, 1])."""
    import torch

    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    field = 2 * torch.rand((n * 2, 1, 28, 28), generator=generator) - 1
    padded = torch.nn.functional.pad(field, (radius,) * 4, mode="reflect")[:, 0]
    # The separable Gaussian as two products with a banded matrix: the same numbers as
    # two one-channel conv2d (checked equal), five times faster on a 2-core EPYC.
    band = torch.zeros(28 + 2 * radius, 28)
    for j in range(28):
        band[j : j + 2 * radius + 1, j] = kernel
    field = band.T @ (padded @ band)
    # alpha pixels times the smoothed field, in grid units (a pixel is 2 / 28 of them).
    return (alpha * 2.0 / 28.0 * field).view(n, 2, 28, 28).permute(0, 2, 3, 1)


def deform(images: np.ndarray, seed_sequence: np.random.SeedSequence) -> np.ndarray:
    """Randomly rotated, scaled, shifted and elastically distorted copies of 28 x 28 images."""
    import torch

    generator = torch.Generator().manual_seed(int(seed_sequence.generate_state(1)[0]))
    n = images.shape[0]
    x = torch.as_tensor(images, dtype=torch.float32).view(n, 1, 28, 28)
    u = 2 * torch.rand((n, 4), generator=generator) - 1
    angle, scale = u[:, 0] * np.radians(15.0), 1.0 + 0.1 * u[:, 1]
    tx, ty = u[:, 2] * 3 * 2 / 28, u[:, 3] * 3 * 2 / 28
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, [n, 1, 28, 28], align_corners=False)
    grid = grid + _elastic_fields(n, generator)
    out = torch.nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    return out.clamp_(0, 1).view(n, N_FEATURES).numpy()


def paths(directory: Path, n_rows: int) -> tuple[Path, Path]:
    return (
        directory / f"mnist_deformed_{n_rows}.f32",
        directory / f"mnist_deformed_{n_rows}.labels.npy",
    )


def build(n_rows: int, directory: Path, mnist_path: str, seed: int = 0) -> tuple[Path, Path]:
    """Write (once) the originals and ``n_rows - 10,000`` deformed copies; return the paths."""
    from skdeepcluster.datasets import load_mnist

    data_path, label_path = paths(directory, n_rows)
    meta = directory / f"mnist_deformed_{n_rows}.json"
    wanted = {"n_rows": n_rows, "seed": seed, "version": 1}
    if meta.exists() and json.loads(meta.read_text()) == wanted:
        return data_path, label_path
    directory.mkdir(parents=True, exist_ok=True)
    X, y = load_mnist(path=mnist_path, subset="test", return_X_y=True)
    X = np.asarray(X, dtype=np.float32)
    out = np.memmap(data_path, dtype=np.float32, mode="w+", shape=(n_rows, N_FEATURES))
    out[:N_ORIGINALS] = X
    labels = np.empty(n_rows, dtype=np.int64)
    labels[:N_ORIGINALS] = y
    children = np.random.SeedSequence(seed).spawn(-(-n_rows // CHUNK))
    start = time.perf_counter()
    for i, a in enumerate(range(N_ORIGINALS, n_rows, CHUNK)):
        b = min(a + CHUNK, n_rows)
        source = np.arange(a, b) % N_ORIGINALS
        out[a:b] = deform(X[source], children[i])
        labels[a:b] = y[source]
    out.flush()
    del out
    np.save(label_path, labels)
    meta.write_text(json.dumps(wanted))
    print(f"built {n_rows} rows in {time.perf_counter() - start:.0f} s: {data_path}", flush=True)
    return data_path, label_path


class StageTimer:
    """Seconds spent in each stage of one fit, by wrapping the functions behind them."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, owner, name: str, stage: str):
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)

    def install(self):
        from skdeepcluster import _estimator, _stages, embedding
        from skdeepcluster.embedding import _neighbor_embedding as ne
        from skdeepcluster.label import _strategy

        self.wrap(_stages, "pretrain", "pre-training")
        self.wrap(_estimator, "encode_array", "encoding")
        self.wrap(ne.NeighborIndex, "graph", "k-NN graph")
        self.wrap(ne, "fuzzy_neighbor_graph", "k-NN graph")
        self.wrap(ne, "optimize_layout", "layout")
        self.wrap(_stages, "cluster", "clustering")
        self.wrap(_stages, "refine", "refinement")
        self.wrap(_stages, "self_label", "self-labelling")  # training the head
        self.wrap(_strategy, "predict_labels", "self-labelling")  # labelling X with it
        self.wrap(ne.NeighborEmbedding, "transform", "NE transform")
        del embedding


def child(
    data_path: str, label_path: str, n_rows: int, n: int, unseen: bool, seed: int, codes: str
) -> dict:
    """One default fit in this (fresh) process; ``codes``: where to save them ('' for nowhere)."""
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.metrics import cluster_accuracy

    X = np.memmap(data_path, dtype=np.float32, mode="r", shape=(n_rows, N_FEATURES))
    y = np.load(label_path)
    rows = slice(N_ORIGINALS, N_ORIGINALS + n) if unseen else slice(0, n)
    timer = StageTimer()
    timer.install()
    model = AutoencoderKMeans(n_clusters=10, random_state=seed)
    baseline = _status_kib("VmRSS")
    with AnonymousPeak() as anonymous:
        start = time.perf_counter()
        model.fit(X[rows])
        fit_s = time.perf_counter() - start
    result = {
        "n": n,
        "fit_s": fit_s,
        "stages": dict(timer.seconds),
        "acc": float(cluster_accuracy(y[rows], model.labels_)),
        "nmi": float(nmi(y[rows], model.labels_)),
        "peak_mib": _status_kib("VmHWM") / 1024,
        "peak_above_baseline_mib": (_status_kib("VmHWM") - baseline) / 1024,
        "peak_anon_mib": anonymous.peak_kib / 1024,
        "reducer": type(model.reducer_).__name__,
    }
    if not unseen:  # the originals are easier than the copies: ACC of each part apart
        from bench_unseen import matched_accuracy  # the matching of all the fit's rows

        copies = slice(N_ORIGINALS, n)
        result["acc_copies"] = matched_accuracy(
            y[rows], model.labels_, y[copies], model.labels_[copies]
        )
    if codes:
        from skdeepcluster.training import encode_array

        Z = model.scaler_.transform(encode_array(model.autoencoder_, X[rows], device=model.device_))
        np.save(Path(codes) / f"codes_{n}.npy", Z.astype(np.float32))
        np.save(Path(codes) / f"codes_{n}.labels.npy", y[rows])
    if unseen:
        originals = np.asarray(X[:N_ORIGINALS])
        start = time.perf_counter()
        labels = model.predict(originals)
        result["predict_s"] = time.perf_counter() - start
        from bench_unseen import matched_accuracy  # the training rows' cluster names

        result["unseen_acc"] = matched_accuracy(y[rows], model.labels_, y[:N_ORIGINALS], labels)
        result["unseen_nmi"] = float(nmi(y[:N_ORIGINALS], labels))
    return result


STAGES = [
    "pre-training", "encoding", "k-NN graph", "layout", "clustering", "refinement",
    "self-labelling",
]


def table(results: list[dict]) -> list[str]:
    head = "| rows | ACC | ACC of the copies | NMI | fit s | " + " | ".join(STAGES)
    head += " | peak RSS MiB | peak anonymous MiB |"
    lines = [head, "|" + "---|" * (8 + len(STAGES))]
    for r in results:
        stages = " | ".join(f"{r['stages'].get(s, 0.0):.0f}" for s in STAGES)
        copies = f"{r['acc_copies']:.3f}" if "acc_copies" in r else "-"
        line = f"| {r['n']:,} | {r['acc']:.3f} | {copies} | {r['nmi']:.3f} | {r['fit_s']:.0f} "
        lines.append(line + f"| {stages} | {r['peak_mib']:.0f} | {r.get('peak_anon_mib', 0):.0f} |")
    if any("unseen_acc" in r for r in results):
        lines += [
            "",
            "| fit rows (copies) | train ACC | unseen ACC (10,000 originals) | predict s |",
        ]
        lines.append("|---|---|---|---|")
        for r in results:
            lines.append(
                f"| {r['n']:,} | {r['acc']:.3f} | {r['unseen_acc']:.3f} | {r['predict_s']:.1f} |"
            )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=int, default=None, help="rows of the data set to write")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the data set used")
    parser.add_argument("--sizes", type=int, nargs="*", default=[60_000, 250_000, 1_000_000])
    parser.add_argument("--unseen", action="store_true", help="fit on copies, predict originals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--save-codes", default="", help="folder for the standardized codes")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        d, lbl, n_rows, n, unseen, seed, codes = args.child
        result = child(d, lbl, int(n_rows), int(n), unseen == "1", int(seed), codes)
        print(json.dumps(result))
        return 0
    n_rows = args.build or args.rows
    data_path, label_path = build(n_rows, args.dir, args.mnist_path, args.seed)
    if args.build:
        return 0
    results = []
    for n in args.sizes:
        command = [
            sys.executable,
            __file__,
            "--child",
            str(data_path),
            str(label_path),
            str(n_rows),
            str(n),
            "1" if args.unseen else "0",
            str(args.seed),
            args.save_codes,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"the fit of {n:,} rows failed (exit {done.returncode})")
        out = done.stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(
        f"\n{_machine.describe()} (the driver; each fit sets its own threads), "
        f"ru_maxrss of this driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB"
    )
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
