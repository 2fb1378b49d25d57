"""The output folder of ``skdeepcluster cluster``: the command line never loses data.

Refusal of a folder that holds files (unless ``--overwrite``), replacement of
the whole folder by a complete new one, checks of the output location before
any work, one-line errors for every I/O error, and the contents of
summary.json. The SIGKILL test is in test_cli_kill.py.
"""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from skdeepcluster.cli import _commands, _output, main

#: Options that keep a CLI fit well under a second (PCA instead of the
#: neighbour embedding as the second stage).
FAST = [
    "--epochs", "1", "--latent-dim", "2", "--hidden-layer-sizes", "16",
    "--pca-components", "2", "--device", "cpu",
]  # fmt: skip
RESULTS = {"labels.csv", "embedding.npy", "model.joblib", "summary.json"}


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    path = tmp_path / "X.npy"
    np.save(path, rng.normal(size=(60, 6)) * 0.3 + y[:, None] * 3.0)
    return path


def cluster(data, out, *options):
    return main(["cluster", str(data), "-k", "3", *FAST, "--out", str(out), *options])


def names(folder):
    return {p.name for p in folder.iterdir()}


def leftovers(out):
    """Temporary siblings of ``out`` (``out.tmp-*``, ``out.old-*``)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name + "."))


def one_error_line(code, capsys, *fragments):
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("skdeepcluster: error: ")
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the command reads the data (so: before fitting too)."""

    def load_data(*args, **kwargs):
        raise AssertionError("the data was read although the output location is refused")

    monkeypatch.setattr(_commands, "load_data", load_data)


@pytest.fixture
def previous_run(data, tmp_path):
    """An output folder holding an earlier run's results, and its file contents."""
    out = tmp_path / "out"
    assert cluster(data, out, "--no-plots", "--max-samples", "30") == 0
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


# ------------------------------------------------------------ 1. refusal
def test_non_empty_output_folder_is_refused(data, tmp_path, capsys, no_work):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = one_error_line(cluster(data, out), capsys, str(out), "not empty", "--overwrite")
    assert "Traceback" not in line
    assert names(out) == {"notes.txt"} and (out / "notes.txt").read_text() == "mine"


