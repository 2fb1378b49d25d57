"""Validation of ``architecture='auto'``'s choice: the criterion against the ACC of each candidate.

For every data set and seed:

1. ``--candidates``: the two full fits the choice decides between,
   ``AutoencoderKMeans(k, architecture='mlp')`` (the network) and
   ``architecture='none'``, each alone in a fresh process; their labels are saved
   (``--store``, one ``.npz`` per data set and seed).
2. ``--choices``: the choice as ``fit`` makes it, by the library's own code
   (:func:`skdeepcluster._choice.pretrain_or_drop` on the plan of the defaults),
   stopped right after it is made: the score of each candidate, what it chose,
   and the seconds of each part of it (scoring the input's sample, pre-training up
   to the probe, scoring the network's sample).
3. ``--costs``: what the choice costs, with each fit alone: the defaults', the
   network's (``architecture='mlp'``) and the no-network fit, one after the other
   in one process per data set, and ``architecture_choice_.seconds``.
4. the table: per data set and seed, both scores and both ACCs, whether the
   choice picked the candidate of higher ACC (rank agreement, counting ACCs
   within 0.005 as ties that either pick gets right), the defaults' ACC (that of
   the chosen candidate: ``tests/test_choice.py`` checks that the defaults' labels
   are those of the chosen candidate's fit, bit for bit), and the ARI between the
   defaults' partitions of seeds 0, 1, 2.

Usage::

    python benchmarks/bench_auto_choice.py --candidates --datasets mnist signals-warp
    python benchmarks/bench_auto_choice.py --choices --datasets mnist signals-warp
    python benchmarks/bench_auto_choice.py --table --datasets mnist signals-warp
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
from bench_suite import DATASETS, EXTRA, UNSEEN, load

STORE = Path("/tmp/auto_choice")
TIE = 0.005


def _timed_fits(name: str, seed: int, kinds, args):
    """``y`` and, for each ``architecture`` in ``kinds``, its fit: ``(model, seconds, ACC)``."""
    from skdeepcluster import AutoencoderKMeans
    from skdeepcluster.metrics import cluster_accuracy

    X, y, _ = load(name, args.mnist_path)
    fits = {}
    for kind in kinds:
        start = time.perf_counter()
        model = AutoencoderKMeans(len(np.unique(y)), architecture=kind, random_state=seed).fit(X)
        seconds = time.perf_counter() - start
        fits[kind] = (model, seconds, cluster_accuracy(y, model.labels_))
    return y, fits


def fit_candidates(name: str, seed: int, args) -> None:
    y, fits = _timed_fits(name, seed, ("mlp", "none"), args)
    out = {}
    for kind, (model, seconds, acc) in fits.items():
        out[f"seconds_{kind}"], out[f"labels_{kind}"], out[f"acc_{kind}"] = (
            seconds, model.labels_, acc,
        )
    np.savez_compressed(args.store / f"{name}_{seed}.npz", y=y, **out)


def measure_choice(name: str, seed: int, args) -> dict:
    """The choice of the defaults, by the library's code, stopped once it is made."""
    from skdeepcluster import AutoencoderKMeans, _choice, _plan
    from skdeepcluster.training import Callback

    X, y, _ = load(name, args.mnist_path)
    est = AutoencoderKMeans(n_clusters=len(np.unique(y)), random_state=seed)
    plan = _plan.resolve_plan(est, X.shape, stream=False, partial=False)
    if plan.choice is None:
        return {"dataset": name, "seed": seed, "choice": plan.architecture,
                "reason": plan.architecture_reason}

    class StopAfterProbe(Callback):
        def on_epoch_end(self, state):
            state.stop = state.epoch + 1 >= plan.choice.probe_epoch

    start = time.perf_counter()
    *_, record = _choice.pretrain_or_drop(X, plan, None, [StopAfterProbe()])
    return {
        "dataset": name, "seed": seed, "choice": record.architecture, "reason": record.reason,
        "scores": record.scores, "probe_epoch": record.epoch, "epochs": plan.epochs,
        "seconds_to_choice": time.perf_counter() - start, "overhead_s": _overhead(record),
        "machine": _machine.numerics(),
    }


def measure_costs(name: str, seed: int, args) -> dict:
    """The defaults', the network's and the no-network fit, one after the other, timed."""
    _, fits = _timed_fits(name, seed, ("auto", "mlp", "none"), args)
    row = {"dataset": name, "seed": seed, "machine": _machine.numerics()}
    for kind, (_, seconds, acc) in fits.items():
        row[f"seconds_{kind}"], row[f"acc_{kind}"] = seconds, acc
    choice = fits["auto"][0].architecture_choice_
    row["choice"], row["choice_s"] = choice.architecture, choice.seconds
    return row


def costs_table(rows: list[dict]) -> list[str]:
    lines = [
        "| data | seed | chose | choice s | defaults fit s | network fit s | no-network fit s | "
        "choice / defaults fit | choice / network fit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['choice']} | {r['choice_s']:.1f} | "
            f"{r['seconds_auto']:.1f} | {r['seconds_mlp']:.1f} | {r['seconds_none']:.1f} | "
            f"{r['choice_s'] / r['seconds_auto']:.0%} | {r['choice_s'] / r['seconds_mlp']:.0%} |"
        )
    return lines


def _overhead(record) -> float:
    """The seconds the choice adds to a fit that keeps the network (scoring both samples)."""
    return record.seconds if record.architecture != "none" else float("nan")


