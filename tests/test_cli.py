"""Tests for the command line interface (``skdeepcluster`` / ``python -m skdeepcluster``)."""

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits

from skdeepcluster.cli import _main as _cli_main
from skdeepcluster.cli import main

from ._trained import check_trained

#: Options that keep a CLI fit to about a second.
TINY = ["--epochs", "2", "--latent-dim", "3", "--hidden-layer-sizes", "32,16", "--device", "cpu"]


def run(args, tmp_path, *, plots=False):
    out = tmp_path / "out"
    argv = ["cluster", *args, *TINY, "--out", str(out)]
    if not plots:
        argv.append("--no-plots")
    return main(argv), out


def blobs(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    X = rng.normal(size=(n, d)) * 0.3 + y[:, None] * 3.0
    return X, y


def idx_bytes(array):
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + (
        array.tobytes()
    )


def assert_error(code, capsys, *fragments):
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("skdeepcluster: error: ")
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --------------------------------------------------------------- end to end
def test_cluster_digits_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, out = run(["digits", "--n-clusters", "10"], tmp_path, plots=True)
    stdout = capsys.readouterr().out
    assert code == 0
    assert "1797 samples x 64 features" in stdout and "ACC" in stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 1797 and summary["n_features"] == 64
    assert summary["n_clusters"] == 10
    assert summary["parameters"]["epochs"] == 2
    assert summary["parameters"]["architecture__hidden_layer_sizes"] == [32, 16]
    assert summary["parameters"]["random_state"] == 0
    assert summary["fit_seconds"] > 0
    assert set(summary["metrics"]) == {"accuracy", "nmi", "ari"}
    assert 0 <= summary["metrics"]["accuracy"] <= 1
    assert sum(summary["cluster_sizes"]) == 1797
    assert summary["image_shape"] == [1, 8, 8]

    lines = (out / "labels.csv").read_text().splitlines()
    assert lines[0] == "index,label" and len(lines) == 1798
    labels = np.array([int(line.split(",")[1]) for line in lines[1:]])
    assert labels.min() >= 0 and labels.max() < 10
    embedding = np.load(out / "embedding.npy")
    assert embedding.shape == (1797, 3)

    model = joblib.load(out / "model.joblib")
    X = load_digits().data / 16.0
    np.testing.assert_array_equal(model.predict(X), labels)

    pngs = {p.name for p in out.glob("*.png")}
    if "plots skipped" not in stdout:
        assert {"embedding.png", "loss_curve.png", "confusion_matrix.png"} <= pngs
    for name in pngs:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
        assert name in summary["files"]


def test_plots_skipped_without_plotting_module(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "skdeepcluster.plotting", None)
    code, out = run(["digits", "-k", "3", "--max-samples", "100"], tmp_path, plots=True)
    stdout = capsys.readouterr().out
    assert code == 0
    assert "plots skipped" in stdout
    assert not list(out.glob("*.png"))


def test_cluster_npy(tmp_path, capsys):
    X, _ = blobs()
    np.save(tmp_path / "X.npy", X)
    code, out = run([str(tmp_path / "X.npy"), "-k", "3"], tmp_path)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] is None and summary["n_features"] == 6
    assert np.load(out / "embedding.npy").shape == (60, 3)


@pytest.mark.parametrize("x_key, y_key", [("X", "y"), ("data", "target"), ("X", "labels")])
def test_cluster_npz_with_labels(tmp_path, x_key, y_key, train_seed):
    X, y = blobs()
    np.savez(tmp_path / "d.npz", **{x_key: X, y_key: y})
    args = ["-k", "3", "--pca-components", "2", "--random-state", str(train_seed)]
    code, out = run([str(tmp_path / "d.npz"), *args], tmp_path)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.85, max 1, mean 0.983 ± 0.045
    check_trained(summary["metrics"]["accuracy"], ">", 0.5)
    # --pca-components P is reducer=PCA(n_components=P, random_state=--random-state).
    expected = f"PCA(n_components=2, random_state={train_seed})"
    assert summary["parameters"]["reducer"] == expected


def test_cluster_csv_with_header_and_named_labels(tmp_path):
    X, y = blobs()
    names = np.array(["a", "b", "c"])[y]
    rows = ["f1,f2,f3,f4,f5,f6,species"] + [
        ",".join(f"{v:.5f}" for v in x) + f",{s}" for x, s in zip(X, names, strict=True)
    ]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    code, out = run([str(tmp_path / "d.csv"), "-k", "3", "--label-column", "species"], tmp_path)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 60 and summary["n_features"] == 6
    assert summary["metrics"] is not None


