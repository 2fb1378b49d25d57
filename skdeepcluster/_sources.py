"""Data read on demand, in blocks of rows: folders of ``.npy`` shards, Parquet and Zarr.

:func:`open_rows` (exported as :func:`skdeepcluster.datasets.open_rows`) opens
such data as a :class:`ShardedArray`: a 2-D array-like that holds no rows, only
where to read them. It has what :class:`~skdeepcluster.AutoencoderKMeans`
streams (see :mod:`skdeepcluster._data`): ``shape``, ``dtype`` and row slicing
``X[a:b]``, which reads just the blocks (memory-mapped shards, the Zarr
array's chunks, Parquet row groups) that hold those rows. ``np.asarray(X)``
reads it whole, which the estimator does only for data small enough to copy
(``streaming='auto'``).

pyarrow and zarr are optional: without them opening Parquet or Zarr raises an
``ImportError`` that names the extra to install.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._data import STREAM_BLOCK_BYTES, release_pages

__all__ = ["ShardedArray", "open_rows"]

#: Names of the features and labels arrays in a Zarr group (as in ``.npz`` files).
#: The names of the features and labels arrays in a Zarr group or a ``.npz`` archive.
_X_NAMES = ("X", "x", "data")
_Y_NAMES = ("y", "target", "labels")

#: Label shards in a folder of ``.npy`` shards: ``labels*.npy``.
_LABELS_PREFIX = "labels"


def require(module: str, extra: str, what: str):
    """Import ``module``, or raise ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(
            f"{what} needs the {package} package: pip install \"skdeepcluster[{extra}]\""
        ) from None


def _float_dtype(dtypes) -> np.dtype:
    """The float dtype of the rows: float32 when it holds every part's values exactly
    (floats of at most 4 bytes, booleans and integers of at most 2: pixels, counts),
    else float64."""
    return np.dtype(np.float32 if all(map(_exact_in_float32, dtypes)) else np.float64)


def _exact_in_float32(dtype) -> bool:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.itemsize <= 4
    return dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize <= 2)


