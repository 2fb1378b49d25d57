"""Fit on a sample, label the rest, partition by partition: up to 10,000,000 deformed digits.

The data are ``bench_large.py``'s rows -- the 10,000 MNIST test images
(``../shared/data/mnist``), then elastically deformed copies of them drawn
chunk by chunk from the children of ``SeedSequence(seed)`` (the same
``deform``, chunks and seeds) -- written once as **uint8** ``.npy`` shards of
``--shard-rows`` rows (``X-00000.npy``, ...) with their labels
(``labels-00000.npy``, ...), the layout :func:`skdeepcluster.datasets.open_rows`
reads; ``meta.json`` records what was built. The pixels are rounded to
``k / 255``: the originals are exact, a deformed copy differs from
``bench_large.py``'s float32 row by at most 1/510 per pixel. 10,000,000 rows
take 7.8 GB.

A run fits ``AutoencoderKMeans(n_clusters=10, random_state=seed)`` (the
defaults) on ``--sample`` rows drawn uniformly (sorted indices, read from the
shards, scaled to [0, 1] float32), in a fresh process, then labels **all**
rows with that model:

- in one fresh process, streaming the shards ``--block`` rows at a time
  through ``model.predict`` on ``--threads`` torch threads;
- on a ``distributed.LocalCluster`` of ``--workers`` worker processes of one
  thread each: a lazy Dask array whose tasks read their own rows from the
  shards (``dask.delayed`` reads per block: ``da.from_array`` of a memmap
  would pickle its data into the graph, through the client), scaled the same
  way, then ``model.predict(dask_array).compute()``.

It reports the seconds, rows per second (per worker), the peak resident
memory (``VmHWM``) of the labelling process and of each worker, the model's
pickle size, the rows whose Dask label differs from the one-process label
(0: the predictions are bit-identical) and the ACC of all rows' labels next
to the ACC of the fit's own ``labels_`` on its sample. ``--samples`` adds the
"how large must the sample be" table: a fit and a labelling of all rows per
size (one process; Dask with ``--dask-only``).

Usage::

    python benchmarks/bench_partitioned.py --build 1000000 --dir /data/bp-1m --threads 16
    python benchmarks/bench_partitioned.py --dir /data/bp-1m --threads 16 \\
        --sample 100000 --samples 10000 30000 100000 --workers 8 --json bp.jsonl
    python benchmarks/bench_partitioned.py --build 10000000 --dir /data/bp-10m --threads 16
    python benchmarks/bench_partitioned.py --dir /data/bp-10m --threads 16 \\
        --sample 1000000 --workers 8 --json bp.jsonl
    # a smoke test
    python benchmarks/bench_partitioned.py --build 30000 --shard-rows 7000 --dir /tmp/bp-test
    python benchmarks/bench_partitioned.py --dir /tmp/bp-test --threads 1 --sample 5000 \\
        --samples 3000 5000

A build runs once per folder (``meta.json``; a different build replaces the
shards) and prints its time: about 50 s per 1,000,000 rows on a 2-core EPYC
(two threads).
Models, sample indices and labels go to ``DIR/runs/``. Prints markdown tables
(the command line and the machine first); ``--json`` appends one JSON line per
step (fit, one-process labelling, Dask labelling).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shlex
import subprocess
import sys
import time
from pathlib import Path

import _machine
import numpy as np
from bench_core import DEFAULT_MNIST
from bench_large import CHUNK, N_FEATURES, N_ORIGINALS, deform
from bench_scale import AnonymousPeak, _status_kib

DEFAULT_DIR = Path(os.environ.get("SKDEEPCLUSTER_BENCH_DATA", "/tmp")) / "skdeepcluster-shards"
BLOCK = 100_000
SCALE = np.float32(255)


# ------------------------------------------------------------------ the data
def scale(block: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]: the same operation in every path."""
    return block.astype(np.float32) / SCALE


