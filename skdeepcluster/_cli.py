"""Command line interface: ``skdeepcluster`` / ``python -m skdeepcluster``.

Two subcommands:

* ``demo`` (also what runs without arguments): AutoencoderKMeans against
  k-means on scikit-learn's digits, as a table of ACC, NMI, ARI and fit time;
* ``cluster DATA``: cluster a file (``.npy``, ``.npz``, ``.csv``, IDX) or a
  named data set (``digits``, ``mnist``, ``fashion-mnist``) and write labels,
  embedding, model, a JSON summary and plots to an output folder, which is
  replaced as a whole once every file is written (see ``_OutputFolder``).

User errors (bad files, shapes, options, an unusable output folder) and
input/output errors end with one line ``skdeepcluster: error: ...`` on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import functools
import importlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROG = "skdeepcluster"

_NAMED_DATASETS = {
    "digits": "digits",
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashion": "fashion-mnist",
}

_IDX_PATTERN = re.compile(r"idx\d+-ubyte(\.gz)?$", re.IGNORECASE)

_EPILOG_MAIN = f"""\
examples:
  {PROG}                                  run the demo (same as '{PROG} demo')
  {PROG} demo --epochs 50                 the demo with an autoencoder
  {PROG} cluster digits -k 10             cluster scikit-learn's digits
  {PROG} cluster mnist -k 10 --download   MNIST test set (downloaded once)
  {PROG} cluster X.npy -k 5 --out results

'{PROG} COMMAND --help' describes each command.
"""

_EPILOG_CLUSTER = f"""\
DATA may be:
  file.npy                  a 2-D numeric array (n_samples, n_features)
  file.npz                  array 'X' or 'data'; labels from 'y', 'target' or 'labels'
  file.csv                  numeric columns, comma-separated; header auto-detected;
                            --label-column takes one column out as labels
  *-idx3-ubyte[.gz]         IDX images (flattened, uint8 scaled to [0, 1]); the
                            matching *-labels-idx1-ubyte[.gz] is used when present
  digits                    scikit-learn's 8x8 digits, scaled to [0, 1]
  mnist, fashion-mnist      via skdeepcluster.datasets (--data-path, --data-home,
                            --download, --subset)

outputs (in --out DIR): labels.csv (index,label), embedding.npy, model.joblib,
summary.json (command line, estimator parameters, sizes, fit time; ACC/NMI/ARI
when labels are known) and PNG plots (unless --no-plots; needs matplotlib).
DIR must be new or empty: one holding files is refused (exit status 2) unless
--overwrite is given, and --overwrite replaces only an earlier run's results
(a folder with a summary.json, holding no files but those it lists: files you
added are never deleted). The results are written to a temporary folder next
to DIR (DIR.tmp-*) that replaces DIR in one step once every file is complete,
so an interrupted run leaves DIR as it was, never a mix of two runs.

examples:
  {PROG} cluster digits -k 10 --epochs 50
  {PROG} cluster mnist -k 10 --image-shape 1,28,28 --out mnist_run
  {PROG} cluster data.csv -k 3 --label-column species --hidden-layer-sizes 64,32
  {PROG} cluster t10k-images-idx3-ubyte.gz -k 10 --pca-components 5