def _check_numeric(dtype, where: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise ValueError(f"{where} holds {dtype} values; a real numeric array is needed.")


# ------------------------------------------------------------------ blocks
class _ArrayBlock:
    """Rows of one row-sliceable 2-D array: a memory-mapped shard or a Zarr array."""

    def __init__(self, array) -> None:
        self.array = array
        self.n_rows = int(array.shape[0])

    def read(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        block = np.array(self.array[start:stop], dtype=dtype, copy=True)
        release_pages(self.array)
        return block

    def __reduce__(self):
        # A memory-mapped shard pickles as its path (for Dask workers, which open the
        # file themselves), not as a copy of its rows.
        filename = getattr(self.array, "filename", None)
        if isinstance(self.array, np.memmap) and filename is not None:
            return (_reopened_shard, (str(filename),))
        return (_ArrayBlock, (self.array,))


def _reopened_shard(path: str) -> _ArrayBlock:
    return _ArrayBlock(np.load(path, mmap_mode="r", allow_pickle=False))


class _RowGroupCache:
    """The row group of a Parquet data set read last: consecutive slices read it once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple | None = None
        self.rows: np.ndarray | None = None


class _ParquetRowGroup:
    """Rows of one row group of a Parquet file (its feature columns, nulls as NaN)."""

    def __init__(self, path: Path, index: int, n_rows: int, columns: list[str], cache) -> None:
        self.path, self.index, self.n_rows, self.columns = path, index, n_rows, columns
        self.cache = cache

    def read(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        key = (self.path, self.index, np.dtype(dtype))
        with self.cache.lock:
            if self.cache.key != key:
                self.cache.key, self.cache.rows = None, None  # free the previous one first
                self.cache.rows, self.cache.key = self._read_all(dtype), key
            return self.cache.rows[start:stop].copy()

    def _read_all(self, dtype: np.dtype) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path).read_row_group(self.index, columns=self.columns)
        rows = np.empty((table.num_rows, len(self.columns)), dtype=dtype)
        for j, name in enumerate(self.columns):  # nulls become NaN, refused by the fit
            column = table.column(name).cast(pa.from_numpy_dtype(dtype), safe=False)
            rows[:, j] = column.to_numpy()
        return rows


# ------------------------------------------------------------ the array-like
class ShardedArray:
    """A 2-D array-like whose rows are read on demand from a list of blocks.

    Returned by :func:`open_rows`. It holds no rows: ``X[a:b]`` reads the
    blocks that hold rows ``a`` to ``b`` (memory-mapped ``.npy`` shards, the
    chunks of a Zarr array, Parquet row groups) and returns a new array of
    ``dtype``; integer arrays (any order) and single rows work too.
    ``np.asarray(X)`` reads every row.

    Parameters
    ----------
    blocks : list
        The row blocks in order, each with ``n_rows`` and ``read(start, stop,
        dtype)`` (an array of those rows); empty ones are dropped.
    n_features : int
        The number of columns of every block.
    dtype : numpy.dtype
        The dtype of the rows returned.
    source : str, default=""
        What the rows are read from, for messages.

    Attributes
    ----------
    shape : tuple of int
        ``(n_samples, n_features)``.
    dtype : numpy.dtype
        float32 when every block holds float32 (or narrower floats), else float64.
    source : str
        What the rows are read from, for messages.
    """

    ndim = 2

    def __init__(self, blocks, n_features: int, dtype, source: str = "") -> None:
        self._blocks = [b for b in blocks if b.n_rows > 0]
        self._starts = np.cumsum([0] + [b.n_rows for b in self._blocks])
        self._n_rows = int(self._starts[-1])
        self.shape = (self._n_rows, int(n_features))
        self.dtype = np.dtype(dtype)
        self.source = source

    @property
    def size(self) -> int:
        """The number of values, ``n_samples * n_features``."""
        return self.shape[0] * self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, source={self.source!r})"

    def head(self, n_rows: int) -> ShardedArray:
        """The first rows, still read on demand.

        Parameters
        ----------
        n_rows : int
            How many rows to keep (all of them if there are fewer).

        Returns
        -------
        head : ShardedArray of shape (min(n_rows, n_samples), n_features)
        """
        n_rows = max(0, min(int(n_rows), self.shape[0]))
        last = int(np.searchsorted(self._starts, n_rows, side="left"))
        blocks = list(self._blocks[:last])
        if blocks and self._starts[last] > n_rows:
            blocks[-1] = _Head(blocks[-1], n_rows - int(self._starts[last - 1]))
        return ShardedArray(blocks, self.shape[1], self.dtype, self.source)

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a ShardedArray cannot be read without a copy.")
        rows = self._read(0, self.shape[0])
        return rows if dtype is None else rows.astype(dtype, copy=False)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) == 1:
                return self[key[0]]
            if len(key) != 2:
                raise IndexError(f"too many indices for a 2-D array: {len(key)}")
            rows = self[key[0]]
            return rows[:, key[1]] if rows.ndim == 2 else rows[key[1]]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                return self._read(start, max(start, stop))
            return self._take(np.arange(start, stop, step))
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"row {key} is out of bounds for {self.shape[0]} rows")
            return self._read(index, index + 1)[0]
        index = np.asarray(key)
        if index.dtype == np.bool_:
            if index.shape != (self.shape[0],):
                raise IndexError(f"boolean index of shape {index.shape} for {self.shape[0]} rows")
            index = np.flatnonzero(index)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise IndexError("rows are selected by a slice, an integer or a 1-D integer array")
        return self._take(index.astype(np.int64))

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (within bounds), read from the blocks that hold them."""
        out = np.empty((stop - start, self.shape[1]), dtype=self.dtype)
        first = max(0, int(np.searchsorted(self._starts, start, side="right")) - 1)
        for i in range(first, len(self._blocks)):
            lo, hi = int(self._starts[i]), int(self._starts[i + 1])
            if lo >= stop:
                break
            a, b = max(start, lo), min(stop, hi)
            out[a - start : b - start] = self._blocks[i].read(a - lo, b - lo, self.dtype)
        return out

    def _take(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order, negatives from the end), reading windows that hold them."""
        n = self.shape[0]
        index = np.where(index < 0, index + n, index)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"row index out of bounds for {n} rows")
        order = np.argsort(index, kind="stable")
        wanted = index[order]
        out = np.empty((index.size, self.shape[1]), dtype=self.dtype)
        window = max(1, STREAM_BLOCK_BYTES // (self.dtype.itemsize * max(1, self.shape[1])))
        i = 0
        while i < wanted.size:
            start = int(wanted[i])
            j = int(np.searchsorted(wanted, start + window, side="left"))
            rows = self._read(start, int(wanted[j - 1]) + 1)
            out[order[i:j]] = rows[wanted[i:j] - start]
            i = j
        return out


class _Head:
    """The first ``n_rows`` rows of a block."""

    def __init__(self, block, n_rows: int) -> None:
        self.block, self.n_rows = block, n_rows

    def read(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        return self.block.read(start, min(stop, self.n_rows), dtype)


# ----------------------------------------------------------------- openers
@dataclass
class Opened:
    """What :func:`open_source` found: the rows, the labels (or None) and the format."""

    X: ShardedArray
    y: np.ndarray | None
    format: str  # 'npy-shards', 'parquet' or 'zarr'


def _is_zarr(path: Path) -> bool:
    markers = ("zarr.json", ".zarray", ".zgroup")
    return path.suffix.lower() == ".zarr" or any((path / m).is_file() for m in markers)


def source_format(path: Path) -> str | None:
    """The format :func:`open_source` reads ``path`` as, or None when it reads none.

    Raises ValueError for a folder holding both ``.npy`` and ``.parquet`` files.
    """
    if path.is_dir():
        if _is_zarr(path):
            return "zarr"
        has_npy = any(p.is_file() for p in path.glob("*.npy"))
        has_parquet = any(p.is_file() for p in path.rglob("*.parquet"))
        if has_npy and has_parquet:
            raise ValueError(
                f"{path} holds both .npy and .parquet files; put each data set in its own folder."
            )
        return "npy-shards" if has_npy else "parquet" if has_parquet else None
    suffix = path.suffix.lower()
    return {".parquet": "parquet", ".npy": "npy-shards"}.get(suffix)


def open_source(path, *, label_column: str | None = None) -> Opened:
    """Open ``path`` (see :func:`open_rows`) as rows read on demand, with its labels."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder.")
    kind = source_format(path)
    if kind is None and path.is_dir():
        raise ValueError(
            f"the folder {path} holds no .npy or .parquet files and is not a Zarr store."
        )
    if kind is None:
        raise ValueError(f"{path} is not a .npy or .parquet file, nor a folder of them.")
    if label_column is not None and kind != "parquet":
        raise ValueError(f"a label column applies to Parquet data only, not to {path}.")
    if kind == "parquet":
        opened = _open_parquet(path, label_column)
    elif kind == "zarr":
        opened = _open_zarr(path)
    else:
        opened = _open_npy_shards(path)
    if opened.X.shape[0] == 0 or opened.X.shape[1] == 0:
        raise ValueError(f"{path} is empty (shape {opened.X.shape}).")
    return opened


def _npy_shard(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise ValueError(f"cannot read {path} as a .npy file: {exc}") from None


def _npy_labels(paths: list[Path], n_samples: int) -> np.ndarray | None:
    if not paths:
        return None
    parts = []
    for path in paths:
        try:
            y = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise ValueError(f"cannot read the label shard {path}: {exc}") from None
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"the label shard {path} must be 1-D, got shape {y.shape}.")
        parts.append(y)
    y = np.concatenate(parts)
    if y.shape[0] != n_samples:
        names = ", ".join(p.name for p in paths)
        raise ValueError(
            f"the label shards ({names}) hold {y.shape[0]} labels for {n_samples} rows."
        )
    return y


def _open_npy_shards(path: Path) -> Opened:
    """A folder of 2-D ``*.npy`` shards (``labels*.npy``: labels), or one ``.npy`` file."""
    files = [path] if path.is_file() else sorted(p for p in path.glob("*.npy") if p.is_file())
    label_files = [p for p in files if p.name.lower().startswith(_LABELS_PREFIX) and p != path]
    shards = [p for p in files if p not in label_files]
    if not shards:
        raise ValueError(f"{path} holds only label shards ({_LABELS_PREFIX}*.npy), no data.")
    arrays = [_npy_shard(p) for p in shards]
    for p, a in zip(shards, arrays, strict=True):
        _check_numeric(a.dtype, str(p))
        if a.ndim != 2:
            raise ValueError(f"the shard {p} must be 2-D (n_rows, n_features), got {a.shape}.")
        if a.shape[1] != arrays[0].shape[1]:
            raise ValueError(
                f"the shard {p} has {a.shape[1]} columns but {shards[0].name} has "
                f"{arrays[0].shape[1]}; every shard needs the same columns."
            )
    X = ShardedArray(
        [_ArrayBlock(a) for a in arrays], arrays[0].shape[1],
        _float_dtype(a.dtype for a in arrays), str(path),
    )  # fmt: skip
    return Opened(X, _npy_labels(label_files, X.shape[0]), "npy-shards")


def member_keys(keys, where: str, *, x_names=_X_NAMES, y_names=_Y_NAMES):
    """The names of the features array and of the labels array (or None) among ``keys``.

    The features are the first of ``x_names`` present, else the one array that is not
    a label array; a ``ValueError`` naming ``where`` and its arrays otherwise. Shared by
    the Zarr groups here and the CLI's ``.npz`` reader.
    """
    keys = sorted(keys)
    x_key = next((k for k in x_names if k in keys), None)
    if x_key is None:
        others = [k for k in keys if k not in y_names]
        if len(others) != 1:
            raise ValueError(
                f"{where} has no array named 'X' or 'data' (it holds: "
                f"{', '.join(keys) or 'no arrays'})."
            )
        x_key = others[0]
    return x_key, next((k for k in y_names if k in keys), None)


def _zarr_member(group, path: Path):
    """The features array of a Zarr group and its labels array (or None)."""
    x_key, y_key = member_keys(group.array_keys(), f"the Zarr group {path}")
    return group[x_key], (group[y_key] if y_key else None)


def _open_zarr(path: Path) -> Opened:
    """A Zarr store holding one 2-D array, or a group with ``X``/``data`` and ``y``/``labels``."""
    zarr = require("zarr", "zarr", "reading Zarr")
    try:
        node = zarr.open(str(path), mode="r")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read {path} as a Zarr store: {exc}") from None
    X, y = (node, None) if hasattr(node, "shape") else _zarr_member(node, path)
    _check_numeric(X.dtype, f"the Zarr array {path}")
    if len(X.shape) != 2:
        raise ValueError(f"the Zarr array in {path} must be 2-D, got shape {X.shape}.")
    if y is not None:
        y = np.asarray(y[...])
        y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"the Zarr labels in {path}: shape {y.shape} for {X.shape[0]} rows.")
    rows = ShardedArray([_ArrayBlock(X)], X.shape[1], _float_dtype([X.dtype]), str(path))
    return Opened(rows, y, "zarr")


