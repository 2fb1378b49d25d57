"""Command line interface: ``skdeepcluster`` / ``python -m skdeepcluster``.

Two subcommands:

* ``demo`` (also what runs without arguments): AutoencoderKMeans against
  k-means on scikit-learn's digits, as a table of ACC, NMI, ARI and fit time;
* ``cluster DATA``: cluster a file (``.npy``, ``.npz``, ``.csv``, IDX) or a
  named data set (``digits``, ``mnist``, ``fashion-mnist``) and write labels,
  embedding, model, a JSON summary and plots to an output folder.

User errors (bad files, shapes, options) end with one line
``skdeepcluster: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_parser", "main"]

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
  {PROG} demo --epochs 20                 a quicker demo
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

outputs (in --out): labels.csv (index,label), embedding.npy, model.joblib,
summary.json (sizes, parameters, fit time; ACC/NMI/ARI when labels are known)
and PNG plots (unless --no-plots; needs matplotlib).

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
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise CLIError(
            f"--pca-components needs an integer or a fraction in (0, 1), got {text!r}."
        ) from None


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

    demo = commands.add_parser(
        "demo",
        help="AutoencoderKMeans vs k-means on scikit-learn's digits (minutes on a CPU).",
        description="Fit AutoencoderKMeans(n_clusters=10, random_state=0) with its default "
        "parameters and KMeans(n_clusters=10, n_init=10, random_state=0) on "
        "scikit-learn's digits (scaled to [0, 1]) and print ACC, NMI, ARI and fit time. "
        "The options override the defaults, e.g. for a quicker run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"examples:\n  {PROG} demo\n  {PROG} demo --epochs 20 --device cpu\n",
    )
    demo.add_argument("--epochs", type=int, help="training epochs (default: the estimator's)")
    demo.add_argument("--latent-dim", type=int, help="latent dimension")
    demo.add_argument(
        "--hidden-layer-sizes", metavar="SIZES", help="encoder widths, e.g. 500,500,2000"
    )
    demo.add_argument("--device", default="auto", help="'auto' (default), 'cpu', 'cuda', ...")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")

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
    net = cluster.add_argument_group("model")
    net.add_argument(
        "--image-shape",
        metavar="C,H,W",
        help="image shape of each row (one entry may be -1); passed to the estimator, "
        "which then uses a convolutional autoencoder, and used for image plots",
    )
    net.add_argument(
        "--architecture", choices=["auto", "mlp", "conv"], help="network type (default: auto)"
    )
    net.add_argument(
        "--hidden-layer-sizes", metavar="SIZES", help="encoder widths, e.g. 500,500,2000"
    )
    net.add_argument("--latent-dim", type=int, metavar="D", help="latent dimension")
    net.add_argument("--epochs", type=int, metavar="N", help="training epochs")
    net.add_argument("--batch-size", type=int, metavar="B", help="mini-batch size")
    net.add_argument("--learning-rate", type=float, metavar="LR", help="Adam learning rate")
    net.add_argument(
        "--pca-components",
        metavar="P",
        help="PCA on the codes: a number of components or a variance fraction in (0, 1)",
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
    net.add_argument("--verbose", action="store_true", help="show a training progress bar")

    data = cluster.add_argument_group("data")
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

    output = cluster.add_argument_group("output")
    output.add_argument(
        "--out",
        default="skdeepcluster_out",
        metavar="DIR",
        help="output folder, created if needed (default: ./skdeepcluster_out)",
    )
    output.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    return parser


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
    y = np.asarray(y)
    if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise CLIError(f"labels in {source} must be 1-D, got shape {y.shape}.")
    y = y.ravel()
    if y.shape[0] != n_samples:
        raise CLIError(
            f"{source} has {n_samples} samples but {y.shape[0]} labels."
        )
    return y


def _load_npy(path: Path) -> _Dataset:
    try:
        X = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npy file: {_one_line(exc)}") from None
    if not isinstance(X, np.ndarray):
        raise CLIError(f"{path} is not a .npy array file.")
    return _Dataset(_check_matrix(X, str(path)), None, None, str(path))


def _load_npz(path: Path) -> _Dataset:
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


def _label_array(values: list[str]) -> np.ndarray:
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        pass
    try:
        as_float = np.array([float(v) for v in values])
    except ValueError:
        return np.array(values, dtype=object)
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    return as_float


def _load_csv(path: Path, label_column: str | None) -> _Dataset:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [
                (reader.line_num, [c.strip() for c in row])
                for row in reader
                if any(c.strip() for c in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CLIError(f"cannot read {path} as CSV: {_one_line(exc)}") from None
    if not rows:
        raise CLIError(f"{path} is empty.")
    first = rows[0][1]
    n_columns = len(first)
    label_idx = None
    header = False
    if label_column is not None:
        if label_column in first:
            label_idx = first.index(label_column)
            header = True
        else:
            try:
                label_idx = int(label_column)
            except ValueError:
                raise CLIError(
                    f"--label-column {label_column!r} is not a column of {path} "
                    f"(first row: {', '.join(first)})."
                ) from None
            if not -n_columns <= label_idx < n_columns:
                raise CLIError(
                    f"--label-column {label_idx} is out of range: {path} has "
                    f"{n_columns} columns."
                )
            label_idx %= n_columns
    header = header or any(
        not _is_number(c) for i, c in enumerate(first) if i != label_idx
    )
    body = rows[1:] if header else rows
    if not body:
        raise CLIError(f"{path} has a header but no data rows.")
    feature_idx = [i for i in range(n_columns) if i != label_idx]
    if not feature_idx:
        raise CLIError(f"{path} has no feature columns besides the label column.")
    features, labels = [], []
    for line, row in body:
        if len(row) != n_columns:
            raise CLIError(
                f"{path}, line {line}: {len(row)} fields, expected {n_columns}."
            )
        values = []
        for i in feature_idx:
            try:
                values.append(float(row[i]))
            except ValueError:
                raise CLIError(
                    f"{path}, line {line}, column {i + 1}: non-numeric value {row[i]!r}"
                    + (" (use --label-column for a label column)" if label_idx is None else "")
                    + "."
                ) from None
        features.append(values)
        if label_idx is not None:
            labels.append(row[label_idx])
    X = _check_matrix(np.array(features, dtype=np.float64), str(path))
    y = _label_array(labels) if label_idx is not None else None
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


def _write_plots(
    model, data: _Dataset, labels: np.ndarray, image_shape, out: Path
) -> list[str]:
    """Save the PNG plots; a one-line notice replaces any that cannot be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plotting = importlib.import_module(f"{__package__}.plotting")
    except ImportError as exc:
        _out(f"plots skipped: {_one_line(exc)}")
        return []
    X = data.X
    jobs = [
        ("embedding.png", lambda: plotting.plot_embedding(model, X, labels=labels)),
        ("loss_curve.png", lambda: plotting.plot_loss_curve(model)),
    ]
    if image_shape is not None:
        jobs.append(
            (
                "cluster_montage.png",
                lambda: plotting.plot_cluster_montage(X, labels, image_shape=image_shape),
            )
        )
        jobs.append(
            (
                "reconstructions.png",
                lambda: plotting.plot_reconstructions(model, X, image_shape=image_shape),
            )
        )
    if data.y is not None:
        jobs.append(
            (
                "confusion_matrix.png",
                lambda: plotting.plot_confusion_matrix(data.y, labels),
            )
        )
    written = []
    for filename, job in jobs:
        try:
            fig = _figure_of(job())
            fig.savefig(out / filename, dpi=100, bbox_inches="tight")
            plt.close(fig)
        except Exception as exc:  # a plot is a by-product: report it, keep the results
            plt.close("all")
            _out(f"plot {filename} skipped: {_one_line(exc)}")
            continue
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
        params["pca_components"] = _parse_pca(args.pca_components)
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