def test_cluster_csv_without_header_label_index(tmp_path):
    X, y = blobs()
    data = np.column_stack([y, X])
    np.savetxt(tmp_path / "d.csv", data, delimiter=",", fmt="%.5f")
    code, out = run([str(tmp_path / "d.csv"), "-k", "3", "--label-column", "0"], tmp_path)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 60 and summary["n_features"] == 6
    assert summary["metrics"] is not None
    # Without --label-column every column is a feature and there are no metrics.
    code, out = run([str(tmp_path / "d.csv"), "-k", "3", "--overwrite"], tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and summary["n_features"] == 7 and summary["metrics"] is None


@pytest.mark.parametrize("compress", [False, True])
def test_cluster_idx_picks_up_labels(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 4, size=40, dtype=np.uint8)
    ext = ".gz" if compress else ""
    pack = gzip.compress if compress else bytes
    (tmp_path / f"toy-images-idx3-ubyte{ext}").write_bytes(pack(idx_bytes(images)))
    (tmp_path / f"toy-labels-idx1-ubyte{ext}").write_bytes(pack(idx_bytes(labels)))
    code, out = run([str(tmp_path / f"toy-images-idx3-ubyte{ext}"), "-k", "4"], tmp_path)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_features"] == 30 and summary["image_shape"] == [1, 6, 5]
    assert summary["metrics"] is not None


def test_cluster_idx_without_labels(tmp_path):
    images = np.zeros((10, 4, 4), dtype=np.uint8)
    images[5:] = 255
    (tmp_path / "x-images-idx3-ubyte").write_bytes(idx_bytes(images))
    code, out = run([str(tmp_path / "x-images-idx3-ubyte"), "-k", "2"], tmp_path)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["metrics"] is None


def test_cluster_mnist_named_dataset(tmp_path, monkeypatch):
    from skdeepcluster import datasets

    rng = np.random.default_rng(0)
    home = tmp_path / "home" / "mnist"
    home.mkdir(parents=True)
    (home / "t10k-images-idx3-ubyte").write_bytes(
        idx_bytes(rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8))
    )
    (home / "t10k-labels-idx1-ubyte").write_bytes(
        idx_bytes(rng.integers(0, 10, size=30, dtype=np.uint8))
    )
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"mnist": (), "fashion-mnist": ()})
    code, out = run(
        ["mnist", "-k", "3", "--data-home", str(tmp_path / "home"), "--max-samples", "20"],
        tmp_path,
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 20 and summary["n_features"] == 784


def test_image_shape_passed_to_estimator(tmp_path):
    code, out = run(
        ["digits", "-k", "3", "--image-shape", "1,8,8", "--max-samples", "60",
         "--architecture", "mlp"],
        tmp_path,
    )
    assert code == 0
    params = json.loads((out / "summary.json").read_text())["parameters"]
    assert params["image_shape"] == [1, 8, 8]
    assert params["architecture"] == "MLP(hidden_layer_sizes=(32, 16))"  # --architecture mlp


# ------------------------------------------------------------------- errors
def _write_bad_inputs(tmp_path):
    np.save(tmp_path / "one_d.npy", np.arange(10.0))
    np.save(tmp_path / "three_d.npy", np.zeros((4, 3, 3)))
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    np.save(tmp_path / "ok.npy", np.zeros((5, 4)))
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    np.savez(tmp_path / "nox.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    np.savez(tmp_path / "badlen.npz", X=np.zeros((3, 2)), y=np.zeros(4))
    (tmp_path / "text.csv").write_text("1,2,3\n4,five,6\n")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    (tmp_path / "headeronly.csv").write_text("a,b,c\n")
    (tmp_path / "d.txt").write_text("1,2\n")
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((4, 2, 2), np.uint8))[:-3]
    )
    (tmp_path / "y-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["missing.npy", "-k", "2"], ["missing.npy: no such file"]),
        (["one_d.npy", "-k", "2"], ["2-D array", "(10,)"]),
        (["three_d.npy", "-k", "2"], ["2-D array", "(4, 3, 3)", "--image-shape"]),
        (["strings.npy", "-k", "2"], ["numeric"]),
        (["broken.npy", "-k", "2"], ["cannot read", "broken.npy"]),
        (["nan.npy", "-k", "2"], ["NaN"]),
        (["nox.npz", "-k", "2"], ["no array named 'X'"]),
        (["badlen.npz", "-k", "2"], ["3 samples but 4 labels"]),
        (["text.csv", "-k", "2"], ["line 2, column 2", "'five'"]),
        (["ragged.csv", "-k", "2"], ["line 2", "2 fields, expected 3"]),
        (["headeronly.csv", "-k", "2"], ["no data rows"]),
        (["ok.npy", "-k", "2", "--label-column", "nope"], ["only to CSV"]),
        (["ok.npy", "-k", "2", "--image-shape", "1,,4"], ["comma-separated integers"]),
        (["d.txt", "-k", "2"], ["unsupported file type"]),
        (["cut-images-idx3-ubyte", "-k", "2"], ["truncated"]),
        (["y-labels-idx1-ubyte", "-k", "2"], ["1-D array"]),
        (["ok.npy", "-k", "0"], ["--n-clusters must be at least 1"]),
        (["ok.npy", "-k", "6"], ["larger than the number of samples (5)"]),
        (["ok.npy", "-k", "2", "--image-shape", "1,2,3"], ["6 values", "4 features"]),
        (["ok.npy", "-k", "2", "--image-shape", "1,2,x"], ["comma-separated integers"]),
        (["ok.npy", "-k", "2", "--image-shape", "1,-1,3"], ["does not fit"]),
        (["ok.npy", "-k", "2", "--hidden-layer-sizes", "8,-1"], ["positive integers"]),
        (["ok.npy", "-k", "2", "--pca-components", "lots"], ["--pca-components"]),
        (["ok.npy", "-k", "2", "--device", "tpu9"], ["--device"]),
        (["ok.npy", "-k", "two"], ["invalid int value"]),
        (["ok.npy"], ["required", "--n-clusters"]),
        (["ok.npy", "-k", "2", "--bogus"], ["unrecognized arguments"]),
        (["directory", "-k", "2"], ["holds no .npy or .parquet files"]),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, args, fragments):
    _write_bad_inputs(tmp_path)
    (tmp_path / "directory").mkdir()
    monkeypatch.chdir(tmp_path)
    code = main(["cluster", *args, "--no-plots", "--out", str(tmp_path / "out")])
    assert_error(code, capsys, *fragments)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_csv_label_column_errors(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    code = main(["cluster", str(tmp_path / "d.csv"), "-k", "2", "--label-column", "z"])
    assert_error(code, capsys, "'z' is not a column")
    code = main(["cluster", str(tmp_path / "d.csv"), "-k", "2", "--label-column", "5"])
    assert_error(code, capsys, "out of range")


def test_missing_mnist_suggests_download(tmp_path, capsys, monkeypatch):
    from skdeepcluster import datasets

    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"mnist": (), "fashion-mnist": ()})
    code = main(["cluster", "mnist", "-k", "2", "--data-home", str(tmp_path)])
    assert_error(code, capsys, "Could not find the MNIST test files", "--download")


