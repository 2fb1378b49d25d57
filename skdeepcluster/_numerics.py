"""Numerics that give the same fit whatever the number of threads.

PyTorch's x86 CPU builds multiply matrices with oneMKL, which by default
splits a product across threads in a way that changes the order of its sums:
the same fit on one and on two threads then drifts apart by a rounding error
per step, and the neighbour embedding amplifies that drift into other
clusters (``benchmarks/results/reproducibility.md``). oneMKL's *strict
conditional numerical reproducibility* mode (``MKL_CBWR=AUTO,STRICT``) makes
its matrix products bit-identical for any number of threads on one machine,
at a small measured cost (``benchmarks/results/reproducibility.md``). oneMKL reads
the variable once, at its first call, so :func:`prefer_strict_mkl` sets it
when skdeepcluster is imported, before any of its training runs, unless the
user chose a mode already (``MKL_CBWR`` set: their choice is kept, e.g.
``COMPATIBLE`` for results that also agree across CPU models). Hand-written
because neither PyTorch nor threadpoolctl exposes this setting.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

#: The oneMKL mode set at import: the CPU's own code branch, reproducible
#: across thread counts.
STRICT_MODE = "AUTO,STRICT"

#: oneMKL's flag for strict reproducibility in ``mkl_cbwr_get``'s answer, and its
#: code for the portable ``COMPATIBLE`` branch.
_MKL_CBWR_STRICT = 0x10000
_MKL_CBWR_COMPATIBLE = 3
_MKL_CBWR_ALL = -1


def prefer_strict_mkl() -> None:
    """Ask oneMKL for thread-count-independent products, unless ``MKL_CBWR`` is set.

    Has an effect only before oneMKL's first call in this process (for
    instance before any torch matrix product): importing skdeepcluster first,
    or setting ``MKL_CBWR=AUTO,STRICT`` in the environment, guarantees it.
    Child processes (joblib's and Dask's workers) inherit the variable.
    """
    os.environ.setdefault("MKL_CBWR", STRICT_MODE)


prefer_strict_mkl()  # on import: skdeepcluster/__init__.py imports this module first


def _mkl_library():
    """The library holding PyTorch's oneMKL service functions, or None."""
    try:
        import torch

        path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
        library = ctypes.CDLL(str(path))
        getter = library.mkl_serv_cbwr_get
    except (ImportError, OSError, AttributeError):
        return None
    getter.restype = ctypes.c_int
    return library


def mkl_mode() -> str:
    """oneMKL's reproducibility mode in this process, as far as it can be read.

    Returns
    -------
    mode : str
        ``'strict'`` when oneMKL's products do not depend on the number of
        threads, ``'compatible'`` for its portable branch
        (``MKL_CBWR=COMPATIBLE``), ``'default'`` when they may depend on the
        number of threads, ``'unknown'`` when this build
        of PyTorch does not let the mode be read (no oneMKL, another
        platform).

    Examples
    --------
    >>> from skdeepcluster._numerics import mkl_mode
    >>> mkl_mode() in ("strict", "compatible", "default", "unknown")
    True
    """
    library = _mkl_library()
    if library is None:
        return "unknown"
    import torch

    torch.ones(2, 2) @ torch.ones(2, 2)  # oneMKL settles its mode at its first call
    value = library.mkl_serv_cbwr_get(_MKL_CBWR_ALL)
    if value < 0:
        return "unknown"
    if value & _MKL_CBWR_STRICT:
        return "strict"
    return "compatible" if value == _MKL_CBWR_COMPATIBLE else "default"
