"""The ``cluster`` and ``demo`` commands.

``_cluster`` checks the options and the output folder, reads DATA, fits
:class:`~skdeepcluster.AutoencoderKMeans` and writes labels, embedding, model,
PNG plots and summary.json through an ``_OutputFolder``; ``_demo`` compares it
with k-means on scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._args import _check_cluster_options, _check_device
from ._common import PROG, CLIError, _one_line, _os_error, _out
from ._output import _check_output_location, _OutputFolder
from ._params import _demo_params, _estimator_params
from ._readers import _Dataset, load_data


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


#: Rows of data read on demand (shards, Parquet, Zarr) that the plots draw from.
_PLOT_ROWS = 5000


def _plot_rows(X, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``labels`` to plot: all of an array; a sample of data read on demand.

    The sample holds ``_PLOT_ROWS`` rows at random and up to 16 of each cluster
    (so that the montage shows every cluster), read in increasing order.
    """
    if isinstance(X, np.ndarray) or X.shape[0] <= _PLOT_ROWS:
        return np.asarray(X), labels
    rng = np.random.default_rng(0)
    rows = [rng.choice(X.shape[0], size=_PLOT_ROWS, replace=False)]
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        rows.append(rng.choice(members, size=min(16, members.size), replace=False))
    rows = np.unique(np.concatenate(rows))
    return X[rows], labels[rows]  # a ShardedArray reads only the blocks holding them


def _plot_jobs(plotting, model, data: _Dataset, labels: np.ndarray, image_shape):
    """``(filename, draw)`` for every plot that applies to this run."""
    X, labels = _plot_rows(data.X, labels)
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

        plotting = importlib.import_module("..plotting", __package__)
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
def _input_paths(args: argparse.Namespace) -> list[Path]:
    """The files and folders the run reads, which --overwrite must not replace."""
    paths = (Path(p).expanduser() for p in (args.data, args.data_path, args.data_home) if p)
    return [p.resolve() for p in paths if p.exists()]


def _load_cluster_data(args: argparse.Namespace) -> _Dataset:
    data = load_data(args.data, args)
    if args.max_samples is not None and args.max_samples < data.X.shape[0]:
        # The first rows; of data read on demand, still read on demand.
        head = getattr(data.X, "head", None)
        data.X = head(args.max_samples) if head is not None else data.X[: args.max_samples]
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


def _save_labels_npy(labels: np.ndarray, path: Path) -> None:
    np.save(path, np.asarray(labels, dtype=np.int64))


def _save_labels_parquet(labels: np.ndarray, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = np.arange(len(labels), dtype=np.int64)
    table = pa.table({"index": index, "label": np.asarray(labels, dtype=np.int64)})
    pq.write_table(table, path)


#: ``--labels-format``: the labels file and its writer.
_LABEL_WRITERS = {
    "csv": ("labels.csv", _save_labels),
    "npy": ("labels.npy", _save_labels_npy),
    "parquet": ("labels.parquet", _save_labels_parquet),
}


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
    fit_rows: np.ndarray | None = None  # --fit-sample: the rows fitted on
    label_seconds: float | None = None  # --fit-sample: labelling every row


#: Rows that ``--fit-sample`` labels at a time (the float32 block is 64k x features).
_LABEL_BLOCK = 65_536


def _fit_rows(args: argparse.Namespace, n_samples: int) -> np.ndarray | None:
    """``--fit-sample``'s rows, drawn uniformly and sorted; None to fit on every row."""
    if args.fit_sample is None or args.fit_sample >= n_samples:
        return None
    rng = np.random.default_rng(args.random_state)
    return np.sort(rng.choice(n_samples, size=args.fit_sample, replace=False))


def _label_every_row(model, X, verbose: bool) -> np.ndarray:
    """``model.predict`` of every row of ``X``, ``_LABEL_BLOCK`` rows at a time.

    Block by block, so that memory stays bounded by a block whatever the number of
    rows (data read on demand are read one block at a time); a progress bar of rows
    when ``verbose``.
    """
    from .._progress import stage_bar

    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    with stage_bar("labelling", n, verbose, unit="row") as bar:
        for start in range(0, n, _LABEL_BLOCK):
            stop = min(start + _LABEL_BLOCK, n)
            labels[start:stop] = model.predict(np.asarray(X[start:stop]))
            bar.update(stop - start)
    return labels


def _fit(model, data: _Dataset, fit_rows: np.ndarray | None, verbose: bool) -> tuple:
    """Fit; return the embedding of the fitted rows, every row's labels and the seconds."""
    start = time.perf_counter()
    try:
        if fit_rows is None:
            embedding = model.fit_transform(data.X)
            return embedding, np.asarray(model.labels_), time.perf_counter() - start, None
        embedding = model.fit_transform(np.asarray(data.X[fit_rows]))
        fitted = time.perf_counter()
        labels = _label_every_row(model, data.X, verbose)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"fitting failed: {_one_line(exc)}") from None
    return embedding, labels, fitted - start, time.perf_counter() - fitted


