"""Milliseconds per step of the neighbour-embedding layout, this checkout against git revisions.

Lays out a random symmetric graph (``--nodes`` nodes, ``--k`` random neighbours
each, uniform weights in [0, 1)) in ``--dims`` dimensions with
:func:`skdeepcluster.embedding.optimize_layout`: batches of 8,192 edges, five
negatives per edge, as the defaults do. The step time hardly depends on the
graph's structure, so random edges stand for a k-NN graph. Each revision's
``_layout.py`` is loaded from ``git show REV:skdeepcluster/embedding/_layout.py``;
runs alternate between versions, ``--repeats`` times, each in a fresh process.
A version ``REV:KERNEL`` (``.`` is this checkout) runs that revision's layout
with ``kernel=KERNEL`` (``numba`` or ``torch``; the kernel is compiled before
the timing starts). The timed steps include the first round of edge draws
(:func:`edge_batches`), which a long layout spreads over more steps: time at
least a round (``--nodes * 2 * --k / 8192`` steps) for per-step costs as in a fit.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_layout_step.py --revs 75b6d66 --threads 1
    python benchmarks/bench_layout_step.py --revs .:torch --nodes 1000000 --threads 2 --steps 4000

Prints a markdown table (one row per version and run).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _machine

ROOT = Path(__file__).resolve().parents[1]


def load_layout(rev: str):
    """The layout module of this checkout (``rev='.'``) or of a git revision."""
    if rev == ".":
        from skdeepcluster.embedding import _layout

        return _layout
    source = subprocess.run(
        ["git", "show", f"{rev}:skdeepcluster/embedding/_layout.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for module in ("_graph", "_layout_kernel"):
        package = f"from skdeepcluster.embedding.{module} import"
        source = source.replace(f"from .{module} import", package)
    path = Path(tempfile.mkdtemp()) / f"layout_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(version: str, nodes: int, k: int, dims: int, steps: int, threads: int) -> float:
    import numpy as np
    import torch
    from scipy import sparse

    torch.set_num_threads(threads)
    rev, _, kernel = version.partition(":")
    layout = load_layout(rev)
    rng = np.random.default_rng(0)
    rows, cols = np.repeat(np.arange(nodes), k), rng.integers(0, nodes, nodes * k)
    graph = sparse.coo_matrix((rng.random(nodes * k), (rows, cols)), shape=(nodes, nodes))
    graph = (graph + graph.T).tocoo()
    a, b = layout.layout_curve_params(0.0)
    Y = torch.rand(nodes, dims, generator=torch.Generator().manual_seed(0)) * 10
    kwargs = dict(batch_size=8192, negative_sample_rate=5, learning_rate=1.0, a=a, b=b)
    if kernel:
        kwargs["kernel"] = kernel
    if kernel or rev == ".":  # compile (or load) the numba kernel before the timing
        layout.optimize_layout(Y, graph, n_steps=1, generator=torch.Generator(), **kwargs)
    start = time.perf_counter()
    layout.optimize_layout(
        Y, graph, n_steps=steps, generator=torch.Generator().manual_seed(0), **kwargs
    )
    return 1000 * (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revs", nargs="*", default=[], help="git revisions to compare")
    parser.add_argument("--nodes", type=int, default=70_000)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--dims", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape = (args.nodes, args.k, args.dims, args.steps, args.threads)
    if args.child:
        print(child(args.child, *shape))
        return 0
    print(_machine.describe(), "(the driver; each run sets --threads)")
    print(f"{args.nodes:,} nodes, {args.k} random neighbours, {args.dims}-D, "
          f"{args.threads} thread(s), {args.steps} steps of 8,192 edges")  # fmt: skip
    print("\n| version | run | ms per step |\n|---|---|---|")
    for run in range(args.repeats):
        for rev in [*args.revs, "."]:
            command = [sys.executable, __file__, "--child", rev, "--nodes", str(args.nodes),
                       "--k", str(args.k), "--dims", str(args.dims), "--steps",
                       str(args.steps), "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            name = rev.replace(".", "this checkout", 1) if rev.startswith(".") else rev
            print(f"| {name} | {run + 1} | {float(out.split()[-1]):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
