"""The readers of DATA: ``.npy``, ``.npz``, ``.csv``, IDX files, named data sets, and data
read on demand (folders of ``.npy`` shards, Parquet, Zarr).

:func:`load_data` reads a file or a data set name (``digits``, ``mnist``,
``fashion-mnist``) into a ``_Dataset`` (features, labels when known, image
shape when known, a description of the source, the input format), or raises
:class:`CLIError` with a message that names the file, and where possible the
line and column, at fault. Folders of shards, Parquet and Zarr are opened by
:mod:`skdeepcluster._sources`: their ``X`` is a ``ShardedArray``, whose rows
are read when the estimator streams them.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._sources import member_keys
from ._common import CLIError, _one_line, _os_error

_NAMED_DATASETS = {
    "digits": "digits",
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashion": "fashion-mnist",
}

_IDX_PATTERN = re.compile(r"idx\d+-ubyte(\.gz)?$", re.IGNORECASE)


@dataclass
class _Dataset:
    X: Any  # an ndarray, or a ShardedArray read on demand
    y: np.ndarray | None
    image_shape: tuple[int, int, int] | None
    source: str
    input_format: str = ""  # recorded in summary.json


def _check_matrix(X: np.ndarray, source: str) -> np.ndarray:
    if X.dtype == object or not (
        np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)
    ):
        raise CLIError(f"{source} holds {X.dtype} values; a numeric array is needed.")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise CLIError(f"{source} holds complex values; a real array is needed.")
    if X.ndim != 2:
        hint = ""
        if X.ndim > 2:
            hint = (
                " Flatten images to (n_samples, n_pixels), e.g. X.reshape(len(X), -1), "
                "and pass --image-shape."
            )
        raise CLIError(
            f"{source} must be a 2-D array (n_samples, n_features), got shape {X.shape}.{hint}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"{source} is empty (shape {X.shape}).")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise CLIError(f"{source} contains NaN or infinite values.")
    return X


def _check_labels(y: np.ndarray, n_samples: int, source: str) -> np.ndarray:
    from ..metrics import _check_finite_labels

    y = np.asarray(y)
    if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise CLIError(f"labels in {source} must be 1-D, got shape {y.shape}.")
    y = y.ravel()
    if y.shape[0] != n_samples:
        raise CLIError(
            f"{source} has {n_samples} samples but {y.shape[0]} labels."
        )
    try:  # the scores need finite labels: refuse NaN now, not after the fit
        _check_finite_labels(y, f"the label array of {source}")
    except ValueError as exc:
        raise CLIError(_one_line(exc)) from None
    return y


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive, such as .npz, or an empty one


def _check_signature(path: Path, kind: str) -> None:
    """Refuse a file that does not start as a NumPy ``kind`` ('.npy' or '.npz') file does."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or _one_line(exc)}") from None
    is_zip = head.startswith(_ZIP_MAGIC)
    if kind == ".npy" and not head.startswith(_NPY_MAGIC):
        hint = "; it is a zip archive: rename it to .npz" if is_zip else ""
        raise CLIError(
            f"cannot read {path}: it is not a NumPy .npy file (no .npy header){hint}; "
            "write arrays with numpy.save."
        )
    if kind == ".npz" and not is_zip:
        raise CLIError(
            f"cannot read {path}: it is not a NumPy .npz file (not a zip archive); "
            "write arrays with numpy.savez."
        )


def _load_npy(path: Path) -> _Dataset:
    _check_signature(path, ".npy")
    try:
        X = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npy file: {_one_line(exc)}") from None
    if not isinstance(X, np.ndarray):
        raise CLIError(f"{path} is not a .npy array file.")
    return _Dataset(_check_matrix(X, str(path)), None, None, str(path))


