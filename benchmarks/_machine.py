"""The machine a benchmark ran on, for the header of every table it prints.

A time or a result belongs to a CPU model, its instruction set, oneMKL's
reproducibility mode and a thread count: every table names them.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name, family and model and its widest vector unit (``/proc/cpuinfo``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (
        f"{fields.get('model name', platform.machine())} (family {fields.get('cpu family', '?')}"
        f", model {fields.get('model', '?')}, {vector})"
    )


def numerics() -> dict:
    """The CPU, torch's kernel level, oneMKL's mode and the threads of this process."""
    import torch

    from skdeepcluster._numerics import mkl_mode

    return {
        "cpu": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": f"{mkl_mode()} (MKL_CBWR={os.environ.get('MKL_CBWR', '')})",
        "threads": torch.get_num_threads(),
    }


def describe(info: dict | None = None) -> str:
    """One line naming the machine: ``numerics()`` of this process unless ``info`` is given."""
    info = numerics() if info is None else info
    return (
        f"CPU {info['cpu']}, {os.cpu_count()} cores | torch CPU capability "
        f"{info['capability']} | oneMKL {info['mkl']} | {info['threads']} thread(s)"
    )