# ------------------------------------------------------------- help / demo
def test_help_via_python_m():
    result = subprocess.run(
        [sys.executable, "-m", "skdeepcluster", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: skdeepcluster" in result.stdout
    assert "examples:" in result.stdout and "cluster" in result.stdout


def test_help_and_version(capsys):
    assert main(["cluster", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--n-clusters", "--image-shape", "--hidden-layer-sizes", "--out",
                   "--no-plots", "--label-column", "--data-home", "examples:"):
        assert option in text
    assert main(["--version"]) == 0
    assert "skdeepcluster" in capsys.readouterr().out


def test_no_arguments_runs_demo_with_defaults(monkeypatch):
    seen = {}

    def fake_demo(args):
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(_cli_main, "_demo", fake_demo)
    assert main([]) == 0
    assert seen["command"] == "demo"
    assert seen["epochs"] is None and seen["hidden_layer_sizes"] is None
    assert seen["random_state"] == 0


def test_demo_with_small_overrides(capsys):
    code = main(["demo", "--epochs", "1", "--latent-dim", "2", "--hidden-layer-sizes", "16",
                 "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0
    # One progress bar per stage, on stderr (the table on stdout stays clean).
    for stage in ("autoencoder", "encoding", "k-NN graph", "layout", "clustering"):
        assert stage in err, stage
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "ACC", "NMI", "ARI", "fit", "s"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith(
        ("AutoencoderKMeans ", "KMeans "))}
    assert set(rows) == {"AutoencoderKMeans", "KMeans"}
    for values in rows.values():
        assert all(0.0 <= float(v) <= 1.0 for v in values[:3])
    assert float(rows["KMeans"][1]) > 0.6  # k-means on digits: NMI ~ 0.74


def test_demo_quiet_shows_no_progress(capsys):
    argv = ["demo", "--quiet", "--epochs", "1", "--hidden-layer-sizes", "8", "--device", "cpu"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "AutoencoderKMeans" in out


def test_main_module_is_importable():
    import skdeepcluster.__main__ as entry

    assert entry.main is main
    assert Path(entry.__file__).name == "__main__.py"