# ----------------------------------------------------------------- Parquet
def _is_numeric(pa, arrow_type) -> bool:
    types = pa.types
    return types.is_integer(arrow_type) or types.is_floating(arrow_type) or (
        types.is_boolean(arrow_type)
    )


def _label_name(schema, label_column: str | None, path: Path) -> str | None:
    """The column ``label_column`` names: a name, else a 0-based index (negative from the end)."""
    if label_column is None:
        return None
    names = schema.names
    if label_column in names:
        return label_column
    try:
        index = int(label_column)
    except ValueError:
        raise ValueError(
            f"label column {label_column!r} is not a column of {path} "
            f"(columns: {', '.join(names)})."
        ) from None
    if not -len(names) <= index < len(names):
        raise ValueError(f"label column {index} is out of range: {path} has {len(names)} columns.")
    return names[index]


def _parquet_labels(pa, column, name: str) -> np.ndarray:
    if column.null_count:
        raise ValueError(f"the label column {name!r} has {column.null_count} missing values.")
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        return column.to_numpy().astype(np.int64)
    if pa.types.is_floating(column.type):
        y = column.to_numpy().astype(np.float64)
        integral = np.all(np.isfinite(y)) and np.all(y == np.round(y))
        return y.astype(np.int64) if integral else y
    return np.array(column.to_pylist(), dtype=object)