def run_child(mode: str, name: str, seed: int, args) -> dict | None:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--child", mode, name, str(seed),
               "--mnist-path", args.mnist_path, "--store", str(args.store),
               "--threads", str(args.threads)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _labels(d, kind):
    """Full labels, or ``(rows, labels)`` where only a sample's labels were kept."""
    if f"labels_{kind}" in d:
        return None, d[f"labels_{kind}"]
    return d["rows"], d[f"sub_{kind}"]


def _ari(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    (rows_a, la), (rows_b, lb) = a, b
    if rows_a is not None and rows_b is not None:
        raise ValueError("two partial partitions")
    if rows_a is not None:
        return adjusted_rand_score(la, lb[rows_a])
    if rows_b is not None:
        return adjusted_rand_score(la[rows_b], lb)
    return adjusted_rand_score(la, lb)


def _baselines(path: Path) -> dict:
    """Mean ACC of each simple pipeline, per data set (from bench_suite.py --json)."""
    accs: dict = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            accs.setdefault(r["dataset"], {}).setdefault(r["config"], []).append(r["acc"])
    return {name: {c: float(np.mean(v)) for c, v in d.items()} for name, d in accs.items()}


def _choices(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[(r["dataset"], r["seed"])] = r
    return out


def table(args) -> list[str]:
    choices, baselines = _choices(args.choices_json), _baselines(args.baselines_json)
    lines = [
        "| data | seed | score none / network | chose | ACC none / network | right | "
        "choice s (kept / dropped) | network fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = [
        "| data | defaults ACC | ARI between seeds | no network | network | best simple "
        "pipeline | defaults − best simple |",
        "|---|---|---|---|---|---|---|",
    ]
    agree = total = 0
    for name in args.datasets:
        picked, accs_all = [], {"none": [], "mlp": [], "defaults": []}
        for seed in args.seeds:
            path = args.store / f"{name}_{seed}.npz"
            if not path.exists() or (name, seed) not in choices:
                continue
            d, r = np.load(path), choices[(name, seed)]
            chosen = r["choice"]
            accs = {"none": float(d["acc_none"]), "mlp": float(d["acc_mlp"])}
            right = accs[chosen] >= max(accs.values()) - TIE
            agree, total = agree + right, total + 1
            for kind in ("none", "mlp"):
                accs_all[kind].append(accs[kind])
            accs_all["defaults"].append(accs[chosen])
            picked.append(_labels(d, chosen))
            scores = r.get("scores") or {}
            shown = " / ".join(f"{scores[k]:.3f}" for k in ("none", "mlp")) if scores else (
                r["reason"]
            )
            cost = f"{r['seconds_to_choice']:.1f}" if scores else "0"
            if scores and chosen != "none":
                cost = f"{r['overhead_s']:.1f} / {r['seconds_to_choice']:.1f}"
            lines.append(
                f"| {name} | {seed} | {shown} | {chosen} | {accs['none']:.3f} / "
                f"{accs['mlp']:.3f} | {'yes' if right else '**no**'} | {cost} | "
                f"{float(d['seconds_mlp']):.0f} |"
            )
        if not picked:
            continue
        pairs = [(a, b) for i, a in enumerate(picked) for b in picked[i + 1:]]
        pairs = [p for p in pairs if p[0][0] is None or p[1][0] is None]
        ari = f"{np.mean([_ari(a, b) for a, b in pairs]):.3f}" if pairs else ""
        simple = baselines.get(name, {})
        best = max(simple.items(), key=lambda kv: kv[1]) if simple else ("", np.nan)
        mean = {k: float(np.mean(v)) for k, v in accs_all.items()}
        summary.append(
            f"| {name} | {mean['defaults']:.3f} | {ari} | {mean['none']:.3f} | "
            f"{mean['mlp']:.3f} | {best[1]:.3f} ({best[0]}) | {mean['defaults'] - best[1]:+.3f} |"
        )
    lines.append(f"\nRank agreement: {agree} of {total} fits (ACCs within {TIE} count as ties).")
    return summary + [""] + lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    every = DATASETS + EXTRA + UNSEEN
    parser.add_argument("--datasets", nargs="+", default=[d for d in every if d != "fashion"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--choices-json", type=Path, default=STORE / "choices.jsonl")
    parser.add_argument(
        "--baselines-json", type=Path, default=STORE / "baselines.jsonl",
        help="bench_suite.py --json output of the simple pipelines",
    )
    parser.add_argument("--candidates", action="store_true")
    parser.add_argument("--choices", action="store_true")
    parser.add_argument("--table", action="store_true")
    parser.add_argument(
        "--costs", action="store_true",
        help="time the defaults', the network's and the no-network fit of each data set "
        "(what the choice costs; use --threads 2 and nothing else running)",
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DATASET", "SEED"))
    args = parser.parse_args(argv)
    args.store.mkdir(parents=True, exist_ok=True)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        mode, name, seed = args.child
        if mode == "candidates":
            fit_candidates(name, int(seed), args)
            print("{}")
        elif mode == "costs":
            print(json.dumps(measure_costs(name, int(seed), args)))
        else:
            print(json.dumps(measure_choice(name, int(seed), args)))
        return 0
    if args.costs:  # each data set in its own process, one at a time: run nothing beside it
        rows = [
            run_child("costs", name, seed, args) for name in args.datasets for seed in args.seeds
        ]
        print(f"\n{_machine.describe(rows[0]['machine'])} per fit")
        print("\n".join(costs_table(rows)))
    for mode in ("candidates", "choices"):
        if not getattr(args, mode):
            continue
        for name in args.datasets:
            for seed in args.seeds:
                result = run_child(mode, name, seed, args)
                if mode == "choices":
                    print(json.dumps(result), flush=True)
                    with args.choices_json.open("a") as f:
                        f.write(json.dumps(result) + "\n")
    if args.table:
        print("\n".join(table(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