"""


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line: ``skdeepcluster: error: ...``."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CLIError(message)


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------ option types
def _int_tuple(text: str, option: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    parts = [p.strip() for p in re.split(r"[,x]", text.strip().strip("()[]"))]
    if parts and not parts[-1]:
        parts.pop()  # a trailing comma, as in "784,"
    if not parts or not all(parts):
        if allow_empty and not any(parts):
            return ()
        raise CLIError(f"{option} needs comma-separated integers, got {text!r}.")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise CLIError(f"{option} needs comma-separated integers, got {text!r}.") from None


def _parse_hidden(text: str) -> tuple[int, ...]:
    if text.strip().lower() in {"", "none", "()"}:
        return ()
    sizes = _int_tuple(text, "--hidden-layer-sizes")
    if any(s < 1 for s in sizes):
        raise CLIError(f"--hidden-layer-sizes must be positive integers, got {text!r}.")
    return sizes


def _parse_image_shape(text: str, n_features: int) -> tuple[int, int, int]:
    from ._networks import resolve_image_shape

    shape = _int_tuple(text, "--image-shape")
    try:
        return resolve_image_shape(shape, n_features)
    except ValueError as exc:
        raise CLIError(f"--image-shape {text}: {_one_line(exc)}") from None


def _parse_pca(text: str) -> int | float:
    """``--pca-components``: a number of components (>= 1) or a variance fraction in (0, 1)."""
    value: int | float
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = -1
    if (isinstance(value, int) and value >= 1) or (isinstance(value, float) and 0 < value < 1):
        return value
    raise CLIError(
        f"--pca-components needs an integer >= 1 or a fraction in (0, 1), got {text!r}."
    )


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``skdeepcluster`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="Deep clustering (autoencoder + k-means) from the command line. "
        "Without a command, runs the demo.",
        epilog=_EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo_command(commands)
    cluster = commands.add_parser(
        "cluster",
        help="cluster a data file or a named data set and save the results.",
        description="Cluster DATA with AutoencoderKMeans and write the results to --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EPILOG_CLUSTER,
    )
    cluster.add_argument("data", metavar="DATA", help="file or data set name (see below)")
    cluster.add_argument(
        "-k", "--n-clusters", type=int, required=True, metavar="K", help="number of clusters"
    )
    _add_model_options(cluster.add_argument_group("model"))
    _add_data_options(cluster.add_argument_group("data"))
    _add_output_options(cluster.add_argument_group("output"))
    return parser


def _add_demo_command(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="AutoencoderKMeans vs k-means on scikit-learn's digits (seconds on a CPU).",
        description="Fit AutoencoderKMeans(n_clusters=10, random_state=0) with its default "
        "parameters and KMeans(n_clusters=10, n_init=10, random_state=0) on "
        "scikit-learn's digits (scaled to [0, 1]) and print ACC, NMI, ARI and fit time. "
        "On data this small the defaults train no network (architecture='auto'); "
        "--epochs or --hidden-layer-sizes train one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"examples:\n  {PROG} demo\n  {PROG} demo --epochs 50 --device cpu\n",
    )
    demo.add_argument("--epochs", type=int, help="training epochs (default: the estimator's)")
    demo.add_argument("--latent-dim", type=int, help="latent dimension")
    demo.add_argument(
        "--hidden-layer-sizes",
        metavar="SIZES",
        help="encoder widths, e.g. 500,500,2000 (default: the estimator's 'auto')",
    )
    demo.add_argument("--device", default="auto", help="'auto' (default), 'cpu', 'cuda', ...")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    demo.add_argument(
        "--quiet", action="store_true", help="no progress bars (default: one per stage, on stderr)"
    )


def _add_model_options(net) -> None:
    net.add_argument(
        "--architecture",
        choices=["auto", "mlp", "conv", "none"],
        help="network type; none: no autoencoder (default: auto)",
    )
    net.add_argument(
        "--image-shape",
        metavar="C,H,W",
        help="image shape of each row (one entry may be -1); passed to the estimator, "
        "which then uses a convolutional autoencoder, and used for image plots",
    )
    net.add_argument(
        "--hidden-layer-sizes",
        metavar="SIZES",
        help="encoder widths, e.g. 500,500,2000 (default: the estimator's 'auto')",
    )
    net.add_argument("--latent-dim", type=int, metavar="D", help="latent dimension")
    net.add_argument("--epochs", type=int, metavar="N", help="training epochs")
    net.add_argument("--batch-size", type=int, metavar="B", help="mini-batch size")
    net.add_argument("--learning-rate", type=float, metavar="LR", help="Adam learning rate")
    net.add_argument(
        "--pca-components",
        metavar="P",
        help="PCA on the codes (reducer=PCA(n_components=P, random_state=S)): a number of "
        "components or a variance fraction in (0, 1)",
    )
    net.add_argument(
        "--refine", choices=["kmeans", "dec", "idec"], help="joint refinement after pre-training"
    )
    net.add_argument(
        "--random-state", type=int, default=0, metavar="S", help="seed (default: 0)"
    )
    net.add_argument(
        "--device", default="auto", help="'auto' (default), 'cpu', 'cuda', 'cuda:1', 'mps'"
    )
    net.add_argument(
        "--verbose", action="store_true", help="show one progress bar per stage (stderr)"
    )


def _add_data_options(data) -> None:
    data.add_argument(
        "--label-column",
        metavar="COL",
        help="CSV column (name or 0-based index, negative from the end) holding labels",
    )
    data.add_argument(
        "--max-samples", type=int, metavar="N", help="use only the first N samples"
    )
    data.add_argument(
        "--subset",
        choices=["test", "train", "all"],
        default="test",
        help="split for mnist / fashion-mnist (default: test)",
    )
    data.add_argument(
        "--data-path",
        metavar="DIR",
        help="folder holding the mnist / fashion-mnist IDX files (searched first)",
    )
    data.add_argument("--data-home", metavar="DIR", help="data home for mnist / fashion-mnist")
    data.add_argument(
        "--download",
        action="store_true",
        help="download mnist / fashion-mnist if missing (SHA-256 verified)",
    )


def _add_output_options(output) -> None:
    output.add_argument(
        "--out",
        default="skdeepcluster_out",
        metavar="DIR",
        help="output folder (default: ./skdeepcluster_out); it must not exist yet or be "
        "empty, unless --overwrite is given",
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out (a folder holding a "
        "summary.json): the new results replace the whole folder only once all are written; "
        "refused when the folder holds files that its summary.json does not list (files "
        "you added), which would be deleted",
    )
    output.add_argument("--no-plots", action="store_true", help="do not write PNG plots")


# -------------------------------------------------------------------- data
@dataclass
class _Dataset:
    X: np.ndarray
    y: np.ndarray | None
    image_shape: tuple[int, int, int] | None
    source: str


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
    from .metrics import _check_finite_labels

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
    x_key = next((k for k in ("X", "x", "data") if k in arrays), None)
    label_keys = ("y", "target", "labels")
    if x_key is None:
        others = [k for k in arrays if k not in label_keys]
        if len(others) != 1:
            raise CLIError(
                f"{path} has no array named 'X' or 'data' (it holds: "
                f"{', '.join(sorted(arrays)) or 'nothing'})."
            )
        x_key = others[0]
    source = f"{path}['{x_key}']"
    X = _check_matrix(arrays[x_key], source)
    y_key = next((k for k in label_keys if k in arrays), None)
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
    from .datasets import read_idx

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
    from . import datasets

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


def load_data(spec: str, args: argparse.Namespace) -> _Dataset:
    """Read DATA (a file or a data-set name) into a dataset, or raise CLIError."""
    path = Path(spec).expanduser()
    if not path.exists() and spec.lower() in _NAMED_DATASETS:
        if args.label_column is not None:
            raise CLIError("--label-column applies only to CSV files.")
        return _load_named(_NAMED_DATASETS[spec.lower()], args)
    if not path.exists():
        raise CLIError(
            f"{spec}: no such file (nor one of the data sets "
            "'digits', 'mnist', 'fashion-mnist')."
        )
    if path.is_dir():
        raise CLIError(f"{spec} is a directory; pass a data file.")
    name = path.name.lower()
    if args.label_column is not None and not name.endswith(".csv"):
        raise CLIError("--label-column applies only to CSV files.")
    if name.endswith(".npy"):
        return _load_npy(path)
    if name.endswith(".npz"):
        return _load_npz(path)
    if name.endswith(".csv"):
        return _load_csv(path, args.label_column)
    if _IDX_PATTERN.search(name):
        return _load_idx(path)
    raise CLIError(
        f"{spec}: unsupported file type; use .npy, .npz, .csv or an IDX file "
        "(*-idx3-ubyte[.gz])."
    )


# ------------------------------------------------------------ output folder
#: Test hook: seconds to sleep after each file written into the temporary
#: output folder, so that a test can kill the command while it writes.
_WRITE_DELAY_ENV = "SKDEEPCLUSTER_TEST_WRITE_DELAY"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_output_location(out: Path, *, overwrite: bool, inputs: list[Path]) -> Path:
    """Resolve ``--out`` and refuse, before any work, a place the results cannot go.

    Returns the absolute output folder. The results are written into a new
    folder next to it first, so its parent (or the nearest ancestor that
    exists) must be a writable folder.
    """
    target = out.expanduser().resolve()
    if target.parent == target:
        raise CLIError(f"--out {out} is a file system root; choose a folder inside it.")
    if target.exists():
        _check_existing_output(target, overwrite=overwrite, inputs=inputs)
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CLIError(f"cannot create the output folder {target}: {ancestor} is not a folder.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write the output folder {target}: {ancestor} is not writable.")
    _check_can_create(ancestor, target)
    return target


def _check_can_create(folder: Path, target: Path) -> None:
    """Create and remove a folder in ``folder``, where the results will be written.

    Permission bits do not tell everything: for root ``os.access`` allows any
    folder, yet nothing can be created in ``/proc`` or on a read-only file
    system. Trying costs nothing and finds such a place before the fit, not
    after it. The probe is named like the temporary folders, so that one left
    by a killed command is removed by a later run (``_remove_stale_siblings``).
    """
    probe = _sibling(folder / target.name, "probe")
    try:
        probe.mkdir()
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise CLIError(
            f"cannot write the output folder {target}: cannot create a folder in {folder} "
            f"({reason})."
        ) from None
    with contextlib.suppress(OSError):
        probe.rmdir()


def _check_existing_output(target: Path, *, overwrite: bool, inputs: list[Path]) -> None:
    if not target.is_dir():
        raise CLIError(f"--out {target} exists and is not a folder; choose another --out.")
    if not os.access(target, os.W_OK | os.X_OK):
        raise CLIError(f"the output folder {target} is not writable.")
    if not any(target.iterdir()):
        return  # an empty folder is fine
    if not overwrite:
        raise CLIError(
            f"the output folder {target} is not empty; pass --overwrite to replace the "
            "results it holds, or choose another --out."
        )
    if not (target / "summary.json").is_file():
        raise CLIError(
            f"the output folder {target} holds no summary.json, so no results of an "
            "earlier run, and --overwrite replaces only those; empty it or choose another --out."
        )
    for path in [*inputs, Path.cwd().resolve()]:
        if _inside(path, target):
            raise CLIError(
                f"{path} is inside the output folder {target}, which --overwrite would "
                "replace; choose another --out."
            )
    _check_only_run_files(target)


def _run_files(target: Path) -> set[str]:
    """The names of the files that the earlier run in ``target`` wrote there.

    Every run lists the files it wrote (summary.json included) under
    ``files`` in its summary.json; where that cannot be read, only
    summary.json itself counts as the earlier run's.
    """
    try:
        summary = json.loads((target / "summary.json").read_text(encoding="utf-8"))
        files = summary.get("files")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        files = None
    names = {"summary.json"}
    if isinstance(files, list):
        names.update(name for name in files if isinstance(name, str))
    return names


def _check_only_run_files(target: Path) -> None:
    """Refuse to replace ``target`` while it holds files that no earlier run wrote.

    ``--overwrite`` deletes the whole folder; anything its summary.json does
    not list (notes, a user's own plot) would be lost without a word.
    """
    try:
        present = sorted(path.name for path in target.iterdir())
    except (FileNotFoundError, NotADirectoryError):  # gone meanwhile: nothing to lose
        return
    others = [name for name in present if name not in _run_files(target)]
    if not others:
        return
    shown = ", ".join(others[:3])
    if len(others) > 3:
        shown += f" and {len(others) - 3} more"
    raise CLIError(
        f"the output folder {target} holds files that are not results of an earlier run "
        f"(not listed in its summary.json): {shown}; --overwrite would delete them, so "
        "move them elsewhere or choose another --out."
    )


def _sibling(target: Path, kind: str) -> Path:
    """A new name ``<target>.<kind>-<pid>-<random>`` next to ``target``."""
    return target.with_name(f"{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(6)}")


def _fsync(path: Path, *, directory: bool = False) -> None:
    """Flush ``path`` to disk (a folder: its entries, where the system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where that is not available (other systems, old kernels or C
    libraries, file systems without it).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p] * 2 + [ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(b))


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back for the few steps that must not be cut in two."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not (
        threading.main_thread()
    ):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_into_place(new: Path, target: Path, *, overwrite: bool) -> Path | None:
    """Make the folder ``new`` become ``target``; return where the old ``target`` went.

    A missing or empty ``target`` is replaced by one rename. A ``target`` with
    files (only with ``overwrite``) is swapped with ``new`` atomically where the
    system can; elsewhere it is renamed aside first and put back if the second
    rename fails. The caller removes the returned folder.
    """
    try:
        os.rename(new, target)
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
            raise
    if not overwrite and any(target.iterdir()):  # Windows: even an empty one is in the way
        raise CLIError(
            f"the output folder {target} received files during the run; pass "
            "--overwrite to replace them, or choose another --out."
        )
    if _exchange(new, target):
        return new
    aside = _sibling(target, "old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    return aside


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _remove_stale_siblings(target: Path, started: float) -> None:
    """Remove the temporary folders that killed runs left next to ``target``.

    Only folders older than this run whose process (the pid in their name) is
    gone; others may belong to a run still writing.
    """
    pattern = re.compile(re.escape(target.name) + r"\.(?:tmp|old|probe)-(\d+)-[0-9a-f]+")
    with contextlib.suppress(OSError):
        for path in list(target.parent.iterdir()):
            match = pattern.fullmatch(path.name)
            if match is None or _process_alive(int(match.group(1))):
                continue
            if path.is_symlink() or not path.is_dir() or path.stat().st_mtime >= started:
                continue
            shutil.rmtree(path, ignore_errors=True)


class _OutputFolder:
    """Write one run's results next to ``target``, then swap them into place.

    Every file is written, and flushed to disk, into a new sibling folder
    ``<target>.tmp-<pid>-<random>``; :meth:`commit` then makes that folder
    ``target`` in one step. Whenever the command is interrupted or killed,
    ``target`` holds either its previous contents or every new file, never a
    mix or a half-written file. An uncommitted temporary folder is removed on
    exit; one that a killed run left behind is removed by a later run.
    """

    def __init__(self, target: Path, *, overwrite: bool, started: float) -> None:
        self.target = target
        self.overwrite = overwrite
        self.started = started
        self.files: list[str] = []
        self._tmp: Path | None = None

    def __enter__(self) -> _OutputFolder:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(self.target, "tmp")
        tmp.mkdir()
        self._tmp = tmp
        return self

    def __exit__(self, *exc_info) -> None:
        if self._tmp is not None:  # not committed, or the previous results after the swap
            shutil.rmtree(self._tmp, ignore_errors=True)

    def write(self, filename: str, save: Callable[[Path], Any]) -> None:
        """Write ``filename`` with ``save(path)`` and flush it to disk."""
        path = self._tmp / filename
        try:
            save(path)
            _fsync(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.files.append(filename)
        delay = float(os.environ.get(_WRITE_DELAY_ENV) or 0)  # test hook, see above
        if delay > 0:
            time.sleep(delay)

    def commit(self) -> None:
        """Swap the complete new folder into place and remove the previous results."""
        if self.overwrite:  # files put into the folder during the run are kept too
            _check_only_run_files(self.target)
        _fsync(self._tmp, directory=True)
        with _signals_deferred():
            self._tmp = _swap_into_place(self._tmp, self.target, overwrite=self.overwrite)
        _fsync(self.target.parent, directory=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        _remove_stale_siblings(self.target, self.started)


def _os_error(exc: OSError) -> str:
    """``reason: path`` of an OSError, as one line."""
    reason = exc.strerror or _one_line(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


# ------------------------------------------------------------------ helpers
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value) if not hasattr(value, "type") else str(value)


def _figure_of(obj: Any):
    from matplotlib.figure import Figure

    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    while not isinstance(obj, Figure):
        obj = obj.figure
    return obj


def _plot_jobs(plotting, model, data: _Dataset, labels: np.ndarray, image_shape):
    """``(filename, draw)`` for every plot that applies to this run."""
    X = data.X
    trained = model.architecture_ != "none"  # no loss curve, no reconstructions without one
    jobs = [("embedding.png", lambda: plotting.plot_embedding(model, X, labels=labels))]
    if trained:
        jobs.append(("loss_curve.png", lambda: plotting.plot_loss_curve(model)))
    if image_shape is not None:
        jobs.append(
            (
                "cluster_montage.png",
                lambda: plotting.plot_cluster_montage(X, labels, image_shape=image_shape),
            )
        )
    if image_shape is not None and trained:
        jobs.append(
            (
                "reconstructions.png",
                lambda: plotting.plot_reconstructions(model, X, image_shape=image_shape),
            )
        )
    if data.y is not None:
        jobs.append(
            ("confusion_matrix.png", lambda: plotting.plot_confusion_matrix(data.y, labels))
        )
    return jobs


def _write_plots(
    model, data: _Dataset, labels: np.ndarray, image_shape, folder: _OutputFolder
) -> list[str]:
    """Save the PNG plots; a one-line notice replaces any that cannot be drawn.

    A plot is a by-product: one that fails to draw is reported and skipped, but
    an OSError while saving it (a full disk, say) stops the run like any other.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plotting = importlib.import_module(f"{__package__}.plotting")
    except ImportError as exc:
        _out(f"plots skipped: {_one_line(exc)}")
        return []
    written = []
    for filename, draw in _plot_jobs(plotting, model, data, labels, image_shape):
        try:
            fig = _figure_of(draw())
            folder.write(filename, functools.partial(fig.savefig, dpi=100, bbox_inches="tight"))
        except OSError:
            raise
        except Exception as exc:
            _out(f"plot {filename} skipped: {_one_line(exc)}")
            continue
        finally:
            plt.close("all")
        written.append(filename)
    return written


def _format_scores(scores: dict[str, float]) -> str:
    return f"ACC {scores['accuracy']:.4f}  NMI {scores['nmi']:.4f}  ARI {scores['ari']:.4f}"


# ------------------------------------------------------------------ commands
def _estimator_params(args: argparse.Namespace, n_features: int) -> dict[str, Any]:
    from . import AutoencoderKMeans

    params: dict[str, Any] = {
        "n_clusters": args.n_clusters,
        "random_state": args.random_state,
        "device": args.device,
        "verbose": int(args.verbose),
    }
    if args.hidden_layer_sizes is not None:
        params["hidden_layer_sizes"] = _parse_hidden(args.hidden_layer_sizes)
    for name in ("latent_dim", "epochs", "batch_size", "learning_rate", "architecture", "refine"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if args.pca_components is not None:
        from sklearn.decomposition import PCA

        n_components = _parse_pca(args.pca_components)
        params["reducer"] = PCA(n_components=n_components, random_state=args.random_state)
    if args.image_shape is not None:
        params["image_shape"] = _parse_image_shape(args.image_shape, n_features)
    supported = AutoencoderKMeans().get_params()
    for name in params:
        if name not in supported:
            option = "--" + name.replace("_", "-")
            raise CLIError(f"{option} is not supported by this version of AutoencoderKMeans.")
    return params


def _check_device(device: str) -> None:
    from ._device import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise CLIError(f"--device: {_one_line(exc)}") from None


def _check_cluster_options(args: argparse.Namespace) -> None:
    """Refuse invalid options before reading (possibly big) data."""
    if args.n_clusters < 1:
        raise CLIError(f"--n-clusters must be at least 1, got {args.n_clusters}.")
    if args.max_samples is not None and args.max_samples < 1:
        raise CLIError(f"--max-samples must be at least 1, got {args.max_samples}.")
    if args.hidden_layer_sizes is not None:
        _parse_hidden(args.hidden_layer_sizes)
    if args.pca_components is not None:
        _parse_pca(args.pca_components)
    _check_device(args.device)


def _input_paths(args: argparse.Namespace) -> list[Path]:
    """The files and folders the run reads, which --overwrite must not replace."""
    paths = (Path(p).expanduser() for p in (args.data, args.data_path, args.data_home) if p)
    return [p.resolve() for p in paths if p.exists()]


def _load_cluster_data(args: argparse.Namespace) -> _Dataset:
    data = load_data(args.data, args)
    if args.max_samples is not None and args.max_samples < data.X.shape[0]:
        data.X = data.X[: args.max_samples]
        data.y = data.y[: args.max_samples] if data.y is not None else None
    if args.n_clusters > data.X.shape[0]:
        raise CLIError(
            f"--n-clusters {args.n_clusters} is larger than the number of samples "
            f"({data.X.shape[0]})."
        )
    return data


def _save_labels(labels: np.ndarray, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label"])
        writer.writerows(zip(range(len(labels)), labels.tolist(), strict=True))


def _save_json(obj: Any, path: Path) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


@dataclass
class _Run:
    """A fitted run: what the output files are made of."""

    model: Any
    data: _Dataset
    embedding: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, int, int] | None
    fit_seconds: float
    scores: dict[str, float] | None


def _write_results(folder: _OutputFolder, run: _Run, args: argparse.Namespace) -> dict:
    """Write labels, embedding, model, plots and summary; return the summary."""
    import joblib

    from . import __version__

    model, data, labels = run.model, run.data, run.labels
    folder.write("labels.csv", functools.partial(_save_labels, labels))
    folder.write("embedding.npy", lambda path: np.save(path, run.embedding))
    folder.write("model.joblib", functools.partial(joblib.dump, model))
    files = ["labels.csv", "embedding.npy", "model.joblib", "summary.json"]
    if not args.no_plots:
        files += _write_plots(model, data, labels, run.image_shape, folder)
    summary = {
        "command": [PROG, *args.argv],
        "data": data.source,
        "n_samples": data.X.shape[0],
        "n_features": data.X.shape[1],
        "n_clusters": args.n_clusters,
        "image_shape": list(run.image_shape) if run.image_shape is not None else None,
        "parameters": _jsonable(model.get_params(deep=False)),
        "fit_seconds": round(run.fit_seconds, 3),
        "device": str(getattr(model, "device_", args.device)),
        "n_epochs": int(getattr(model, "n_iter_", 0)),
        "inertia": float(model.inertia_),
        "cluster_sizes": np.bincount(labels, minlength=args.n_clusters).tolist(),
        "metrics": run.scores,
        "files": files,
        "skdeepcluster_version": __version__,
    }
    folder.write("summary.json", functools.partial(_save_json, summary))
    return summary


def _cluster(args: argparse.Namespace) -> int:
    from . import AutoencoderKMeans
    from .metrics import clustering_scores

    started = time.time()
    _check_cluster_options(args)
    out = _check_output_location(
        Path(args.out), overwrite=args.overwrite, inputs=_input_paths(args)
    )
    data = _load_cluster_data(args)
    n_samples, n_features = data.X.shape
    params = _estimator_params(args, n_features)
    _out(
        f"{PROG}: clustering {data.source}: {n_samples} samples x {n_features} features "
        f"into {args.n_clusters} clusters"
    )
    model = AutoencoderKMeans(**params)
    start = time.perf_counter()
    try:
        embedding = model.fit_transform(data.X)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"fitting failed: {_one_line(exc)}") from None
    labels = np.asarray(model.labels_)
    run = _Run(
        model=model,
        data=data,
        embedding=embedding,
        labels=labels,
        image_shape=params.get("image_shape", data.image_shape),
        fit_seconds=time.perf_counter() - start,
        scores=clustering_scores(data.y, labels) if data.y is not None else None,
    )
    try:
        with _OutputFolder(out, overwrite=args.overwrite, started=started) as folder:
            summary = _write_results(folder, run, args)
            folder.commit()
    except OSError as exc:
        raise CLIError(f"cannot write the results to {out}: {_os_error(exc)}") from None

    _out(f"fitted in {run.fit_seconds:.1f} s on {summary['device']}")
    sizes = summary["cluster_sizes"]
    _out("cluster sizes: " + " ".join(f"{k}:{n}" for k, n in enumerate(sizes)))
    if run.scores is not None:
        _out(_format_scores(run.scores))
    _out(f"wrote {', '.join(summary['files'])} to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    from . import AutoencoderKMeans
    from .metrics import clustering_scores

    _check_device(args.device)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    params: dict[str, Any] = {
        "n_clusters": 10,
        "random_state": args.random_state,
        "device": args.device,
        "verbose": 0 if args.quiet else 1,  # one progress bar per stage, on stderr
    }
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if args.latent_dim is not None:
        params["latent_dim"] = args.latent_dim
    if args.hidden_layer_sizes is not None:
        params["hidden_layer_sizes"] = _parse_hidden(args.hidden_layer_sizes)
    models = [
        ("AutoencoderKMeans", AutoencoderKMeans(**params)),
        ("KMeans", KMeans(n_clusters=10, n_init=10, random_state=args.random_state)),
    ]
    _out(
        f"{PROG} demo: digits, {X.shape[0]} samples x {X.shape[1]} features, 10 classes "
        "(pixels scaled to [0, 1])"
    )
    rows = []
    for name, model in models:
        _out(f"fitting {name} ...")
        start = time.perf_counter()
        try:
            labels = model.fit_predict(X)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"fitting {name} failed: {_one_line(exc)}") from None
        seconds = time.perf_counter() - start
        if hasattr(model, "architecture_"):
            _out(f"  network: {model.architecture_} ({model.n_iter_} epochs)")
        rows.append((name, clustering_scores(y, labels), seconds))
    width = max(len(name) for name, _, _ in rows)
    _out()
    _out(f"{'method':<{width}}  {'ACC':>6}  {'NMI':>6}  {'ARI':>6}  {'fit s':>7}")
    for name, scores, seconds in rows:
        _out(
            f"{name:<{width}}  {scores['accuracy']:6.3f}  {scores['nmi']:6.3f}  "
            f"{scores['ari']:6.3f}  {seconds:7.2f}"
        )
    return 0


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the ``skdeepcluster`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None. No
        arguments runs the demo.

    Returns
    -------
    status : int
        0 on success, 2 on a usage, data or input/output error (reported as
        one line ``skdeepcluster: error: ...`` on stderr), 130 when
        interrupted.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv or ["demo"])
        if args.command is None:  # only options such as --version were given
            args = build_parser().parse_args(["demo"])
        args.argv = argv  # recorded in summary.json
        if args.command == "demo":
            return _demo(args)
        return _cluster(args)
    except (CLIError, OSError) as exc:
        message = _os_error(exc) if isinstance(exc, OSError) else _one_line(exc)
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