def _load_npz(path: Path) -> _Dataset:
    _check_signature(path, ".npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npz file: {_one_line(exc)}") from None
    try:
        x_key, y_key = member_keys(arrays, str(path))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    source = f"{path}['{x_key}']"
    X = _check_matrix(arrays[x_key], source)
    y = _check_labels(arrays[y_key], X.shape[0], str(path)) if y_key else None
    return _Dataset(X, y, None, str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label_array(values: np.ndarray) -> np.ndarray:
    """Labels (strings) as integers, else as floats, else as they are (an object array)."""
    try:
        return values.astype(np.int64)
    except ValueError:
        pass
    try:
        as_float = values.astype(np.float64)
    except ValueError:
        return values.astype(object)
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    return as_float


def _csv_first_row(path: Path) -> tuple[int, list[str]]:
    """The line number and the (stripped) cells of the first non-blank row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                cells = [c.strip() for c in row]
                if any(cells):
                    return reader.line_num, cells
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CLIError(f"cannot read {path} as CSV: {_one_line(exc)}") from None
    raise CLIError(f"{path} is empty.")


def _csv_label_index(path: Path, first: list[str], label_column: str | None):
    """The index of ``--label-column`` (or None) and whether it was named in a header."""
    if label_column is None:
        return None, False
    if label_column in first:
        return first.index(label_column), True
    try:
        label_idx = int(label_column)
    except ValueError:
        raise CLIError(
            f"--label-column {label_column!r} is not a column of {path} "
            f"(first row: {', '.join(first)})."
        ) from None
    if not -len(first) <= label_idx < len(first):
        raise CLIError(
            f"--label-column {label_idx} is out of range: {path} has {len(first)} columns."
        )
    return label_idx % len(first), False


def _csv_error(
    path: Path, skip: int, n_columns: int, label_idx: int | None, exc: Exception | str
) -> CLIError:
    """Locate the malformed row behind a failed numpy.loadtxt, for a precise message."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for row in reader:
            cells = [c.strip() for c in row]
            if reader.line_num <= skip or not any(cells):
                continue
            line = reader.line_num
            if len(cells) != n_columns:
                return CLIError(f"{path}, line {line}: {len(cells)} fields, expected {n_columns}.")
            numbers = (_is_number(c) or i == label_idx for i, c in enumerate(cells))
            bad = next((i for i, ok in enumerate(numbers) if not ok), None)
            if bad is not None:
                hint = " (use --label-column for a label column)" if label_idx is None else ""
                return CLIError(
                    f"{path}, line {line}, column {bad + 1}: non-numeric value "
                    f"{cells[bad]!r}{hint}."
                )
    return CLIError(f"cannot read {path} as CSV: {_one_line(exc)}")


def _csv_table(path: Path, skip: int, converters) -> tuple[np.ndarray | None, Exception | None]:
    """The rows after the first ``skip`` lines as a float array, or the parse error."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            rows = (line for line in itertools.islice(f, skip, None) if line.strip(" \t\r\n,"))
            table = np.loadtxt(
                rows, delimiter=",", quotechar='"', comments=None, ndmin=2, converters=converters
            )
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {_one_line(exc)}") from None
    except ValueError as exc:
        return None, exc
    return table, None


def _load_csv(path: Path, label_column: str | None) -> _Dataset:
    line_num, first = _csv_first_row(path)
    n_columns = len(first)
    label_idx, named = _csv_label_index(path, first, label_column)
    header = named or any(not _is_number(c) for i, c in enumerate(first) if i != label_idx)
    skip = line_num if header else line_num - 1  # physical lines before the data
    labels: dict[str, int] = {}  # label text -> code, in order of appearance
    converters = None
    if label_idx is not None:
        converters = {label_idx: lambda text: labels.setdefault(text.strip(), len(labels))}
    table, error = _csv_table(path, skip, converters)
    if table is not None and table.shape[0] == 0:
        raise CLIError(f"{path} has a header but no data rows.")
    if n_columns == 1 and label_idx is not None:
        raise CLIError(f"{path} has no feature columns besides the label column.")
    if table is None or table.shape[1] != n_columns:  # a malformed row, or rows unlike the first
        raise _csv_error(path, skip, n_columns, label_idx, error or "inconsistent rows")
    if label_idx is None:
        return _Dataset(_check_matrix(table, str(path)), None, None, str(path))
    X = _check_matrix(np.delete(table, label_idx, axis=1), str(path))
    codes = table[:, label_idx].astype(np.int64)
    y = _label_array(np.array(list(labels), dtype=str))[codes]
    return _Dataset(X, y, None, str(path))


def _idx_labels_path(path: Path) -> Path | None:
    name = path.name
    stem = name[:-3] if name.lower().endswith(".gz") else name
    candidate = re.sub(r"idx\d+-ubyte$", "idx1-ubyte", stem.replace("images", "labels"))
    if candidate == stem:
        return None
    for suffix in ("", ".gz"):
        labels = path.with_name(candidate + suffix)
        if labels.is_file():
            return labels
    return None


def _load_idx(path: Path) -> _Dataset:
    from ..datasets import read_idx

    try:
        images = read_idx(path)
    except (OSError, ValueError) as exc:
        raise CLIError(_one_line(exc)) from None
    if images.ndim < 2:
        raise CLIError(
            f"{path} holds a 1-D array of shape {images.shape} (a labels file?); "
            "pass the images file."
        )
    image_shape = (1, *images.shape[1:]) if images.ndim == 3 else None
    X = images.reshape(images.shape[0], -1)
    if X.dtype == np.uint8:
        X = X.astype(np.float32) / np.float32(255.0)
    X = _check_matrix(X, str(path))
    y = None
    labels_path = _idx_labels_path(path)
    if labels_path is not None:
        try:
            y = read_idx(labels_path)
        except (OSError, ValueError) as exc:
            raise CLIError(_one_line(exc)) from None
        y = _check_labels(y, X.shape[0], f"{path} with {labels_path.name}").astype(np.int64)
    return _Dataset(X, y, image_shape, str(path))


def _load_named(name: str, args: argparse.Namespace) -> _Dataset:
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return _Dataset(X / 16.0, y, (1, 8, 8), "digits (scikit-learn)")
    from .. import datasets

    loader = datasets.load_mnist if name == "mnist" else datasets.load_fashion_mnist
    try:
        X, y = loader(
            args.data_path,
            subset=args.subset,
            data_home=args.data_home,
            download=args.download,
            return_X_y=True,
        )
    except FileNotFoundError as exc:
        raise CLIError(
            f"{_one_line(exc)} On the command line: add --download, or --data-path DIR."
        ) from None
    except (OSError, ValueError) as exc:
        raise CLIError(_one_line(exc)) from None
    return _Dataset(X, y, (1, 28, 28), f"{name} ({args.subset})")


def _load_lazy(path: Path, label_column: str | None) -> _Dataset:
    """A folder of ``.npy`` shards, a Parquet file or data set, or a Zarr store."""
    from .._sources import open_source

    try:
        opened = open_source(path, label_column=label_column)
    except ImportError as exc:
        raise CLIError(_one_line(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {_os_error(exc)}") from None
    except ValueError as exc:  # pyarrow's and zarr's errors too, which may not name the file
        message = _one_line(exc)
        if str(path) not in message:
            message = f"cannot read {path}: {message}"
        raise CLIError(message) from None
    y = opened.y
    if y is not None:
        y = _check_labels(y, opened.X.shape[0], str(path))
    return _Dataset(opened.X, y, None, opened.X.source, opened.format)


def _input_format(name: str) -> str:
    """The format of a DATA file by its name: 'npy', 'npz', 'csv', 'idx' or '' (another)."""
    for suffix in (".npy", ".npz", ".csv"):
        if name.endswith(suffix):
            return suffix[1:]
    return "idx" if _IDX_PATTERN.search(name) else ""


def load_data(spec: str, args: argparse.Namespace) -> _Dataset:
    """Read DATA (a file, a folder or a data-set name) into a dataset, or raise CLIError."""
    path = Path(spec).expanduser()
    if not path.exists() and spec.lower() in _NAMED_DATASETS:
        if args.label_column is not None:
            raise CLIError("--label-column applies only to CSV and Parquet files.")
        data = _load_named(_NAMED_DATASETS[spec.lower()], args)
        data.input_format = "dataset"
        return data
    if not path.exists():
        raise CLIError(
            f"{spec}: no such file or folder (nor one of the data sets "
            "'digits', 'mnist', 'fashion-mnist')."
        )
    name = path.name.lower()
    if path.is_dir() or name.endswith(".parquet"):
        if args.label_column is not None and not _is_parquet(path):
            raise CLIError("--label-column applies only to CSV and Parquet files.")
        return _load_lazy(path, args.label_column)
    if args.label_column is not None and not name.endswith(".csv"):
        raise CLIError("--label-column applies only to CSV and Parquet files.")
    loaders = {
        "npy": _load_npy,
        "npz": _load_npz,
        "csv": lambda p: _load_csv(p, args.label_column),
        "idx": _load_idx,
    }
    kind = _input_format(name)
    if not kind:
        raise CLIError(
            f"{spec}: unsupported file type; use .npy, .npz, .csv, .parquet, an IDX file "
            "(*-idx3-ubyte[.gz]), or a folder (of .npy shards, of .parquet files, or a Zarr "
            "store)."
        )
    data = loaders[kind](path)
    data.input_format = kind
    return data


def _is_parquet(path: Path) -> bool:
    from .._sources import source_format

    try:
        return source_format(path) == "parquet"
    except ValueError:  # .npy and .parquet files together: reported by the reader
        return True
