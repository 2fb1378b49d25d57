"""Data read on demand: folders of ``.npy`` shards, Parquet and Zarr; ``--labels-format``.

End to end through ``skdeepcluster cluster`` (small blobs, the fast options of
test_cli_output.py), the one-line errors, and :class:`ShardedArray` itself:
row slicing as a NumPy array would, and a streamed fit that is the same as on
one memory-mapped file.
"""

import json
import sys

import numpy as np
import pytest

from skdeepcluster import MLP, AutoencoderKMeans
from skdeepcluster._data import streamable
from skdeepcluster._sources import ShardedArray
from skdeepcluster.cli import _commands, main
from skdeepcluster.datasets import open_rows

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zarr = pytest.importorskip("zarr")

#: Options that keep a CLI fit well under a second (as in test_cli_output.py).
FAST = [
    "--epochs", "1", "--latent-dim", "2", "--hidden-layer-sizes", "16",
    "--pca-components", "2", "--device", "cpu", "--no-plots",
]  # fmt: skip

#: The files of a run besides the labels (--no-plots).
RESULTS = {"embedding.npy", "model.joblib", "summary.json"}

#: Uneven shards: rows 0-99, 100-159, 160-239.
SHARDS = ((0, 100), (100, 160), (160, 240))


def blobs(n=240, d=6):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), n // 3)
    return rng.normal(size=(n, d)) * 0.3 + y[:, None] * 3.0, y


def cluster(data, out, *options):
    return main(["cluster", str(data), "-k", "3", *FAST, "--out", str(out), *options])


def summary(out):
    return json.loads((out / "summary.json").read_text())