def read_block(path: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start`` to ``stop`` of one uint8 shard (mapped, copied, unmapped)."""
    shard = np.load(path, mmap_mode="r")
    try:
        return np.array(shard[start:stop])
    finally:
        del shard


class ShardWriter:
    """Writes consecutive rows into ``X-xxxxx.npy`` / ``labels-xxxxx.npy`` shards, one at a time."""

    def __init__(self, directory: Path, n_rows: int, shard_rows: int) -> None:
        self.directory, self.n_rows, self.shard_rows = directory, n_rows, shard_rows
        self.index, self.rows, self.labels = -1, None, None

    def _open(self, index: int) -> None:
        self.close()
        n = min(self.shard_rows, self.n_rows - index * self.shard_rows)
        path = self.directory / f"X-{index:05d}.npy"
        shape = (n, N_FEATURES)
        self.rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        self.labels = np.empty(n, dtype=np.int64)
        self.index = index

    def close(self) -> None:
        if self.rows is not None:
            self.rows.flush()
            np.save(self.directory / f"labels-{self.index:05d}.npy", self.labels)
        self.rows = self.labels = None

    def write(self, start: int, rows: np.ndarray, labels: np.ndarray) -> None:
        done = 0
        while done < rows.shape[0]:
            at = start + done
            index, offset = divmod(at, self.shard_rows)
            if index != self.index:
                self._open(index)
            k = min(rows.shape[0] - done, self.rows.shape[0] - offset)
            self.rows[offset : offset + k] = rows[done : done + k]
            self.labels[offset : offset + k] = labels[done : done + k]
            done += k


def _quantize(rows: np.ndarray) -> np.ndarray:
    return np.rint(rows * 255).astype(np.uint8)


def build(n_rows: int, directory: Path, shard_rows: int, mnist_path: str, seed: int) -> None:
    """Write (once) the originals, then ``n_rows - 10,000`` deformed copies, as uint8 shards."""
    from skdeepcluster.datasets import load_mnist

    meta = directory / "meta.json"
    wanted = {"n_rows": n_rows, "shard_rows": shard_rows, "seed": seed, "dtype": "uint8",
              "version": 1}  # fmt: skip
    if meta.exists() and json.loads(meta.read_text()) == wanted:
        print(f"{directory} already holds {n_rows:,} rows", flush=True)
        return
    directory.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)
    for old in [*directory.glob("X-*.npy"), *directory.glob("labels-*.npy")]:
        old.unlink()  # shards of an earlier build would join this one
    X, y = load_mnist(path=mnist_path, subset="test", return_X_y=True)
    X = np.asarray(X, dtype=np.float32)
    start = time.perf_counter()
    writer = ShardWriter(directory, n_rows, shard_rows)
    first = min(n_rows, N_ORIGINALS)
    writer.write(0, _quantize(X[:first]), y[:first])
    children = np.random.SeedSequence(seed).spawn(-(-n_rows // CHUNK))  # as bench_large
    for i, a in enumerate(range(N_ORIGINALS, n_rows, CHUNK)):
        b = min(a + CHUNK, n_rows)
        source = np.arange(a, b) % N_ORIGINALS
        writer.write(a, _quantize(deform(X[source], children[i])), y[source])
        if i % 100 == 99:
            print(f"  {b:,} rows, {time.perf_counter() - start:.0f} s", flush=True)
    writer.close()
    meta.write_text(json.dumps(wanted))
    size = sum(p.stat().st_size for p in directory.glob("*.npy")) / 1e9
    print(
        f"built {n_rows:,} rows ({size:.2f} GB, {-(-n_rows // shard_rows)} shards) in "
        f"{time.perf_counter() - start:.0f} s: {directory}", flush=True,
    )  # fmt: skip


def layout(directory: Path) -> tuple[list[tuple[str, int]], np.ndarray]:
    """The shards ``(path, rows)`` in ``open_rows``' order, and all the labels."""
    from skdeepcluster.datasets import open_rows

    X, y = open_rows(directory, return_X_y=True)
    shards = [
        (str(p), int(np.load(p, mmap_mode="r").shape[0]))
        for p in sorted(directory.glob("*.npy"))
        if not p.name.lower().startswith("labels")
    ]
    if sum(n for _, n in shards) != X.shape[0] or y is None:
        raise SystemExit(f"{directory}: the shards and open_rows disagree, or no labels")
    return shards, y


def read_sample(shards: list[tuple[str, int]], index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted), scaled to float32, read shard by shard."""
    out = np.empty((index.size, N_FEATURES), dtype=np.float32)
    lo = 0
    for path, n in shards:
        a, b = np.searchsorted(index, [lo, lo + n])
        if b > a:
            shard = np.load(path, mmap_mode="r")
            out[a:b] = scale(shard[index[a:b] - lo])
            del shard
        lo += n
    return out


# ------------------------------------------------------------- the children
def _work(args, sample: int) -> Path:
    work = args.dir / "runs"
    work.mkdir(exist_ok=True)
    return work / f"s{sample}-seed{args.seed}"


def child_fit(args, sample: int) -> dict:
    """Fit the defaults on a uniform sample; save the model and the sample's indices."""
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.metrics import cluster_accuracy

    shards, y = layout(args.dir)
    n_rows = y.shape[0]
    rng = np.random.default_rng(args.seed)
    index = np.sort(rng.choice(n_rows, size=min(sample, n_rows), replace=False))
    start = time.perf_counter()
    X = read_sample(shards, index)
    read_s = time.perf_counter() - start
    model = AutoencoderKMeans(n_clusters=10, random_state=args.seed)
    with AnonymousPeak() as anonymous:
        start = time.perf_counter()
        model.fit(X)
        fit_s = time.perf_counter() - start
    blob = pickle.dumps(model)
    work = _work(args, sample)
    Path(f"{work}.labels.npy").unlink(missing_ok=True)  # an earlier model's labels
    Path(f"{work}.model.pkl").write_bytes(blob)
    np.savez(f"{work}.sample.npz", index=index, labels=model.labels_)
    return {
        "kind": "fit", "rows": n_rows, "sample": int(index.size), "seed": args.seed,
        "read_s": read_s, "fit_s": fit_s,
        "sample_acc": float(cluster_accuracy(y[index], model.labels_)),
        "sample_nmi": float(nmi(y[index], model.labels_)),
        "pickle_bytes": len(blob), "peak_mib": _status_kib("VmHWM") / 1024,
        "peak_anon_mib": anonymous.peak_kib / 1024, "machine": _machine.numerics(),
    }  # fmt: skip


def _scores(y: np.ndarray, labels: np.ndarray, work: Path) -> dict:
    """ACC of all rows and of the rows outside the sample; agreement with ``labels_``."""
    from skdeepcluster.metrics import cluster_accuracy

    saved = np.load(f"{work}.sample.npz")
    rest = np.ones(y.shape[0], dtype=bool)
    rest[saved["index"]] = False
    return {
        "acc_all": float(cluster_accuracy(y, labels)),
        "acc_rest": float(cluster_accuracy(y[rest], labels[rest])) if rest.any() else None,
        "sample_agreement": float(np.mean(labels[saved["index"]] == saved["labels"])),
    }


def child_label(args, sample: int) -> dict:
    """Label every row in this process, block by block; save the labels."""
    shards, y = layout(args.dir)
    work = _work(args, sample)
    model = pickle.loads(Path(f"{work}.model.pkl").read_bytes())
    labels = np.empty(y.shape[0], dtype=np.int64)
    baseline = _status_kib("VmRSS")
    with AnonymousPeak() as anonymous:
        start, lo = time.perf_counter(), 0
        for path, n in shards:
            for a in range(0, n, args.block):
                b = min(a + args.block, n)
                labels[lo + a : lo + b] = model.predict(scale(read_block(path, a, b)))
            lo += n
        label_s = time.perf_counter() - start
    np.save(f"{work}.labels.npy", labels)
    return {
        "kind": "one process", "rows": int(y.shape[0]), "sample": sample, "seed": args.seed,
        "processes": 1, "threads": args.threads, "label_s": label_s,
        "rows_per_s": y.shape[0] / label_s, "rows_per_s_per_process": y.shape[0] / label_s,
        "peak_mib": [_status_kib("VmHWM") / 1024], "baseline_mib": [baseline / 1024],
        "peak_anon_mib": anonymous.peak_kib / 1024, **_scores(y, labels, work),
        "machine": _machine.numerics(),
    }  # fmt: skip


def dask_rows(shards: list[tuple[str, int]], block: int):
    """A lazy float32 Dask array of every row: each task reads its rows from its shard."""
    import dask
    import dask.array as da

    read = dask.delayed(read_block, pure=True)
    parts = [
        da.from_delayed(read(path, a, min(a + block, n)), (min(a + block, n) - a, N_FEATURES),
                        dtype=np.uint8)
        for path, n in shards
        for a in range(0, n, block)
    ]  # fmt: skip
    return da.concatenate(parts).map_blocks(scale, dtype=np.float32)


def _worker_state() -> dict:
    import torch

    return {
        "rss_mib": _status_kib("VmRSS") / 1024, "hwm_mib": _status_kib("VmHWM") / 1024,
        "pid": os.getpid(), "threads": torch.get_num_threads(),
    }  # fmt: skip


def _one_torch_thread() -> dict:
    import torch

    torch.set_num_threads(1)
    return _machine.numerics()


def child_dask(args, sample: int) -> dict:
    """Label every row on a LocalCluster; compare with the one-process labels."""
    import distributed

    shards, y = layout(args.dir)
    work = _work(args, sample)
    model = pickle.loads(Path(f"{work}.model.pkl").read_bytes())
    start = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        memory_limit=args.worker_memory, dashboard_address=None,
    )  # fmt: skip
    client = distributed.Client(cluster)
    try:
        machine = next(iter(client.run(_one_torch_thread).values()))
        startup_s = time.perf_counter() - start
        before = client.run(_worker_state)
        start = time.perf_counter()
        labels = np.asarray(model.predict(dask_rows(shards, args.block)).compute())
        label_s = time.perf_counter() - start
        after = client.run(_worker_state)
    finally:
        client.close()
        cluster.close()
    one = Path(f"{work}.labels.npy")
    differing = int(np.count_nonzero(np.load(one) != labels)) if one.exists() else None
    n = int(y.shape[0])
    return {
        "kind": "Dask", "rows": n, "sample": sample, "seed": args.seed,
        "processes": args.workers, "threads": 1, "startup_s": startup_s, "label_s": label_s,
        "rows_per_s": n / label_s, "rows_per_s_per_process": n / label_s / args.workers,
        "peak_mib": [after[w]["hwm_mib"] for w in sorted(after)],
        "baseline_mib": [before[w]["rss_mib"] for w in sorted(before)],
        "worker_torch_threads": sorted({after[w]["threads"] for w in after}),
        "pickle_bytes": len(pickle.dumps(model)), "differing": differing,
        **_scores(y, labels, work), "machine": machine,
    }  # fmt: skip


