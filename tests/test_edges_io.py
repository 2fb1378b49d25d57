"""Edge cases of the public surface: feature names, label checks and the CLI's output folder.

* ``NeighborEmbedding`` names its output columns once fitted, so that
  ``set_output(transform="pandas")`` works, alone and in a ``Pipeline``;
* the metrics refuse NaN and infinite labels instead of taking NaN as a class;
* ``skdeepcluster cluster`` refuses an output location where no folder can be
  created before it reads or fits anything (``/proc``, a read-only file system);
* ``--overwrite`` never deletes files that the earlier run did not write.
"""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdeepcluster import AutoencoderKMeans, NeighborEmbedding
from skdeepcluster.cli import main
from skdeepcluster.metrics import cluster_accuracy, clustering_scores, match_labels

from . import test_cli_output
from .test_cli_output import FAST, RESULTS, cluster, dead_pid, leftovers, names, one_error_line

# The fixtures of the CLI output tests, shared rather than copied.
data = test_cli_output.data
no_work = test_cli_output.no_work
previous_run = test_cli_output.previous_run


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if the command fits a model."""

    def fit_transform(self, X, y=None):
        raise AssertionError("a model was fitted although the command was refused")

    monkeypatch.setattr(AutoencoderKMeans, "fit_transform", fit_transform)


# ---------------------------------------------- 1. NeighborEmbedding feature names
def small_embedding(n_components=3):
    return NeighborEmbedding(n_components=n_components, device="cpu", random_state=0)


def blobs(n=60, d=5):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), n // 3)
    return rng.normal(size=(n, d)) * 0.3 + y[:, None] * 3.0


def test_neighbor_embedding_names_its_features_once_fitted():
    with pytest.raises(NotFittedError):
        small_embedding().get_feature_names_out()
    model = small_embedding().fit(blobs())
    expected = ["neighborembedding0", "neighborembedding1", "neighborembedding2"]
    assert model.get_feature_names_out().tolist() == expected


def test_neighbor_embedding_pandas_output():
    pd = pytest.importorskip("pandas")
    X = blobs()
    model = small_embedding().set_output(transform="pandas")
    frame = model.fit_transform(X)
    assert isinstance(frame, pd.DataFrame)
    assert frame.columns.tolist() == model.get_feature_names_out().tolist()
    np.testing.assert_array_equal(frame.to_numpy(), small_embedding().fit_transform(X))
    new = model.transform(X[:7])
    assert isinstance(new, pd.DataFrame) and new.shape == (7, 3)
    assert new.columns.tolist() == frame.columns.tolist()


def test_neighbor_embedding_pandas_output_in_a_pipeline():
    pd = pytest.importorskip("pandas")
    X = blobs()
    pipe = make_pipeline(StandardScaler(), small_embedding(2)).set_output(transform="pandas")
    frame = pipe.fit_transform(X)
    assert isinstance(frame, pd.DataFrame)
    assert frame.columns.tolist() == ["neighborembedding0", "neighborembedding1"]
    assert pipe.get_feature_names_out().tolist() == frame.columns.tolist()
    assert isinstance(pipe.transform(X[:5]), pd.DataFrame)


# ---------------------------------------------------- 3. NaN and infinite labels
NAN_LABELS = [
    ([0, 1, np.nan], [0, 1, 1], "y_true", "nan"),
    ([0, 1, 1], [0, 1, np.nan], "y_pred", "nan"),
    ([0, 1, np.inf], [0, 1, 1], "y_true", "inf"),
    ([0, 1, 1], [0, 1, -np.inf], "y_pred", "-inf"),
    (np.array(["a", "b", np.nan], dtype=object), [0, 1, 1], "y_true", "nan"),
]


@pytest.mark.parametrize("metric", [cluster_accuracy, clustering_scores, match_labels])
@pytest.mark.parametrize("y_true, y_pred, name, value", NAN_LABELS)
def test_metrics_refuse_nan_and_infinite_labels(metric, y_true, y_pred, name, value):
    with pytest.raises(ValueError, match=rf"^{name} holds 1 NaN or infinite") as info:
        metric(y_true, y_pred)
    assert f"the first {value} at index 2" in str(info.value)


def test_metrics_keep_finite_labels_of_any_type():
    assert cluster_accuracy(["a", "b", "b"], [0, 1, 1]) == 1.0
    assert cluster_accuracy(np.array(["a", "b", "b"], dtype=object), [5, 7, 7]) == 1.0
    assert cluster_accuracy([0.5, 1.5, 1.5], [0, 1, 0]) == pytest.approx(2 / 3)
    assert clustering_scores([True, False, False], [1, 0, 0])["accuracy"] == 1.0


def test_cli_refuses_nan_labels_before_fitting(tmp_path, capsys, no_fit):
    rng = np.random.default_rng(0)
    y = np.repeat([0.0, 1.0, 2.0], 10)
    y[4] = np.nan
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.normal(size=(30, 4)), y=y)
    code = main(["cluster", str(path), "-k", "3", *FAST, "--out", str(tmp_path / "out")])
    one_error_line(code, capsys, str(path), "NaN", "index 4")
    assert not (tmp_path / "out").exists()


# ------------------------------------- 2. an output location that cannot be created
def test_output_under_proc_is_refused_before_fitting(data, capsys, no_work, no_fit):
    root = Path("/proc")
    if not root.is_dir():
        pytest.skip("no /proc here")
    out = root / f"skdeepcluster-test-{os.getpid()}"
    one_error_line(cluster(data, out), capsys, str(out), "cannot create a folder in /proc")
    assert not out.exists()


def test_read_only_file_system_is_refused_before_fitting(
    data, tmp_path, capsys, monkeypatch, no_work, no_fit
):
    """Where permissions allow writing but creating a folder fails (EROFS, say)."""
    out = tmp_path / "out"
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.parent == tmp_path:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    one_error_line(cluster(data, out), capsys, str(out), str(tmp_path), "Read-only file system")
    assert names(tmp_path) == {"X.npy"}


def test_probe_folder_left_by_a_killed_run_is_removed(data, previous_run):
    out, _ = previous_run
    stale = out.with_name(f"out.probe-{dead_pid()}-0123abcd")
    stale.mkdir()
    os.utime(stale, (0, 0))
    assert cluster(data, out, "--no-plots", "--overwrite") == 0
    assert names(out) == RESULTS and leftovers(out) == []


# ----------------------------------- 4. --overwrite deletes only an earlier run's files
@pytest.mark.parametrize(
    "added, shown",
    [
        (["notes.txt"], "notes.txt"),
        (["embedding.png"], "embedding.png"),  # a plot name, but that run wrote no plots
        (["a.txt", "b.txt", "c.txt", "d.txt", "e/"], "a.txt, b.txt, c.txt and 2 more"),
    ],
)
def test_overwrite_refuses_a_folder_with_files_of_the_user(
    data, capsys, previous_run, no_work, no_fit, added, shown
):
    out, before = previous_run
    for name in added:
        if name.endswith("/"):
            (out / name).mkdir()
        else:
            (out / name).write_text("mine")
    line = one_error_line(cluster(data, out, "--overwrite"), capsys, str(out), shown)
    assert "not results of an earlier run" in line
    assert names(out) == set(before) | {name.rstrip("/") for name in added}
    assert all((out / name).read_bytes() == content for name, content in before.items())


def test_overwrite_replaces_an_earlier_run_alone(data, previous_run):
    out, before = previous_run
    assert set(before) == RESULTS
    assert json.loads(before["summary.json"])["n_samples"] == 30
    assert cluster(data, out, "--no-plots", "--overwrite") == 0
    assert names(out) == RESULTS and leftovers(out) == []
    assert json.loads((out / "summary.json").read_text())["n_samples"] == 60


def test_overwrite_keeps_files_added_during_the_run(data, capsys, previous_run, monkeypatch):
    out, before = previous_run
    original = AutoencoderKMeans.fit_transform

    def fit_transform_and_add(self, X, y=None):
        (out / "notes.txt").write_text("written meanwhile")
        return original(self, X)

    monkeypatch.setattr(AutoencoderKMeans, "fit_transform", fit_transform_and_add)
    code = cluster(data, out, "--no-plots", "--overwrite")
    one_error_line(code, capsys, str(out), "notes.txt")
    assert names(out) == set(before) | {"notes.txt"}
    assert all((out / name).read_bytes() == content for name, content in before.items())
    assert leftovers(out) == []


def test_overwrite_help_describes_the_refusal(capsys):
    assert main(["cluster", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "files you added are never deleted" in text
    assert "refused when the folder holds files that its summary.json does not list" in text