def csv_labels(out):
    return np.loadtxt(out / "labels.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 1]


def one_error_line(code, capsys, *fragments):
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("skdeepcluster: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_shards(folder, X, y=None):
    folder.mkdir()
    for i, (a, b) in enumerate(SHARDS):
        np.save(folder / f"part-{i:03d}.npy", X[a:b])
        if y is not None:
            np.save(folder / f"labels-{i:03d}.npy", y[a:b])
    return folder


def write_parquet(path, X, y=None, *, row_group_size=64):
    columns = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    columns["name"] = [f"row {i}" for i in range(X.shape[0])]  # not numeric: ignored
    if y is not None:
        columns["species"] = np.array(["setosa", "versicolor", "virginica"])[y]
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


# --------------------------------------------------------------- end to end
@pytest.mark.parametrize("with_labels", [True, False])
def test_npy_shards(tmp_path, with_labels):
    X, y = blobs()
    shards = write_shards(tmp_path / "shards", X, y if with_labels else None)
    assert cluster(shards, tmp_path / "out") == 0
    info = summary(tmp_path / "out")
    assert info["input_format"] == "npy-shards"
    assert (info["n_samples"], info["n_features"]) == X.shape
    assert (info["metrics"] is not None) == with_labels
    if with_labels:
        assert info["metrics"]["ari"] == 1.0
    assert csv_labels(tmp_path / "out").shape == (240,)


def test_fit_sample_fits_on_a_sample_and_labels_every_row(tmp_path, monkeypatch, capsys):
    """``--fit-sample``: the model of a seeded sample labels all rows, block by block."""
    import joblib

    monkeypatch.setattr(_commands, "_LABEL_BLOCK", 50)  # five blocks, the last one short
    X, y = blobs()
    out = tmp_path / "out"
    shards = write_shards(tmp_path / "shards", X, y)
    assert cluster(shards, out, "--fit-sample", "90", "--labels-format", "npy") == 0
    info, rows = summary(out), np.load(out / "fit_rows.npy")
    assert rows.shape == (90,) and np.all(np.diff(rows) > 0) and rows[-1] < 240
    assert np.load(out / "embedding.npy").shape == (90, 2)
    labels = np.load(out / "labels.npy")
    model = joblib.load(out / "model.joblib")
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_array_equal(labels[rows], model.labels_)
    assert (info["n_samples"], info["fit_samples"]) == (240, 90)
    assert info["label_seconds"] >= 0 and info["metrics"]["ari"] == 1.0
    assert "fit_rows.npy" in info["files"]
    again = tmp_path / "again"
    capsys.readouterr()
    assert cluster(shards, again, "--fit-sample", "90", "--labels-format", "npy", "--verbose") == 0
    np.testing.assert_array_equal(np.load(again / "fit_rows.npy"), rows)  # seeded
    assert "labelling" in capsys.readouterr().err  # the stage's bar, in rows
    assert cluster(shards, tmp_path / "all", "--fit-sample", "240") == 0
    assert summary(tmp_path / "all")["label_seconds"] is None  # every row: a plain fit


def test_shards_give_the_labels_of_one_npy(tmp_path):
    """Same data, same seed: the same labels and embedding, whatever the files."""
    X, _ = blobs()
    np.save(tmp_path / "X.npy", X)
    write_shards(tmp_path / "shards", X)
    assert cluster(tmp_path / "X.npy", tmp_path / "one") == 0
    assert cluster(tmp_path / "shards", tmp_path / "many") == 0
    assert (tmp_path / "one/labels.csv").read_bytes() == (tmp_path / "many/labels.csv").read_bytes()
    np.testing.assert_array_equal(
        np.load(tmp_path / "one/embedding.npy"), np.load(tmp_path / "many/embedding.npy")
    )
    assert summary(tmp_path / "one")["input_format"] == "npy"


def test_streamed_shards_fit_as_one_memmap(tmp_path):
    """``streaming=True``: the blocks read from shards are those read from one file."""
    X, _ = blobs()
    np.save(tmp_path / "X.npy", X)
    shards = open_rows(write_shards(tmp_path / "shards", X))
    assert streamable(shards)
    params = dict(
        n_clusters=3, architecture=MLP((16,)), latent_dim=2, epochs=2, streaming=True,
        device="cpu", random_state=0,
    )  # fmt: skip
    a = AutoencoderKMeans(**params).fit(shards)
    b = AutoencoderKMeans(**params).fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.transform(shards), b.transform(X))


@pytest.mark.parametrize("label_column", ["species", "-1", None])
def test_parquet_file(tmp_path, label_column):
    X, y = blobs()
    path = write_parquet(tmp_path / "d.parquet", X, y)
    options = ["--label-column", label_column] if label_column else []
    assert cluster(path, tmp_path / "out", *options) == 0
    info = summary(tmp_path / "out")
    assert info["input_format"] == "parquet"
    assert (info["n_samples"], info["n_features"]) == X.shape
    assert (info["metrics"] is not None) == (label_column is not None)
    ignored = "name" if label_column else "name, species"
    assert info["data"].endswith(f"(non-numeric columns ignored: {ignored})")


def test_parquet_data_set_with_max_samples(tmp_path):
    """A folder of Parquet files, in sorted order; --max-samples takes the first rows."""
    X, y = blobs()
    folder = tmp_path / "set"
    (folder / "b").mkdir(parents=True)
    write_parquet(folder / "a.parquet", X[:150], y[:150], row_group_size=50)
    write_parquet(folder / "b" / "part-0.parquet", X[150:], y[150:], row_group_size=50)
    data = open_rows(folder)
    assert len(data._blocks) == 5  # row groups, read on demand
    np.testing.assert_array_equal(np.asarray(data), X)
    out = tmp_path / "out"
    assert cluster(folder, out, "--label-column", "species", "--max-samples", "200") == 0
    info = summary(out)
    assert info["n_samples"] == 200 and info["metrics"]["accuracy"] == 1.0
    assert csv_labels(out).shape == (200,)


@pytest.mark.parametrize("group", [False, True])
def test_zarr(tmp_path, group):
    X, y = blobs()
    store = str(tmp_path / "d.zarr")
    if group:
        root = zarr.open_group(store, mode="w")
        root.create_array("X", shape=X.shape, chunks=(50, 6), dtype="f4")[...] = X
        root.create_array("y", shape=y.shape, dtype="i8")[...] = y
    else:
        zarr.open(store, mode="w", shape=X.shape, chunks=(50, 6), dtype="f8")[...] = X
    assert cluster(store, tmp_path / "out") == 0
    info = summary(tmp_path / "out")
    assert info["input_format"] == "zarr"
    assert (info["metrics"] is not None) == group


@pytest.mark.parametrize("labels_format", ["csv", "npy", "parquet"])
def test_labels_format(tmp_path, labels_format):
    X, _ = blobs()
    write_shards(tmp_path / "shards", X)
    out = tmp_path / "out"
    assert cluster(tmp_path / "shards", out, "--labels-format", labels_format) == 0
    name = f"labels.{labels_format}"
    assert summary(out)["files"][0] == name
    assert {p.name for p in out.iterdir()} == {name, *RESULTS}
    if labels_format == "csv":
        labels = csv_labels(out)
    elif labels_format == "npy":
        labels = np.load(out / name)
        assert labels.dtype == np.int64
    else:
        table = pq.read_table(out / name)
        assert table.column_names == ["index", "label"]
        np.testing.assert_array_equal(table.column("index").to_numpy(), np.arange(240))
        labels = table.column("label").to_numpy()
    assert np.bincount(labels).tolist() == [80, 80, 80]
    # --overwrite knows the new file as the run's own
    assert cluster(tmp_path / "shards", out, "--labels-format", "csv", "--overwrite") == 0
    assert not (out / name).exists() or labels_format == "csv"


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "modules, data, extra",
    [
        (("pyarrow", "pyarrow.parquet"), "d.parquet", "parquet"),
        (("zarr",), "d.zarr", "zarr"),
    ],
)
def test_missing_package(tmp_path, capsys, monkeypatch, modules, data, extra):
    X, _ = blobs(30)
    write_parquet(tmp_path / "d.parquet", X)
    zarr.open(str(tmp_path / "d.zarr"), mode="w", shape=X.shape, dtype="f8")[...] = X
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import fails
    code = cluster(tmp_path / data, tmp_path / "out")
    one_error_line(code, capsys, f'pip install "skdeepcluster[{extra}]"')


