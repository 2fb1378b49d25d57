"""Rounding that makes a row's result independent of the batch it was computed in."""

from __future__ import annotations

import numpy as np

#: Significant bits kept relative to a row's largest entry (float32's significand).
_BITS = 24

#: Extra bits of the first, finer rounding (see ``round_rows``).
_GUARD_BITS = 16


def round_rows(values, reference=None) -> np.ndarray:
    """Round each row to a grid of ``2**-24`` times its largest ``|entry|`` (float64 out).

    Matrix products round differently (by about 1e-16 relative to their
    terms) depending on how many rows are multiplied at once, so the same row
    gets slightly different codes or embeddings in different batches, and an
    entry that cancels to zero can come out as 0 in one batch and 1e-17 in
    another. Rounding each row on a grid set by its own largest entry (the
    precision float32 gives that entry) removes both: the largest entries are
    rounded as by a float32 cast, and entries far below them snap to
    the same multiple of the grid, where a float32 cast would keep their
    noise. The grid depends on the row alone, so the result does not depend
    on the batch; dividing and multiplying by a power of two is exact. The
    values are first rounded to a grid ``2**16`` times finer: a value that
    lies exactly on a half-step of the coarse grid (sums of float32 weights
    often do) then stays an exact tie whatever its noise, instead of the
    noise deciding which way it rounds.

    A row that is all noise (every entry cancels, e.g. the PCA of identical
    codes) has no large entry to set its grid: ``reference``, the rows the
    values were computed from, then sets it too (the grid follows the
    largest entry of the row and of its reference row).

    Parameters
    ----------
    values : array-like of shape (n_rows, n_columns)
        Rows computed in float64 (or float32).
    reference : array-like of shape (n_rows, n_other), optional
        The inputs of the computation, row for row.

    Returns
    -------
    ndarray of shape (n_rows, n_columns)
        The rounded rows, float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skdeepcluster._precision import round_rows
    >>> round_rows(np.array([[0.5, 1e-17], [0.5, 0.0]]))
    array([[0.5, 0. ],
           [0.5, 0. ]])
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy()
    with np.errstate(invalid="ignore"):
        largest = np.max(np.abs(values), axis=1, keepdims=True)
        if reference is not None and np.size(reference):
            reference = np.asarray(reference, dtype=np.float64)
            largest = np.maximum(largest, np.max(np.abs(reference), axis=1, keepdims=True))
    _, exponent = np.frexp(largest)
    # Two roundings: first to a grid 2**16 times finer, which absorbs the batch noise
    # of a value that sits exactly on a coarse half-step (sums of float32 weights
    # often do: the noise would otherwise decide which way the tie goes), then to
    # the float32-precision grid, where such a value is an exact tie (half to even).
    fine = np.ldexp(1.0, np.maximum(exponent - _BITS - _GUARD_BITS, -1074))
    step = np.ldexp(1.0, np.maximum(exponent - _BITS, -1022))
    return np.round(np.round(values / fine) * fine / step) * step
