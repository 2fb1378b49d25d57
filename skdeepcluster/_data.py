"""Where training batches come from: a tensor on the device, or a stream of blocks.

The training loop and the refinements draw batches from a *source*:

- :class:`TensorSource` holds the whole data set as one float32 tensor on the
  device and indexes batches with a permutation (the fast path, used whenever
  the data fit comfortably in memory).
- :class:`StreamSource` reads an array-like (``np.memmap``, h5py or zarr
  array, any object with ``shape``, ``dtype`` and row slicing) in contiguous
  blocks of rows, visits the blocks in a random order and shuffles the rows
  inside each block, so that memory stays bounded by a few blocks whatever the
  size of the data. The next block is read in a background thread while the
  current one trains.

Both yield ``(indices, batch)`` pairs, where ``indices`` are the rows' positions
in the full data set (a tensor on the device, used by DEC to look up targets).
"""

from __future__ import annotations

import mmap
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._warn import warn_user

#: Size of one block read by :class:`StreamSource` and :func:`iter_row_blocks`
#: (about 16 MiB of float32): large reads, a bounded footprint.
STREAM_BLOCK_BYTES = 16 * 2**20


def batch_bounds(n_samples: int, batch_size: int, *, avoid_singleton: bool) -> list[int]:
    """Start offsets of the batches, plus ``n_samples`` at the end.

    With ``avoid_singleton`` a last batch of one row is merged into the one
    before it (batch normalisation cannot train on a single row).
    """
    bounds = list(range(0, n_samples, batch_size)) + [n_samples]
    if avoid_singleton and len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return bounds


def release_pages(X) -> None:
    """Drop the pages of a memory-mapped ``X`` from this process's resident memory.

    Reading a :class:`numpy.memmap` maps the file's pages into the process, and
    the kernel keeps them there (counted in its resident set) until memory runs
    short. For a shared mapping (``mode='r'`` or ``'r+'``) ``MADV_DONTNEED``
    removes them from the process while they stay in the page cache, so a
    stream over a file larger than memory keeps a small footprint. Private
    (copy-on-write, ``mode='c'``) mappings are left alone: the advice would
    discard their changes. Does nothing for other arrays or platforms.
    """
    mapped = getattr(X, "_mmap", None)
    if (
        isinstance(mapped, mmap.mmap)
        and getattr(X, "mode", None) in ("r", "r+")
        and hasattr(mapped, "madvise")
        and sys.platform.startswith("linux")
    ):
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # pragma: no cover - closed or unsupported mapping
            pass


def read_rows(X, start: int, stop: int, *, dtype=np.float32) -> np.ndarray:
    """``X[start:stop]`` as a fresh C-contiguous array of ``dtype``.

    The pages of a memory-mapped ``X`` are released afterwards (see
    :func:`release_pages`).
    """
    block = np.array(X[start:stop], dtype=dtype, order="C", copy=True)
    release_pages(X)
    return block