def test_labels_parquet_without_pyarrow_fails_before_reading(tmp_path, capsys, monkeypatch):
    def load_data(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(_commands, "load_data", load_data)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code = cluster(tmp_path / "X.npy", tmp_path / "out", "--labels-format", "parquet")
    one_error_line(code, capsys, "--labels-format parquet", 'skdeepcluster[parquet]"')


def _bad_inputs(tmp_path):
    X, y = blobs(30)
    (tmp_path / "empty").mkdir()
    widths = tmp_path / "widths"
    widths.mkdir()
    np.save(widths / "a.npy", X)
    np.save(widths / "b.npy", X[:, :4])
    for name, arrays in {
        "one_d": {"a.npy": X[:, 0]},
        "strings": {"a.npy": np.array([["a"]])},
        "only_labels": {"labels.npy": y},
        "bad_labels": {"a.npy": X, "labels.npy": y[:20]},
        "both": {"a.npy": X},
    }.items():
        (tmp_path / name).mkdir()
        for file, array in arrays.items():
            np.save(tmp_path / name / file, array)
    write_parquet(tmp_path / "both" / "d.parquet", X)
    write_parquet(tmp_path / "d.parquet", X, y)
    (tmp_path / "set").mkdir()
    write_parquet(tmp_path / "set" / "a.parquet", X, y)
    pq.write_table(pa.table({"f0": X[:, 0]}), tmp_path / "set" / "b.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    pq.write_table(pa.table({"s": ["a", "b"]}), tmp_path / "strings.parquet")
    pq.write_table(pa.table({"f": [1.0, 2.0], "y": [1, None]}), tmp_path / "nulls.parquet")
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    root.create_array("a", shape=(3, 2), dtype="f8")
    root.create_array("b", shape=(3, 2), dtype="f8")
    zarr.open(str(tmp_path / "three_d.zarr"), mode="w", shape=(3, 2, 2), dtype="f8")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["empty"], ["empty holds no .npy or .parquet files", "Zarr"]),
        (["widths"], ["b.npy has 4 columns but a.npy has 6", "same columns"]),
        (["one_d"], ["a.npy must be 2-D", "(30,)"]),
        (["strings"], ["a.npy holds <U1 values"]),
        (["only_labels"], ["only label shards"]),
        (["d.parquet", "--fit-sample", "2"], ["--fit-sample must be at least --n-clusters (3)"]),
        (["bad_labels"], ["20 labels for 30 rows"]),
        (["both"], ["both .npy and .parquet files"]),
        (["widths", "--label-column", "0"], ["--label-column applies only to CSV and Parquet"]),
        (["d.parquet", "--label-column", "kind"], ["'kind' is not a column", "species"]),
        (["d.parquet", "--label-column", "9"], ["out of range", "8 columns"]),
        (["set"], ["b.parquet lacks the column 'f1' that a.parquet has"]),
        (["text.parquet"], ["cannot read", "text.parquet as a Parquet file"]),
        (["strings.parquet"], ["no numeric columns"]),
        (["nulls.parquet", "--label-column", "y"], ["'y' has 1 missing values"]),
        (["g.zarr"], ["no array named 'X' or 'data'", "a, b"]),
        (["three_d.zarr"], ["must be 2-D", "(3, 2, 2)"]),
        (["widths", "--labels-format", "json"], ["invalid choice: 'json'"]),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, args, fragments):
    _bad_inputs(tmp_path)
    code = cluster(tmp_path / args[0], tmp_path / "out", *args[1:])
    one_error_line(code, capsys, *fragments)
    assert not (tmp_path / "out").exists()