def test_existing_empty_output_folder_is_used(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert cluster(data, out, "--no-plots") == 0
    assert names(out) == RESULTS
    assert leftovers(out) == []


def test_missing_parents_are_created(data, tmp_path):
    out = tmp_path / "a" / "b" / "out"
    assert cluster(data, out, "--no-plots") == 0
    assert names(out) == RESULTS


def test_overwrite_replaces_only_an_earlier_run(data, tmp_path, capsys, no_work):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = cluster(data, out, "--overwrite")
    one_error_line(code, capsys, str(out), "no summary.json")
    assert names(out) == {"notes.txt"}


def test_overwrite_never_replaces_the_input(tmp_path, capsys, previous_run, no_work):
    out, _ = previous_run
    np.save(out / "X.npy", np.zeros((10, 2)))
    code = main(["cluster", str(out / "X.npy"), "-k", "2", "--out", str(out), "--overwrite"])
    one_error_line(code, capsys, "X.npy", "inside the output folder", str(out))
    assert (out / "X.npy").exists()


# ------------------------------------------------ 2. reruns never mix results
def test_overwrite_leaves_only_the_new_run(data, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    assert cluster(data, out) == 0  # with plots
    assert any(name.endswith(".png") for name in names(out)), capsys.readouterr().out
    first = json.loads((out / "summary.json").read_text())

    assert cluster(data, out, "--no-plots", "--max-samples", "40", "--overwrite") == 0
    assert names(out) == RESULTS  # no PNG of the first run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 40 and first["n_samples"] == 60
    assert set(summary["files"]) == RESULTS
    assert len((out / "labels.csv").read_text().splitlines()) == 41
    assert leftovers(out) == []


def test_overwrite_without_atomic_exchange(data, previous_run, monkeypatch):
    """Where renameat2 is missing, the old folder is renamed aside, then removed."""
    out, _ = previous_run
    monkeypatch.setattr(_output, "_exchange", lambda a, b: False)
    assert cluster(data, out, "--no-plots", "--overwrite") == 0
    assert json.loads((out / "summary.json").read_text())["n_samples"] == 60
    assert leftovers(out) == []


def test_failed_swap_puts_the_previous_results_back(tmp_path, monkeypatch):
    target, new = tmp_path / "out", tmp_path / "out.tmp-1-ab"
    target.mkdir()
    (target / "summary.json").write_text("old")
    new.mkdir()
    (new / "summary.json").write_text("new")
    monkeypatch.setattr(_output, "_exchange", lambda a, b: False)
    rename = os.rename

    def failing_rename(src, dst):
        if str(src) == str(new):
            raise OSError(errno.EIO, "Input/output error", str(src))
        rename(src, dst)

    monkeypatch.setattr(_output.os, "rename", failing_rename)
    with pytest.raises(OSError):
        _output._swap_into_place(new, target, overwrite=True)
    assert (target / "summary.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.tmp-1-ab"]


def test_atomic_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    (b / "f").write_text("b")
    if not _output._exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    assert (a / "f").read_text() == "b" and (b / "f").read_text() == "a"


def test_folder_filled_during_the_run_is_not_replaced(data, tmp_path, capsys, monkeypatch):
    from skdeepcluster import AutoencoderKMeans

    out = tmp_path / "out"

    original = AutoencoderKMeans.fit_transform

    def fit_transform_and_fill(self, X, y=None):
        out.mkdir()
        (out / "notes.txt").write_text("written meanwhile")
        return original(self, X)

    monkeypatch.setattr(AutoencoderKMeans, "fit_transform", fit_transform_and_fill)
    one_error_line(cluster(data, out, "--no-plots"), capsys, str(out), "during the run")
    assert names(out) == {"notes.txt"}
    assert leftovers(out) == []


# ------------------------------------------------ 3. unwritable locations
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_read_only_output_folder_is_refused(data, tmp_path, capsys, no_work):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        one_error_line(cluster(data, out), capsys, str(out), "not writable")
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize("where", ["out", "parent"])
def test_unwritable_location_is_refused_before_reading(
    data, tmp_path, capsys, monkeypatch, no_work, where
):
    parent = tmp_path / "parent"
    out = parent / "out"
    out.mkdir(parents=True)
    denied = out if where == "out" else parent
    access = os.access

    def no_write_access(path, mode, **kwargs):
        if os.fspath(path) == str(denied) and mode & os.W_OK:
            return False
        return access(path, mode, **kwargs)

    monkeypatch.setattr(_output.os, "access", no_write_access)
    one_error_line(cluster(data, out), capsys, str(denied), "not writable")
    assert names(out) == set()


def test_unwritable_parent_of_a_new_folder_is_refused(data, tmp_path, capsys, monkeypatch, no_work):
    out = tmp_path / "new" / "out"
    access = os.access
    monkeypatch.setattr(
        _output.os,
        "access",
        lambda path, mode, **kw: os.fspath(path) != str(tmp_path) and access(path, mode, **kw),
    )
    one_error_line(cluster(data, out), capsys, str(tmp_path), "not writable")
    assert not (tmp_path / "new").exists()


# ------------------------------------------------ 4. names of the wrong kind
def test_output_name_taken_by_a_file(data, tmp_path, capsys, no_work):
    out = tmp_path / "out"
    out.write_text("a file")
    one_error_line(cluster(data, out), capsys, str(out), "not a folder")
    assert out.read_text() == "a file"


def test_output_parent_is_a_file(data, tmp_path, capsys, no_work):
    (tmp_path / "file.txt").write_text("a file")
    out = tmp_path / "file.txt" / "out"
    one_error_line(cluster(data, out), capsys, str(tmp_path / "file.txt"), "not a folder")


def test_directory_named_like_an_output_file(data, previous_run, capsys):
    """The old reproducer: ``out/labels.csv/`` is a folder; --overwrite now just works."""
    out, _ = previous_run
    (out / "labels.csv").unlink()
    (out / "labels.csv").mkdir()
    (out / "labels.csv" / "inner.txt").write_text("x")
    assert cluster(data, out, "--no-plots", "--overwrite") == 0
    assert (out / "labels.csv").is_file()
    assert names(out) == RESULTS and leftovers(out) == []


def test_directory_named_like_an_output_file_without_a_run(data, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "labels.csv").mkdir(parents=True)
    one_error_line(cluster(data, out, "--overwrite"), capsys, str(out))
    assert (out / "labels.csv").is_dir()


# ------------------------------------------------------- 5. I/O errors
@pytest.mark.parametrize("failing", ["embedding", "summary"])
def test_write_error_keeps_the_previous_results(
    data, previous_run, capsys, monkeypatch, failing
):
    out, before = previous_run

    def disk_full(path):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    if failing == "embedding":
        monkeypatch.setattr(_commands.np, "save", lambda path, array: disk_full(path))
    else:
        monkeypatch.setattr(_commands, "_save_json", lambda obj, path: disk_full(path))
    code = cluster(data, out, "--no-plots", "--overwrite")
    one_error_line(code, capsys, "cannot write the results to", str(out), "No space left")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(out) == []


def test_interrupt_while_writing_keeps_the_previous_results(data, previous_run, monkeypatch):
    out, before = previous_run

    def interrupted(obj, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(_commands, "_save_json", interrupted)
    assert cluster(data, out, "--no-plots", "--overwrite") == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(out) == []


def test_os_error_anywhere_is_one_line(data, tmp_path, capsys, monkeypatch):
    def unreadable(spec, args):
        raise PermissionError(errno.EACCES, "Permission denied", spec)

    monkeypatch.setattr(_commands, "load_data", unreadable)
    code = cluster(data, tmp_path / "out")
    one_error_line(code, capsys, "Permission denied", str(data))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may read anything"
)
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_unreadable_input_is_one_line(tmp_path, capsys, suffix):
    path = tmp_path / f"X{suffix}"
    path.write_text("1,2\n")
    path.chmod(0)
    try:
        code = main(["cluster", str(path), "-k", "2", "--out", str(tmp_path / "out")])
    finally:
        path.chmod(0o644)
    one_error_line(code, capsys, str(path))


# ------------------------------------------------------------- 6. summary
def test_summary_records_the_command_and_parameters(data, tmp_path):
    out = tmp_path / "out"
    argv = ["cluster", str(data), "-k", "3", *FAST, "--out", str(out), "--no-plots"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == ["skdeepcluster", *argv]
    params = summary["parameters"]
    assert params["n_clusters"] == 3 and params["epochs"] == 1 and params["latent_dim"] == 2
    assert params["architecture__hidden_layer_sizes"] == [16] and params["random_state"] == 0
    assert params["reducer"] == "PCA(n_components=2, random_state=0)"
    from skdeepcluster import AutoencoderKMeans

    # every parameter, and those of its objects (reducer__n_components, ...)
    assert set(AutoencoderKMeans().get_params(deep=False)) <= set(params)
    assert params["reducer__n_components"] == 2
    json.dumps(summary, allow_nan=False)  # plain JSON


def test_pca_components_builds_a_seeded_pca_reducer(data, tmp_path):
    import joblib
    from sklearn.decomposition import PCA

    out = tmp_path / "out"
    options = FAST[: FAST.index("--pca-components")] + ["--device", "cpu"]
    code = main(["cluster", str(data), "-k", "3", *options, "--pca-components", "0.9",
                 "--random-state", "7", "--out", str(out), "--no-plots"])  # fmt: skip
    assert code == 0
    model = joblib.load(out / "model.joblib")
    assert isinstance(model.reducer, PCA)
    assert model.reducer.n_components == 0.9 and model.reducer.random_state == 7
    assert "pca_components" not in model.reducer.get_params()
    assert isinstance(model.reducer_, PCA)


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "1.0", "lots"])
def test_invalid_pca_components(data, tmp_path, capsys, value, no_work):
    code = main(["cluster", str(data), "-k", "3", "--pca-components", value])
    one_error_line(code, capsys, "--pca-components", repr(value))


# ------------------------------------------------------ 7. not a .npy file
@pytest.mark.parametrize(
    "name, content, fragments",
    [
        ("text.npy", b"1,2,3\n4,5,6\n", ["text.npy", "not a NumPy .npy file"]),
        ("empty.npy", b"", ["empty.npy", "not a NumPy .npy file"]),
        ("zip.npy", None, ["zip.npy", "not a NumPy .npy file", "rename it to .npz"]),
        ("text.npz", b"1,2,3\n", ["text.npz", "not a NumPy .npz file"]),
    ],
)
def test_file_that_is_not_numpy(tmp_path, capsys, name, content, fragments):
    path = tmp_path / name
    if content is None:
        np.savez(tmp_path / "a.npz", X=np.zeros((3, 2)))
        (tmp_path / "a.npz").rename(path)
    else:
        path.write_bytes(content)
    code = main(["cluster", str(path), "-k", "2", "--out", str(tmp_path / "out")])
    line = one_error_line(code, capsys, *fragments)
    assert "pickled" not in line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------- stale temporary folders
def dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_stale_temporary_folders_are_removed(data, previous_run):
    out, _ = previous_run
    stale = out.with_name(f"out.tmp-{dead_pid()}-0123abcd")
    stale.mkdir()
    (stale / "labels.csv").write_text("index,label\n0,")
    os.utime(stale, (0, 0))
    live = out.with_name(f"out.tmp-{os.getpid()}-4567ef01")  # a run that is still writing
    live.mkdir()
    os.utime(live, (0, 0))
    other = out.with_name("out.tmp-notes")  # not ours
    other.mkdir()
    assert cluster(data, out, "--no-plots", "--overwrite") == 0
    assert names(out) == RESULTS
    assert leftovers(out) == [live.name, other.name]


# ------------------------------------------------------------------ help
def test_help_describes_the_output_folder(capsys):
    assert main(["cluster", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("--overwrite", "must be new or empty", "summary.json",
                     "replaces DIR in one step", "command line, estimator parameters"):  # fmt: skip
        assert fragment in text
