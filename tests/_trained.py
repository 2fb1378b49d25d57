"""Assertions on results of training, whose bounds must hold on any CPU.

A test that asserts a result of training (an accuracy, an agreement, a loss
ratio) takes the ``train_seed`` fixture (``tests/conftest.py``), which marks
it ``trained``, and asserts through :func:`check_trained`. Its bound is set
from the distribution that ``benchmarks/bench_test_margins.py`` records over
ten seeds under default numerics and under ``MKL_CBWR=COMPATIBLE``; the
comment above each check and ``tests/trained_results.md`` give that
distribution. In a sweep (``SKDC_RECORD_RESULTS`` set), the check records
the value instead of asserting it.
"""

from __future__ import annotations

import inspect
import json
import operator
import os
from pathlib import Path

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "==": operator.eq}
_ROOT = Path(__file__).resolve().parent.parent


def check_trained(value, op: str, bound: float) -> None:
    """Assert ``value <op> bound`` for a result of training, or record it in a sweep."""
    record = os.environ.get("SKDC_RECORD_RESULTS")
    if record:
        caller = inspect.currentframe().f_back  # not inspect.stack(): it reads every frame's source
        path = Path(caller.f_code.co_filename).resolve().relative_to(_ROOT)
        entry = {
            "key": f"{path}:{caller.f_lineno}",
            "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
            "value": float(value),
            "op": op,
            "bound": float(bound),
            "seed": int(os.environ.get("SKDC_TEST_SEED", "0")),
            "numerics": os.environ.get("MKL_CBWR", ""),
        }
        with open(record, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return
    assert _OPS[op](value, bound), (
        f"{value!r} {op} {bound!r} does not hold: a result of training, its bound set "
        "from the distribution in tests/trained_results.md"
    )