def _parquet_file(pq, file: Path):
    try:
        return pq.ParquetFile(file)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"cannot read {file} as a Parquet file: {exc}") from None


def _parquet_columns(pa, schema, label_column: str | None, file: Path):
    """The label column (or None), the feature columns and the ignored (non-numeric) ones."""
    label = _label_name(schema, label_column, file)
    others = [f for f in schema if f.name != label]
    features = [f.name for f in others if _is_numeric(pa, f.type)]
    ignored = [f.name for f in others if not _is_numeric(pa, f.type)]
    if not features:
        raise ValueError(f"{file} has no numeric columns to cluster (besides any labels).")
    return label, features, ignored


def _check_parquet_schema(pa, parquet, file: Path, columns: tuple, first: Path) -> list:
    """The arrow types of the features; ``file`` must hold the columns ``first`` has."""
    features, label = columns
    fields = {f.name: f.type for f in parquet.schema_arrow}
    missing = [n for n in [*features, *([label] if label else [])] if n not in fields]
    if missing:
        raise ValueError(
            f"{file} lacks the column {missing[0]!r} that {first.name} has; "
            "the files of a data set need the same columns."
        )
    bad = next((n for n in features if not _is_numeric(pa, fields[n])), None)
    if bad is not None:
        raise ValueError(f"{file}: the column {bad!r} is not numeric (in {first.name} it is).")
    return [fields[n] for n in features]