def read_sorted_rows(X, rows: np.ndarray | None = None) -> np.ndarray:
    """``X[rows]`` (all of ``X`` for None) as float32; ``rows`` in increasing order.

    A NumPy array is indexed directly: sorted rows read a memmap front to back,
    touching only the pages that hold them, which are released afterwards (see
    :func:`release_pages`). Other array-likes promise row slicing only (h5py,
    zarr; see :func:`streamable`): they are read block by block, keeping the
    rows asked for.
    """
    if isinstance(X, np.ndarray):
        sample = np.asarray(X if rows is None else X[rows], dtype=np.float32)
        release_pages(X)
        return sample
    block_rows = max(1, STREAM_BLOCK_BYTES // (4 * int(X.shape[1])))
    taken = []
    for start, block in iter_row_blocks(X, block_rows):
        if rows is None:
            taken.append(block)
        else:
            lo, hi = np.searchsorted(rows, [start, start + block.shape[0]])
            taken.append(block[rows[lo:hi] - start])
    return np.concatenate(taken)


def iter_row_blocks(X, block_rows: int, *, dtype=np.float32) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, X[start:start + block_rows])`` as C-contiguous arrays of ``dtype``.

    Works on anything with row slicing; pages of a memory-mapped ``X`` are
    released after each block (see :func:`release_pages`).
    """
    for start in range(0, X.shape[0], block_rows):
        yield start, read_rows(X, start, start + block_rows, dtype=dtype)


def streamable(X) -> bool:
    """Whether ``X`` can be streamed: a 2-D array-like with ``shape``, ``dtype`` and slicing."""
    shape = getattr(X, "shape", None)
    return (
        shape is not None
        and len(shape) == 2
        and hasattr(X, "dtype")
        and hasattr(X, "__getitem__")
        and not hasattr(X, "tocsr")  # scipy sparse
        and not hasattr(X, "iloc")  # pandas: validated and copied instead
        and not isinstance(X, torch.Tensor)
    )


def _block_rows(n_features: int, batch_size: int) -> int:
    """Rows per block: about ``STREAM_BLOCK_BYTES`` of float32, a multiple of ``batch_size``."""
    rows = max(1, STREAM_BLOCK_BYTES // (4 * max(1, n_features)))
    return max(batch_size, rows // batch_size * batch_size)


class TensorSource:
    """All of ``X`` as one tensor on the device; batches indexed by a permutation."""

    def __init__(self, X: torch.Tensor) -> None:
        if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[0] == 0:
            shape = tuple(X.shape) if hasattr(X, "shape") else None
            raise ValueError(f"X must be a non-empty 2-D tensor, got shape {shape}.")
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.device = X.device

    def batches(
        self, batch_size: int, generator: torch.Generator | None, *, avoid_singleton: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled batches ``(indices, rows)``."""
        bounds = batch_bounds(self.n_samples, batch_size, avoid_singleton=avoid_singleton)
        perm = torch.randperm(self.n_samples, generator=generator).to(self.device)
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            idx = perm[start:stop]
            yield idx, self.X[idx]

    def sequential(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The rows in order, ``batch_size`` at a time."""
        for start in range(0, self.n_samples, batch_size):
            yield self.X[start : start + batch_size]


class StreamSource:
    """Stream an array-like from host memory or disk, one block of rows at a time.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Anything with ``shape`` and row slicing (``X[a:b]`` returning an
        array): :class:`numpy.memmap`, h5py/zarr arrays, a numpy array.
    device : torch.device
        Where batches are sent.
    batch_size : int
        Training batch size; blocks hold a multiple of it.
    block_rows : int, optional
        Rows per block; by default about 16 MiB of float32.

    Notes
    -----
    Shuffling is two-level: the order of the blocks is random each epoch and
    so is the order of the rows inside a block. Batches never mix blocks,
    which is what keeps the reads contiguous.
    """

    def __init__(
        self, X, device: torch.device, batch_size: int, *, block_rows: int | None = None
    ) -> None:
        self.X = X
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        if self.n_samples == 0:
            raise ValueError("X must contain at least one sample.")
        self.device = torch.device(device)
        self.block_rows = int(block_rows or _block_rows(self.n_features, batch_size))

    def _blocks(self) -> list[tuple[int, int]]:
        starts = list(range(0, self.n_samples, self.block_rows))
        bounds = [*starts, self.n_samples]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def _read(self, start: int, stop: int) -> torch.Tensor:
        block = read_rows(self.X, start, stop)
        return torch.from_numpy(block).to(self.device, non_blocking=True)

    def _prefetched(self, blocks: list[tuple[int, int]]) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, block tensor)`` for ``blocks`` in order, reading one ahead."""
        if not blocks:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="skdc-read") as pool:
            future = pool.submit(self._read, *blocks[0])
            for i, (start, _) in enumerate(blocks):
                block = future.result()
                if i + 1 < len(blocks):
                    future = pool.submit(self._read, *blocks[i + 1])
                yield start, block

    def batches(
        self, batch_size: int, generator: torch.Generator | None, *, avoid_singleton: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled batches ``(indices, rows)``, block by block."""
        blocks = self._blocks()
        if avoid_singleton and len(blocks) > 1 and blocks[-1][1] - blocks[-1][0] == 1:
            # A single-row block would make a single-row batch: merge it.
            blocks[-2:] = [(blocks[-2][0], blocks[-1][1])]
        order = torch.randperm(len(blocks), generator=generator).tolist()
        for start, block in self._prefetched([blocks[i] for i in order]):
            n = block.shape[0]
            local = torch.randperm(n, generator=generator).to(self.device)
            bounds = batch_bounds(n, batch_size, avoid_singleton=avoid_singleton)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                idx = local[a:b]
                yield idx + start, block[idx]

    def sequential(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The rows in order, ``batch_size`` at a time."""
        for _, block in self._prefetched(self._blocks()):
            yield from block.split(batch_size)


def as_source(X) -> TensorSource | StreamSource:
    """``X`` itself when it is a source, else a :class:`TensorSource` over the tensor ``X``."""
    if isinstance(X, (TensorSource, StreamSource)):
        return X
    return TensorSource(X)


def check_stream(X) -> None:
    """Validate an array-like to stream without copying it whole (cf. ``check_array``).

    Checks a real numeric dtype, at least one row and one column, and, block by
    block, that every value is finite; raises ``ValueError`` naming the rows.
    """
    dtype = np.dtype(X.dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise ValueError(f"X has dtype {dtype}; a real numeric array is needed.")
    n_samples, n_features = (int(n) for n in X.shape)
    if n_samples < 1 or n_features < 1:
        raise ValueError(
            f"Found array with {n_samples} sample(s) and {n_features} feature(s) "
            f"(shape={tuple(X.shape)}) while a minimum of 1 is required."
        )
    if not np.issubdtype(dtype, np.floating):
        return
    rows = max(1, STREAM_BLOCK_BYTES // (dtype.itemsize * n_features))
    for start, block in iter_row_blocks(X, rows, dtype=dtype):
        if not np.isfinite(block).all():
            what = "NaN" if np.isnan(block).any() else "infinity"
            raise ValueError(
                f"Input X contains {what} (in rows {start} to {start + block.shape[0] - 1})."
            )


def split_rows(X, fraction: float, seed: int):
    """Training and validation rows of ``X``, drawn at random (validation None when unused)."""
    if not fraction:
        return X, None
    n_val = int(round(fraction * X.shape[0]))
    if n_val < 1 or X.shape[0] - n_val < 1:
        raise ValueError(
            f"validation_fraction={fraction} leaves an empty training or validation set "
            f"with n_samples={X.shape[0]}."
        )
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    return X[perm[n_val:]], X[perm[:n_val]]


#: Inputs whose largest absolute value falls outside this range get a warning:
#: the initial weights, learning rates and tolerances assume features of order
#: one, so at 1e-30 every reconstruction error underflows to nothing and all
#: codes coincide, and at 1e30 the first steps overflow. Without a network it
#: is the range of the second stage and the clusterer on the input as given
#: (``standardize=False``): their tolerances and first steps assume it too.
SCALE_RANGE = (1e-6, 1e6)

#: Without a network and with ``standardize=True`` the scaler removes the input's
#: scale before anything else sees it, in float64: blobs scaled by 1e-30, 1e-200
#: or 1e30 got the same labels as unscaled (float32 input down to 1e-40 too). The
#: warning then keeps to float32's normal range: beyond its largest value the codes
#: are refused (``encode_array``), and below its smallest the input projection
#: (``input_pca``, stored in float32) and k-means on the scaled values (whose squared
#: deviations underflow float64 from about 1e-160) lose the data.
STANDARDIZED_SCALE_RANGE = (
    float(np.finfo(np.float32).tiny),
    float(np.finfo(np.float32).max),
)


def warn_if_badly_scaled(
    max_abs: float, *, network: bool = True, standardize: bool = True
) -> None:
    """Warn (``UserWarning``) when the largest absolute input makes the fit meaningless.

    The warning points at the user's line that called ``fit`` or ``partial_fit``
    (:func:`~skdeepcluster._warn.warn_user`), whatever the depth of the caller.

    Parameters
    ----------
    max_abs : float
        The largest absolute value of ``X``.
    network : bool, default=True
        Whether a network is trained on ``X`` (else, ``architecture='none'``,
        the second stage and the clusterer work on the input).
    standardize : bool, default=True
        Whether the input is standardized first when no network is trained:
        the scaler then removes the scale, and only values outside
        ``STANDARDIZED_SCALE_RANGE`` (float32's normal range) warn.
    """
    low, high = SCALE_RANGE if network or not standardize else STANDARDIZED_SCALE_RANGE
    if low <= max_abs <= high:
        return
    what = "every value of X is 0" if max_abs == 0 else f"the largest |X| is {max_abs:.3g}"
    advice = (
        "Scale the input first, e.g. with sklearn.preprocessing.StandardScaler or MaxAbsScaler."
    )
    if network:
        why = (
            f"while the network expects features of order 1 (between {low:g} and {high:g}); "
            "training would learn nothing useful."
        )
    elif not standardize:
        why = (
            "while no network is trained (architecture 'none') and standardize=False: the "
            "second stage (the neighbour embedding or reducer) and the clusterer work on X "
            f"as given, and their tolerances expect features of order 1 (between {low:g} "
            f"and {high:g})."
        )
        advice = "Set standardize=True, or s" + advice[1:]
    elif max_abs == 0:
        why = "so all samples coincide: no network is trained and no scaling separates them."
    else:
        why = (
            f"outside float32's normal range ({low:.3g} to {high:.3g}): no network is "
            "trained (architecture 'none') and the input is standardized, but at this "
            "scale its values lose their precision or overflow, and the distances between "
            "samples degenerate."
        )
    warn_user(f"X is badly scaled: {what}, {why} {advice}")


def max_abs(X) -> float:
    """The largest absolute value of an array, or of an array-like read in blocks."""
    if isinstance(X, np.ndarray) and not isinstance(X, np.memmap):
        return float(np.abs(X).max()) if X.size else 0.0
    rows = max(1, STREAM_BLOCK_BYTES // (8 * max(1, X.shape[1])))
    return max(
        (float(np.abs(b).max()) for _, b in iter_row_blocks(X, rows, dtype=np.float64)), default=0.0
    )
