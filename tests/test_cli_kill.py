"""SIGKILL while ``skdeepcluster cluster --overwrite`` writes: never a mix of two runs.

Each repeat runs the command in its own process over a copy of an earlier
run's output folder, waits for its temporary folder (``out.tmp-*``) to appear,
kills it with SIGKILL at a random moment of the writing phase, which the test
hook ``SKDEEPCLUSTER_TEST_WRITE_DELAY`` slows down, and checks that the folder
holds exactly the earlier results or exactly the complete new ones.

The processes are forks of this (warm) interpreter running the command's
``main``: a fresh ``python -m skdeepcluster`` spends seconds importing torch
(and torch._dynamo, which the first optimizer imports) before it writes
anything. ``SKDEEPCLUSTER_KILL_FRESH=1`` runs ``python -m skdeepcluster`` in
fresh interpreters instead; ``SKDEEPCLUSTER_KILL_REPEATS=20`` runs more
repeats (default 5) and ``SKDEEPCLUSTER_KILL_SEED`` replays the kill moments
of an earlier run.
"""

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from skdeepcluster.cli import main

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL and fork: Linux only"
)

REPEATS = int(os.environ.get("SKDEEPCLUSTER_KILL_REPEATS", "5"))
FRESH = os.environ.get("SKDEEPCLUSTER_KILL_FRESH", "") not in ("", "0")
#: Commands running at a time.
PARALLEL = int(os.environ.get("SKDEEPCLUSTER_KILL_PARALLEL", "5"))
#: Seconds the command sleeps after each file it writes (4 files), and the span
#: after the temporary folder appears in which the kill falls: mostly while
#: writing, sometimes after the new results are in place.
WRITE_DELAY = 0.2
KILL_SPAN = 1.0
ROOT = Path(__file__).resolve().parents[1]
OPTIONS = [
    "-k", "3", "--epochs", "1", "--latent-dim", "2", "--hidden-layer-sizes", "16",
    "--pca-components", "2", "--device", "cpu",
]  # fmt: skip
NEW_FILES = {"labels.csv", "embedding.npy", "model.joblib", "summary.json"}


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def check_new_results(out, n_samples):
    """``out`` holds every file of the new run, complete."""
    assert {p.name for p in out.iterdir()} == NEW_FILES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == n_samples and set(summary["files"]) == NEW_FILES
    lines = (out / "labels.csv").read_text().splitlines()
    assert lines[0] == "index,label" and len(lines) == n_samples + 1
    assert np.load(out / "embedding.npy").shape == (n_samples, 2)
    assert joblib.load(out / "model.joblib").labels_.shape == (n_samples,)


def run_main(argv):
    """The body of a forked process: the command, as ``python -m skdeepcluster`` runs it."""
    # A fork inherits no OpenMP worker threads: a parallel region started by torch in the
    # child of a process that had used its thread pool never returns (GNU libgomp). One
    # thread runs no parallel region, so the fork works whatever this process did before.
    torch.set_num_threads(1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the process ends with main
    sys.exit(main(argv))


class Command:
    """The command running in its own process: a fork of this one, or a fresh one."""

    def __init__(self, argv, env, log):
        if FRESH:
            self.proc = subprocess.Popen([sys.executable, "-m", "skdeepcluster", *argv],
                                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                         stderr=log)  # fmt: skip
        else:
            self.proc = multiprocessing.get_context("fork").Process(target=run_main, args=(argv,))
            self.proc.start()

    def poll(self):
        """The exit status (negative: killed by that signal), None while running."""
        return self.proc.poll() if FRESH else self.proc.exitcode

    def kill(self):
        if self.poll() is None:  # never signal a pid that has been reaped
            self.proc.kill()  # SIGKILL


def kill_while_writing(runs, env, rng):
    """Run each ``(out, argv)``; SIGKILL it at a random moment once ``out.tmp-*`` exists.

    Returns ``{out: (exit status, stderr of a fresh process)}``.
    """
    pending, running, finished = list(runs), {}, {}
    deadline = time.monotonic() + 120 + 30 * len(runs)
    while pending or running:
        while pending and len(running) < PARALLEL:
            out, argv = pending.pop(0)
            log = open(out.parent / "stderr.txt", "w+")  # noqa: SIM115 - closed below
            running[out] = {"command": Command(argv, env, log), "log": log, "kill_at": None}
        now = time.monotonic()
        assert now < deadline, "the command took far too long"
        for out, state in list(running.items()):
            if state["kill_at"] is None and any(out.parent.glob(out.name + ".tmp-*")):
                state["kill_at"] = now + rng.uniform(0.0, KILL_SPAN)
            if state["kill_at"] is not None and now >= state["kill_at"]:
                state["command"].kill()
            code = state["command"].poll()
            if code is not None:
                state["log"].seek(0)
                finished[out] = (code, state["log"].read())
                state["log"].close()
                del running[out]
        time.sleep(0.005)
    return finished


def test_sigkill_while_writing_leaves_previous_or_new_results(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    seed = int(os.environ.get("SKDEEPCLUSTER_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    data = tmp_path / "X.npy"
    y = np.repeat(np.arange(3), 20)
    np.save(data, np.random.default_rng(0).normal(size=(60, 6)) * 0.3 + y[:, None] * 3.0)

    # The earlier run: 30 samples, with plots; the killed one: 50 samples, without.
    earlier = tmp_path / "earlier"
    assert main(["cluster", str(data), *OPTIONS, "--max-samples", "30", "--out", str(earlier)]) == 0
    before = contents(earlier)
    assert any(name.endswith(".png") for name in before)
    runs = []
    for i in range(REPEATS):
        out = tmp_path / f"run{i}" / "out"
        shutil.copytree(earlier, out)
        argv = ["cluster", str(data), *OPTIONS, "--max-samples", "50", "--no-plots",
                "--overwrite", "--out", str(out)]  # fmt: skip
        runs.append((out, argv))
    env = {**os.environ, "SKDEEPCLUSTER_TEST_WRITE_DELAY": str(WRITE_DELAY),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # fmt: skip

    monkeypatch.setenv("SKDEEPCLUSTER_TEST_WRITE_DELAY", str(WRITE_DELAY))  # for the forks
    finished = kill_while_writing(runs, env, rng)
    monkeypatch.delenv("SKDEEPCLUSTER_TEST_WRITE_DELAY")

    outcomes = []
    for out, _ in runs:
        code, stderr = finished[out]
        assert code in (0, -signal.SIGKILL), f"seed {seed}: exit {code} {stderr}"
        if contents(out) == before:
            outcomes.append("earlier")
        else:
            check_new_results(out, 50)
            outcomes.append("new")
        assert code != 0 or outcomes[-1] == "new", f"seed {seed}: finished but not replaced"
    print(f"kill test (seed {seed}): {outcomes.count('earlier')} earlier, "
          f"{outcomes.count('new')} new of {REPEATS}")  # fmt: skip

    # Temporary folders the kills left behind do not disturb the next run, which
    # removes them (their process is gone and they are older than the run).
    stale = [out for out, _ in runs if list(out.parent.glob("out.tmp-*"))]
    out = stale[0] if stale else runs[0][0]
    assert main(["cluster", str(data), *OPTIONS, "--no-plots", "--overwrite", "--out",
                 str(out)]) == 0  # fmt: skip
    check_new_results(out, 60)
    assert not list(out.parent.glob("out.tmp-*")) and not list(out.parent.glob("out.old-*"))