def _cluster(args: argparse.Namespace) -> int:
    import joblib

    from . import AutoencoderKMeans
    from .metrics import clustering_scores

    if args.n_clusters < 1:
        raise CLIError(f"--n-clusters must be at least 1, got {args.n_clusters}.")
    if args.max_samples is not None and args.max_samples < 1:
        raise CLIError(f"--max-samples must be at least 1, got {args.max_samples}.")
    if args.hidden_layer_sizes is not None:
        _parse_hidden(args.hidden_layer_sizes)  # fail before reading big data
    _check_device(args.device)
    data = load_data(args.data, args)
    if args.max_samples is not None and args.max_samples < data.X.shape[0]:
        data.X = data.X[: args.max_samples]
        data.y = data.y[: args.max_samples] if data.y is not None else None
    n_samples, n_features = data.X.shape
    if args.n_clusters > n_samples:
        raise CLIError(
            f"--n-clusters {args.n_clusters} is larger than the number of samples "
            f"({n_samples})."
        )
    params = _estimator_params(args, n_features)
    image_shape = params.get("image_shape", data.image_shape)

    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output folder {out}: {_one_line(exc)}") from None

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
    fit_seconds = time.perf_counter() - start
    labels = np.asarray(model.labels_)

    scores = clustering_scores(data.y, labels) if data.y is not None else None
    sizes = np.bincount(labels, minlength=args.n_clusters)

    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label"])
        writer.writerows(zip(range(n_samples), labels.tolist(), strict=True))
    np.save(out / "embedding.npy", embedding)
    joblib.dump(model, out / "model.joblib")
    files = ["labels.csv", "embedding.npy", "model.joblib", "summary.json"]
    if not args.no_plots:
        files += _write_plots(model, data, labels, image_shape, out)

    from . import __version__

    summary = {
        "data": data.source,
        "n_samples": n_samples,
        "n_features": n_features,
        "n_clusters": args.n_clusters,
        "image_shape": list(image_shape) if image_shape is not None else None,
        "parameters": _jsonable(model.get_params(deep=False)),
        "fit_seconds": round(fit_seconds, 3),
        "device": str(getattr(model, "device_", args.device)),
        "n_epochs": int(getattr(model, "n_iter_", 0)),
        "inertia": float(model.inertia_),
        "cluster_sizes": sizes.tolist(),
        "metrics": scores,
        "files": files,
        "skdeepcluster_version": __version__,
    }
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    _out(f"fitted in {fit_seconds:.1f} s on {summary['device']}")
    _out("cluster sizes: " + " ".join(f"{k}:{n}" for k, n in enumerate(sizes.tolist())))
    if scores is not None:
        _out(_format_scores(scores))
    _out(f"wrote {', '.join(files)} to {out}")
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
        0 on success, 2 on a usage or data error (reported as one line
        ``skdeepcluster: error: ...`` on stderr).
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv or ["demo"])
        if args.command is None:  # only options such as --version were given
            args = build_parser().parse_args(["demo"])
        if args.command == "demo":
            return _demo(args)
        return _cluster(args)
    except CLIError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
