"""The argument parser of the ``skdeepcluster`` command and its option checks.

:func:`build_parser` builds the parser (one-line errors, see ``_Parser``) with
the ``demo`` and ``cluster`` commands and their help texts; the ``_parse_*``
functions read the options whose values are lists or numbers of several
kinds; ``_check_cluster_options`` and ``_check_device`` refuse invalid
options before any data is read.
"""

from __future__ import annotations

import argparse
import re

from ._common import PROG, CLIError, _one_line

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
  file.parquet, FOLDER      a Parquet file, or a folder of .parquet files (a data
                            set, sorted paths): numeric columns are the features,
                            --label-column takes one out as labels (needs pyarrow:
                            pip install "skdeepcluster[parquet]")
  FOLDER.zarr               a Zarr store: one 2-D array, or a group with 'X' or
                            'data' and labels 'y' or 'labels' (needs zarr:
                            pip install "skdeepcluster[zarr]")
  FOLDER                    2-D *.npy shards with the same columns, in sorted name
                            order, memory-mapped; labels*.npy files: the labels
  *-idx3-ubyte[.gz]         IDX images (flattened, uint8 scaled to [0, 1]); the
                            matching *-labels-idx1-ubyte[.gz] is used when present
  digits                    scikit-learn's 8x8 digits, scaled to [0, 1]
  mnist, fashion-mnist      via skdeepcluster.datasets (--data-path, --data-home,
                            --download, --subset)
Parquet, Zarr and shards are read on demand: the estimator streams them in blocks
when they exceed 1 GiB as float32, and copies smaller ones into memory.

outputs (in --out DIR): labels.csv (index,label; labels.npy or labels.parquet with
--labels-format), embedding.npy, model.joblib, summary.json (command line,
estimator parameters, input format, sizes, fit time; ACC/NMI/ARI when labels are
known) and PNG plots (unless --no-plots; needs matplotlib).
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
  {PROG} cluster events.parquet -k 8 --label-column kind --labels-format parquet
  {PROG} cluster shards/ -k 10 --fit-sample 1000000 --labels-format npy
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line: ``skdeepcluster: error: ...``."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CLIError(message)


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
    from .._networks import resolve_image_shape

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
    from .. import __version__

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
        help="CSV or Parquet column (name or 0-based index, negative from the end) "
        "holding labels",
    )
    data.add_argument(
        "--max-samples", type=int, metavar="N", help="use only the first N samples"
    )
    data.add_argument(
        "--fit-sample",
        type=int,
        metavar="N",
        help="fit on N samples drawn at random (seeded by --random-state), then label every "
        "sample with the fitted model, block by block; embedding.npy then holds the "
        "embedding of the fitted samples, and fit_rows.npy their row numbers",
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
    output.add_argument(
        "--labels-format",
        choices=["csv", "npy", "parquet"],
        default="csv",
        help="file of the labels: labels.csv (index,label; the default), labels.npy (a 1-D "
        "int64 array) or labels.parquet (columns index, label; needs pyarrow)",
    )


# ------------------------------------------------------------- option checks
def _check_device(device: str) -> None:
    from .._device import resolve_device

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
    if args.fit_sample is not None and args.fit_sample < args.n_clusters:
        raise CLIError(
            f"--fit-sample must be at least --n-clusters ({args.n_clusters}), "
            f"got {args.fit_sample}."
        )
    if args.hidden_layer_sizes is not None:
        _parse_hidden(args.hidden_layer_sizes)
    if args.pca_components is not None:
        _parse_pca(args.pca_components)
    if args.labels_format == "parquet":
        from .._sources import require

        try:
            require("pyarrow.parquet", "parquet", "--labels-format parquet")
        except ImportError as exc:
            raise CLIError(_one_line(exc)) from None
    _check_device(args.device)
