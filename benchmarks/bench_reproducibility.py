"""Reproducibility: the same fit with other thread counts, numerics and seeds.

Fits one configuration (the defaults unless ``--config`` says otherwise) on
one data set of ``bench_suite.py``, each fit alone in a fresh process, and
compares every partition with the reference fit (``--seed``, two threads,
the library's default numerics) by the adjusted Rand index (ARI; 1 means the
same partition):

- the same seed on one thread;
- the same seed with oneMKL's portable code path (``MKL_CBWR=COMPATIBLE``);
- the same seed with the kernels an AVX2 CPU runs
  (``MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=avx2``);
- with ``--not-strict``, the same seed on one and two threads without
  oneMKL's strict mode (``MKL_CBWR=AUTO``, the behaviour before
  skdeepcluster asked for it);
- the other seeds (``--other-seeds``), compared with the reference and with
  each other.

Usage::

    python benchmarks/bench_reproducibility.py                       # MNIST test set defaults
    python benchmarks/bench_reproducibility.py --dataset digits --other-seeds 1 2 3

Prints a markdown table naming the CPU; ``benchmarks/results/reproducibility.md``
holds the results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _machine
import numpy as np
from bench_core import DEFAULT_MNIST
from bench_suite import CONFIGS, DATASETS, EXTRA, build, load

#: (variant, threads, environment) of the runs on the reference seed; the first is
#: the reference.
VARIANTS = [
    ("reference (2 threads)", 2, {}),
    ("1 thread", 1, {}),
    ("MKL_CBWR=COMPATIBLE", 2, {"MKL_CBWR": "COMPATIBLE"}),
    ("AVX2 kernels", 2, {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
]

#: With ``--not-strict``: the same seed on two and one threads without oneMKL's strict
#: mode (the behaviour before skdeepcluster asked for it).
NOT_STRICT = [
    ("not strict (MKL_CBWR=AUTO), 2 threads", 2, {"MKL_CBWR": "AUTO"}),
    ("not strict (MKL_CBWR=AUTO), 1 thread", 1, {"MKL_CBWR": "AUTO"}),
]


def child(name: str, config: str, seed: int, mnist_path: str, out: str) -> dict:
    """One fit in this (fresh) process; its labels saved to ``out``."""
    from skdeepcluster.metrics import cluster_accuracy

    X, y, image_shape = load(name, mnist_path)
    model = build(config, name, len(np.unique(y)), seed, image_shape)
    start = time.perf_counter()
    labels = model.fit_predict(X)
    fit_s = time.perf_counter() - start
    np.save(out, labels)
    return {
        "acc": cluster_accuracy(y, labels), "fit_s": fit_s, "machine": _machine.numerics(),
    }


def run(args, seed: int, threads: int, env: dict, out: Path) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), **env}
    command = [
        sys.executable, __file__, "--child", str(seed), str(threads), str(out),
        "--dataset", args.dataset, "--config", args.config, "--mnist-path", args.mnist_path,
    ]
    text = subprocess.run(
        command, env=environment, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(text.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=DATASETS + EXTRA)
    parser.add_argument("--config", default="defaults", choices=CONFIGS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--other-seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--not-strict", action="store_true")
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--child", nargs=3, metavar=("SEED", "THREADS", "OUT"))
    args = parser.parse_args(argv)
    if args.child:
        import torch

        seed, threads, out = args.child
        torch.set_num_threads(int(threads))
        print(json.dumps(child(args.dataset, args.config, int(seed), args.mnist_path, out)))
        return 0
    from sklearn.metrics import adjusted_rand_score

    variants = VARIANTS + (NOT_STRICT if args.not_strict else [])
    runs = [(variant, args.seed, threads, env) for variant, threads, env in variants]
    runs += [(f"seed {s} (2 threads)", s, 2, {}) for s in args.other_seeds]
    rows, labels = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for i, (variant, seed, threads, env) in enumerate(runs):
            out = Path(folder) / f"{i}.npy"
            result = run(args, seed, threads, env, out)
            labels[variant] = np.load(out)
            rows.append((variant, seed, result))
            print(json.dumps({"variant": variant, "seed": seed, **result}), flush=True)
    reference = labels[runs[0][0]]
    print(f"\n{args.dataset}, {args.config}; reference: seed {args.seed}, "
          f"{_machine.describe(rows[0][2]['machine'])}\n")
    print("| run | seed | torch capability | oneMKL | threads | ACC | ARI with the reference "
          "| fit s |\n|---|---|---|---|---|---|---|---|")
    for variant, seed, result in rows:
        m = result["machine"]
        ari = adjusted_rand_score(reference, labels[variant])
        print(f"| {variant} | {seed} | {m['capability']} | {m['mkl']} | {m['threads']} "
              f"| {result['acc']:.3f} | {ari:.3f} | {result['fit_s']:.1f} |")
    seeds = [runs[0][0]] + [r[0] for r in runs[len(variants):]]
    print("\n| seeds compared | ARI |\n|---|---|")
    for a, b in itertools.combinations(seeds, 2):
        print(f"| {a} / {b} | {adjusted_rand_score(labels[a], labels[b]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
