"""The distributions behind the bounds of the tests of trained results.

Runs every test marked ``trained`` (``python -m pytest -m trained``) once per
seed (``SKDC_TEST_SEED``) and per numerics (the library's default, and
oneMKL's portable ``MKL_CBWR=COMPATIBLE``), recording instead of asserting
each value that ``tests/_trained.py``'s ``check_trained`` sees. Prints, per
check, the bound, the distribution and the margin in standard deviations,
and writes the table to ``tests/trained_results.md``; ``--write-comments``
also writes each check's distribution in a comment above it. A check is
``ok`` when every recorded value meets the bound and the mean is at least
three standard deviations from it.

Usage::

    python benchmarks/bench_test_margins.py                  # seeds 0-9, both numerics
    python benchmarks/bench_test_margins.py --seeds 0 1 --write-comments
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import _machine
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NUMERICS = {"default": {}, "COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"}}
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
       "==": operator.eq}
COMMENT = "# trained, "


def sweep(seeds, numerics, workers) -> list[dict]:
    """Every check's recorded values over ``seeds`` and ``numerics``."""
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "record.jsonl"
        for name in numerics:
            for seed in seeds:
                env = {**os.environ, **NUMERICS[name], "SKDC_TEST_SEED": str(seed),
                       "SKDC_RECORD_RESULTS": str(record)}
                command = [sys.executable, "-m", "pytest", "-m", "trained", "-q",
                           "-p", "no:cacheprovider", "-n", str(workers)]
                done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
                print(f"{name}, seed {seed}: {done.stdout.strip().splitlines()[-1]}", flush=True)
        entries = [json.loads(line) for line in record.read_text().splitlines()]
    for entry in entries:
        entry["numerics"] = entry["numerics"] or "default"
    return entries


def summarise(values, op, bound) -> dict:
    values = np.asarray(values, dtype=float)
    mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
    worst = float(values.min() if op in (">", ">=") else values.max())
    all_pass = all(OPS[op](v, bound) for v in values)
    margin = abs(mean - bound) / std if std > 0 else float("inf")
    return {"n": len(values), "min": float(values.min()), "max": float(values.max()),
            "mean": mean, "std": std, "worst": worst,
            "margin": margin, "ok": all_pass and (op == "==" or margin >= 3)}


def table(entries) -> list[str]:
    groups = defaultdict(list)
    for e in entries:
        groups[(e["test"], e["key"], e["op"], e["bound"])].append(e)
    lines = ["| test | check | bound | n | min | max | mean ± std | margin (std) | ok |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (test, key, op, bound), group in sorted(groups.items()):
        s = summarise([e["value"] for e in group], op, bound)
        by = {n: summarise([e["value"] for e in group if e["numerics"] == n], op, bound)
              for n in sorted({e["numerics"] for e in group})}
        detail = "; ".join(f"{n} {v['mean']:.4g}" for n, v in by.items())
        lines.append(
            f"| `{test.split('::', 1)[1]}` | `{key.split('/')[-1]}` | {op} {bound:g} | {s['n']} "
            f"| {s['min']:.4g} | {s['max']:.4g} | {s['mean']:.4g} ± {s['std']:.2g} ({detail}) "
            f"| {s['margin']:.1f} | {'yes' if s['ok'] else '**no**'} |"
        )
    return lines


def write_comments(entries, seeds) -> None:
    """Above each check, one comment with its distribution over every parametrization.

    The entries' keys are moved to the checks' lines after the comments are
    inserted, so that the table names the lines as they are written.
    """
    by_key = defaultdict(list)
    for e in entries:
        by_key[e["key"]].append(e)
    files = defaultdict(dict)
    for key, group in by_key.items():
        path, line = key.rsplit(":", 1)
        s = summarise([e["value"] for e in group], group[0]["op"], group[0]["bound"])
        files[path][int(line)] = (
            f"{COMMENT}seeds {min(seeds)}-{max(seeds)} x default/COMPATIBLE numerics: "
            f"min {s['min']:.3g}, max {s['max']:.3g}, mean {s['mean']:.3g} ± {s['std']:.2g}"
        )
    moved = {}
    for path, comments in files.items():
        lines = (ROOT / path).read_text().split("\n")
        inserted = []
        for number in sorted(comments, reverse=True):
            index = number - 1
            indent = re.match(r"\s*", lines[index]).group(0)
            if lines[index - 1].strip().startswith(COMMENT.strip()):
                lines[index - 1] = indent + comments[number]
            else:
                lines.insert(index, indent + comments[number])
                inserted.append(number)
        (ROOT / path).write_text("\n".join(lines))
        for number in comments:  # each comment inserted above a line moves it down one
            moved[f"{path}:{number}"] = f"{path}:{number + sum(n <= number for n in inserted)}"
    for e in entries:
        e["key"] = moved[e["key"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--numerics", nargs="+", default=list(NUMERICS), choices=list(NUMERICS))
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("--write-comments", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "trained_results.md")
    args = parser.parse_args(argv)
    entries = sweep(args.seeds, args.numerics, args.workers)
    if args.write_comments:
        write_comments(entries, args.seeds)
    lines = table(entries)
    header = (
        "# The distributions behind the bounds of the tests of trained results\n\n"
        "Written by `python benchmarks/bench_test_margins.py"
        f"{' --write-comments' if args.write_comments else ''}` (seeds "
        f"{' '.join(map(str, args.seeds))}; numerics: {', '.join(args.numerics)}) on "
        f"{_machine.describe()}.\nA check is ok when every value meets its bound and the "
        "mean is at least three standard deviations from it.\n\n"
    )
    args.out.write_text(header + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