def _open_parquet(path: Path, label_column: str | None) -> Opened:
    """A Parquet file, or a folder of them (a data set, read in sorted path order)."""
    require("pyarrow", "parquet", "reading Parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())
    first = _parquet_file(pq, files[0])
    label, features, ignored = _parquet_columns(pa, first.schema_arrow, label_column, files[0])
    cache, blocks, labels, types = _RowGroupCache(), [], [], set()
    for file in files:
        parquet = first if file == files[0] else _parquet_file(pq, file)
        types.update(_check_parquet_schema(pa, parquet, file, (features, label), files[0]))
        for i in range(parquet.metadata.num_row_groups):
            n_rows = parquet.metadata.row_group(i).num_rows
            blocks.append(_ParquetRowGroup(file, i, n_rows, features, cache))
        if label:
            labels.append(parquet.read(columns=[label]).column(label))
    small = all(pa.types.is_floating(t) and t.bit_width <= 32 for t in types)
    source = str(path)
    if ignored:
        source += f" (non-numeric columns ignored: {', '.join(ignored)})"
    X = ShardedArray(blocks, len(features), np.float32 if small else np.float64, source)
    y = _parquet_labels(pa, pa.chunked_array(labels), label) if label else None
    return Opened(X, y, "parquet")


def open_rows(path, *, label_column: str | None = None, return_X_y: bool = False):
    """Open a folder of ``.npy`` shards, a Parquet file or data set, or a Zarr store, lazily.

    Nothing is read but the metadata: the result reads its rows on demand, so
    that :class:`~skdeepcluster.AutoencoderKMeans` streams data larger than
    memory (``streaming='auto'`` streams from 1 GiB of float32 on; smaller data
    are copied into memory, as a memory-mapped array would be).

    Parameters
    ----------
    path : str or path-like
        One of:

        - a folder of ``*.npy`` files, each a 2-D array with the same number of
          columns, read as one array in sorted file name order (zero-pad the
          numbers: ``part-002.npy`` sorts before ``part-010.npy``) and
          memory-mapped. Files whose name starts with ``labels`` are the labels,
          1-D, concatenated in sorted order (``labels.npy``, or one
          ``labels-000.npy`` per shard); a single ``.npy`` file is one shard;
        - a ``.parquet`` file, or a folder holding ``.parquet`` files at any depth
          (a data set; read in sorted path order, partition keys in folder names
          are not read): every numeric column (integers, floats, booleans) is a
          feature, other columns are ignored, and nulls are refused when fitting.
          Needs pyarrow (``pip install "skdeepcluster[parquet]"``);
        - a Zarr store (a ``.zarr`` folder, or one holding ``zarr.json``,
          ``.zarray`` or ``.zgroup``): one 2-D array, or a group with the array
          ``X`` or ``data`` (or a single other array) and labels ``y`` or
          ``labels``. Needs zarr (``pip install "skdeepcluster[zarr]"``).
    label_column : str, default=None
        Parquet only: the column holding labels (a name, else a 0-based index,
        negative from the end), which is then not a feature.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of ``X``; ``y`` is None when there are no labels.

    Returns
    -------
    X : ShardedArray of shape (n_samples, n_features)
        A 2-D array-like of float32 (every part float32) or float64 values;
        ``X[a:b]``, ``X[indices]`` and ``np.asarray(X)`` read the rows.
    y : ndarray of shape (n_samples,) or None
        The labels, read into memory; only with ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is none of the above, or its parts disagree (shards of different
        widths, labels of another length), with a one-line message naming the file.
    ImportError
        If pyarrow or zarr is needed and missing.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skdeepcluster.datasets import open_rows
    >>> tmp = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
    >>> folder = Path(tmp.name)
    >>> for i in range(3):
    ...     np.save(folder / f"part-{i:03d}.npy", np.full((4, 2), i, dtype=np.float32))
    >>> np.save(folder / "labels.npy", np.repeat([0, 1, 2], 4))
    >>> X, y = open_rows(folder, return_X_y=True)
    >>> X.shape, X.dtype
    ((12, 2), dtype('float32'))
    >>> X[3:5]
    array([[0., 0.],
           [1., 1.]], dtype=float32)
    >>> y[3:5]
    array([0, 1])
    >>> del X
    >>> tmp.cleanup()
    """
    opened = open_source(path, label_column=label_column)
    return (opened.X, opened.y) if return_X_y else opened.X