def test_nan_in_shards_is_refused_by_the_fit(tmp_path, capsys):
    X, _ = blobs(30)
    X[7, 2] = np.nan
    write_shards(tmp_path / "shards", np.vstack([X] * 8))
    one_error_line(cluster(tmp_path / "shards", tmp_path / "out"), capsys, "NaN")


# ------------------------------------------------------------ ShardedArray
def test_sharded_array_indexes_like_numpy(tmp_path):
    X, _ = blobs()
    data = open_rows(write_shards(tmp_path / "shards", X))
    assert isinstance(data, ShardedArray)
    assert (data.shape, data.dtype, data.ndim, len(data)) == (X.shape, X.dtype, 2, 240)
    keys = [
        slice(90, 170), slice(None, None, 7), slice(230, 5, -9), slice(300, 400), 0, -1, 150,
        np.array([239, 0, 100, 100, 99, -3]), np.arange(240) % 3 == 0, (slice(95, 105), 2),
        (7, slice(1, 3)), [],
    ]  # fmt: skip
    for key in keys:
        np.testing.assert_array_equal(data[key], X[key], err_msg=str(key))
    for n in (1, 99, 100, 101, 160, 240, 500):
        np.testing.assert_array_equal(np.asarray(data.head(n)), X[:n])
    with pytest.raises(IndexError):
        data[240]


def test_dtypes_are_float32_or_float64(tmp_path):
    parts = {"a.npy": np.ones((2, 3), np.float32), "b.npy": np.ones((2, 3), np.float16)}
    (tmp_path / "f32").mkdir()
    for name, array in parts.items():
        np.save(tmp_path / "f32" / name, array)
    assert open_rows(tmp_path / "f32").dtype == np.float32
    np.save(tmp_path / "f32" / "c.npy", np.ones((2, 3), np.uint8))  # pixels: exact
    assert open_rows(tmp_path / "f32").dtype == np.float32
    np.save(tmp_path / "f32" / "d.npy", np.ones((2, 3), np.int32))  # not exact in float32
    X = open_rows(tmp_path / "f32")
    assert X.dtype == np.float64 and np.asarray(X).dtype == np.float64


def test_plots_of_data_read_on_demand_draw_a_sample(tmp_path, monkeypatch):
    X, _ = blobs()
    data = open_rows(write_shards(tmp_path / "shards", X))
    labels = np.r_[np.zeros(238, int), 1, 2]  # two clusters of one row
    monkeypatch.setattr(_commands, "_PLOT_ROWS", 20)
    rows, sample_labels = _commands._plot_rows(data, labels)
    assert isinstance(rows, np.ndarray) and 20 <= rows.shape[0] <= 20 + 16 + 2
    assert set(sample_labels) == {0, 1, 2}
    rows, _ = _commands._plot_rows(X, labels)
    assert rows is X