CHILDREN = {"fit": child_fit, "label": child_label, "dask": child_dask}


def earlier_fit(args) -> dict:
    """The last fit of ``--sample`` rows recorded in ``--json``, whose model is in ``DIR/runs``."""
    lines = args.json.read_text().splitlines() if args.json and args.json.exists() else []
    fits = [json.loads(line) for line in lines]
    fits = [f for f in fits if f["kind"] == "fit" and f["sample"] == args.sample
            and f["seed"] == args.seed]  # fmt: skip
    if not fits or not Path(f"{_work(args, args.sample)}.model.pkl").exists():
        raise SystemExit(f"--reuse-fit: no fit of {args.sample:,} rows in {args.json}")
    return fits[-1]


def run_child(args, kind: str, sample: int) -> dict:
    """One step in a fresh process (its peak memory its own), its JSON result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--child", kind, str(sample), "--dir", str(args.dir),
               "--seed", str(args.seed), "--threads", str(args.threads), "--block", str(args.block),
               "--workers", str(args.workers), "--worker-memory", args.worker_memory]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"the {kind} step of the {sample:,}-row sample failed")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    if args.json is not None:
        with args.json.open("a") as f:
            f.write(json.dumps({**result, "command": args.command}) + "\n")
    return result


# ----------------------------------------------------------------- the tables
def _mib(values: list[float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def fit_table(fit: dict, labelled: list[dict]) -> list[str]:
    lines = [
        "| rows | sample | sample read s | fit s | fit peak RSS MiB | model pickle MiB "
        "| ACC of labels_ (sample) | labelling | ACC of all rows | ACC outside the sample "
        "| difference | within 0.01 |",
        "|" + "---|" * 12,
    ]
    for r in labelled:
        diff = r["acc_all"] - fit["sample_acc"]
        rest = "-" if r["acc_rest"] is None else f"{r['acc_rest']:.4f}"
        lines.append(
            f"| {fit['rows']:,} | {fit['sample']:,} | {fit['read_s']:.1f} | {fit['fit_s']:.0f} "
            f"| {fit['peak_mib']:.0f} | {fit['pickle_bytes'] / 2**20:.2f} "
            f"| {fit['sample_acc']:.4f} | {r['kind']} | {r['acc_all']:.4f} | {rest} "
            f"| {diff:+.4f} | {'yes' if abs(diff) <= 0.01 else 'NO'} |"
        )
    return lines


def label_table(labelled: list[dict]) -> list[str]:
    lines = [
        "| labelling | processes x torch threads | rows | s | rows/s | rows/s per process "
        "| peak RSS MiB per process (VmHWM) | RSS before MiB | labels differing from one "
        "process |",
        "|" + "---|" * 9,
    ]
    for r in labelled:
        differing = "-" if r["kind"] == "one process" else (
            "not run" if r.get("differing") is None else f"{r['differing']:,}"
        )
        startup = f" (+{r['startup_s']:.0f} s start)" if "startup_s" in r else ""
        lines.append(
            f"| {r['kind']} | {r['processes']} x {r['threads']} | {r['rows']:,} "
            f"| {r['label_s']:.1f}{startup} | {r['rows_per_s']:,.0f} "
            f"| {r['rows_per_s_per_process']:,.0f} | {_mib(r['peak_mib'])} "
            f"| {_mib(r['baseline_mib'])} | {differing} |"
        )
    return lines


def samples_table(runs: list[tuple[dict, dict]]) -> list[str]:
    lines = [
        "| sample | fit s | ACC of labels_ (sample) | labelling | label s | ACC of all rows "
        "| difference |",
        "|" + "---|" * 7,
    ]
    for fit, r in runs:
        lines.append(
            f"| {fit['sample']:,} | {fit['fit_s']:.0f} | {fit['sample_acc']:.4f} | {r['kind']} "
            f"| {r['label_s']:.1f} | {r['acc_all']:.4f} | {r['acc_all'] - fit['sample_acc']:+.4f} |"
        )
    return lines


def report(args, main: tuple[dict, list[dict]] | None, runs: list[tuple[dict, dict]]) -> None:
    print(f"\n`{args.command}`\n")
    first = main[0] if main else runs[0][0]
    print(f"Fit and one-process labelling: {_machine.describe(first['machine'])}")
    dask = [r for r in (main[1] if main else [r for _, r in runs]) if r["kind"] == "Dask"]
    if dask:
        print(
            f"Dask workers: {_machine.describe(dask[0]['machine'])} each "
            f"(LocalCluster, processes, memory_limit {args.worker_memory}, blocks of "
            f"{args.block:,} rows)"
        )
    if main:
        print("\n" + "\n".join(fit_table(*main)))
        print("\n" + "\n".join(label_table(main[1])))
    if runs:
        print("\nHow large must the sample be:\n")
        print("\n".join(samples_table(runs)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=int, default=None, help="rows of the data set to write")
    parser.add_argument("--shard-rows", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the folder of shards")
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--sample", type=int, default=None, help="the sample of the main run")
    parser.add_argument("--samples", type=int, nargs="*", default=[], help="sample sizes table")
    parser.add_argument("--dask-only", action="store_true", help="the table's labelling on Dask")
    parser.add_argument("--threads", type=int, default=2, help="torch threads: fit, one process")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--worker-memory", default="4GiB", help="memory_limit of each worker")
    parser.add_argument("--block", type=int, default=BLOCK, help="rows per predict call / task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse-fit", action="store_true",
                        help="label with the model of --sample's last fit (its --json line)")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per step")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "SAMPLE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    args.command = shlex.join(["python", "benchmarks/bench_partitioned.py", *given])
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](args, int(args.child[1]))))
        return 0
    if args.build:
        build(args.build, args.dir, args.shard_rows, args.mnist_path, args.seed)
        return 0
    if args.sample is None and not args.samples:
        parser.error("give --build, --sample or --samples")
    fits: dict[int, dict] = {}
    main_run = None
    if args.sample is not None:
        fitted = earlier_fit(args) if args.reuse_fit else run_child(args, "fit", args.sample)
        fits[args.sample] = fitted
        labelled = [] if args.dask_only else [run_child(args, "label", args.sample)]
        main_run = (fits[args.sample], [*labelled, run_child(args, "dask", args.sample)])
    runs = []
    for sample in args.samples:
        if sample not in fits:
            fits[sample] = run_child(args, "fit", sample)
        reuse = main_run is not None and sample == args.sample
        step = "Dask" if args.dask_only else "one process"
        r = next(r for r in main_run[1] if r["kind"] == step) if reuse else run_child(
            args, "dask" if args.dask_only else "label", sample
        )  # fmt: skip
        runs.append((fits[sample], r))
    report(args, main_run, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