def _write_results(folder: _OutputFolder, run: _Run, args: argparse.Namespace) -> dict:
    """Write labels, embedding, model, plots and summary; return the summary."""
    import joblib

    from .. import __version__

    model, data, labels = run.model, run.data, run.labels
    labels_file, save_labels = _LABEL_WRITERS[args.labels_format]
    folder.write(labels_file, functools.partial(save_labels, labels))
    folder.write("embedding.npy", lambda path: np.save(path, run.embedding))
    folder.write("model.joblib", functools.partial(joblib.dump, model))
    files = [labels_file, "embedding.npy", "model.joblib", "summary.json"]
    if run.fit_rows is not None:
        folder.write("fit_rows.npy", functools.partial(np.save, arr=run.fit_rows))
        files.insert(2, "fit_rows.npy")
    if not args.no_plots:
        files += _write_plots(model, data, labels, run.image_shape, folder)
    summary = {
        "command": [PROG, *args.argv],
        "data": data.source,
        "input_format": data.input_format,
        "n_samples": data.X.shape[0],
        "n_features": data.X.shape[1],
        "n_clusters": args.n_clusters,
        "image_shape": list(run.image_shape) if run.image_shape is not None else None,
        "parameters": _jsonable(model.get_params(deep=True)),
        "fit_seconds": round(run.fit_seconds, 3),
        "fit_samples": data.X.shape[0] if run.fit_rows is None else int(run.fit_rows.size),
        "label_seconds": None if run.label_seconds is None else round(run.label_seconds, 3),
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
    from .. import AutoencoderKMeans
    from ..metrics import clustering_scores

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
    fit_rows = _fit_rows(args, n_samples)
    if fit_rows is not None:
        _out(f"fitting on {fit_rows.size} samples drawn at random, then labelling every sample")
    embedding, labels, fit_seconds, label_seconds = _fit(model, data, fit_rows, args.verbose)
    run = _Run(
        model=model,
        data=data,
        embedding=embedding,
        labels=labels,
        image_shape=params.get("image_shape", data.image_shape),
        fit_seconds=fit_seconds,
        scores=clustering_scores(data.y, labels) if data.y is not None else None,
        fit_rows=fit_rows,
        label_seconds=label_seconds,
    )
    try:
        with _OutputFolder(out, overwrite=args.overwrite, started=started) as folder:
            summary = _write_results(folder, run, args)
            folder.commit()
    except OSError as exc:
        raise CLIError(f"cannot write the results to {out}: {_os_error(exc)}") from None

    _out(f"fitted in {run.fit_seconds:.1f} s on {summary['device']}")
    if run.label_seconds is not None:
        _out(f"labelled {n_samples} samples in {run.label_seconds:.1f} s")
    sizes = summary["cluster_sizes"]
    _out("cluster sizes: " + " ".join(f"{k}:{n}" for k, n in enumerate(sizes)))
    if run.scores is not None:
        _out(_format_scores(run.scores))
    _out(f"wrote {', '.join(summary['files'])} to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    from .. import AutoencoderKMeans
    from ..metrics import clustering_scores

    _check_device(args.device)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    params = _demo_params(args)
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
