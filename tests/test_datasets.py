"""Tests for skdeepcluster.datasets: IDX reading, MNIST loaders, downloads (no network)."""

import gzip
import hashlib
import io
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from skdeepcluster import datasets
from skdeepcluster.datasets import get_data_home, load_fashion_mnist, load_mnist, read_idx

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
          np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array, type_code=None):
    array = np.asarray(array)
    code = _CODES[array.dtype.type] if type_code is None else type_code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, payload, compress=False):
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def make_split(directory, prefix, n, compress=True, seed=0, labels=None):
    """Write a tiny MNIST-like split; returns (uint8 images, labels)."""
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8) if labels is None else labels
    ext = ".gz" if compress else ""
    write(directory / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(images), compress)
    write(directory / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(labels), compress)
    return images, labels


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data home, system folder or network outside tmp_path."""
    monkeypatch.setenv("SKDEEPCLUSTER_DATA", str(tmp_path / "home"))
    monkeypatch.setattr(
        datasets, "SYSTEM_DIRS", {k: (str(tmp_path / "system" / k),) for k in datasets.SYSTEM_DIRS}
    )

    def no_network(url, timeout=60.0):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(datasets, "_urlopen", no_network)
    return tmp_path


# ------------------------------------------------------------------ read_idx
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = write(tmp_path / "a-idx3-ubyte", idx_bytes(array), compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    gz_without_suffix = write(tmp_path / "labels-idx1-ubyte", idx_bytes(array), compress=True)
    plain_with_suffix = write(tmp_path / "other-idx1-ubyte.gz", idx_bytes(array))
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)
    np.testing.assert_array_equal(read_idx(str(plain_with_suffix)), array)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b"\x01" + b[1:], "bad magic number"),
        (lambda b: b[:2] + b"\x42" + b[3:], "unknown IDX type code 0x42"),
        (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "longer than its header says"),
        (lambda b: b[:6], "truncated inside its header"),
        (lambda b: b[:3], "shorter than the 4-byte header"),
        (lambda b: b"", "shorter than the 4-byte header"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, mutate, match, compress):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    path = write(tmp_path / "bad-idx2-ubyte", mutate(good), compress)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_broken_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))
    path = write(tmp_path / "cut-idx1-ubyte.gz", data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid gzip file") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    garbage = write(tmp_path / "garbage-idx1-ubyte.gz", b"\x1f\x8b" + b"\xff" * 30)
    with pytest.raises(ValueError, match="garbage-idx1-ubyte.gz"):
        read_idx(garbage)


def test_read_idx_huge_declared_shape_does_not_allocate(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**31, 2**16, 2**16)
    path = write(tmp_path / "huge-idx3-ubyte", header + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope-idx1-ubyte")


# --------------------------------------------------------------- data home
def test_get_data_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SKDEEPCLUSTER_DATA", raising=False)
    assert get_data_home() == str(Path("~/skdeepcluster_data").expanduser())
    monkeypatch.setenv("SKDEEPCLUSTER_DATA", str(tmp_path / "env"))
    assert get_data_home() == str(tmp_path / "env")
    assert get_data_home(tmp_path / "explicit") == str(tmp_path / "explicit")
    assert get_data_home("~/x") == str(Path("~/x").expanduser())
    assert not (tmp_path / "env").exists()  # nothing is created


# ------------------------------------------------------------------- loaders
@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_from_path(isolated, compress):
    images, labels = make_split(isolated / "d", "t10k", 7, compress=compress)
    bunch = load_mnist(isolated / "d")
    assert bunch.data.shape == (7, 784) and bunch.data.dtype == np.float32
    assert bunch.target.dtype == np.int64
    np.testing.assert_array_equal(bunch.target, labels)
    np.testing.assert_allclose(bunch.data, images.reshape(7, -1) / 255.0, rtol=1e-6)
    assert 0.0 <= bunch.data.min() and bunch.data.max() <= 1.0
    np.testing.assert_array_equal(bunch.images, bunch.data.reshape(7, 28, 28))
    assert len(bunch.feature_names) == 784 and bunch.feature_names[29] == "pixel_1_1"
    np.testing.assert_array_equal(bunch.target_names, np.arange(10))
    assert "LeCun" in bunch.DESCR and "CC BY-SA" in bunch.DESCR
    assert bunch.frame is None
    assert len(bunch.filenames) == 2


def test_load_mnist_accepts_dotted_names(isolated):
    d = isolated / "d"
    make_split(d, "t10k", 3, compress=False)
    (d / "t10k-images-idx3-ubyte").rename(d / "t10k-images.idx3-ubyte")
    assert load_mnist(d).data.shape == (3, 784)


def test_load_mnist_subsets(isolated):
    train, train_y = make_split(isolated / "d", "train", 5, seed=1)
    test, test_y = make_split(isolated / "d", "t10k", 3, seed=2)
    assert load_mnist(isolated / "d", subset="train").data.shape == (5, 784)
    X, y = load_mnist(isolated / "d", subset="all", return_X_y=True)
    assert X.shape == (8, 784)
    np.testing.assert_array_equal(y, np.concatenate([train_y, test_y]))
    with pytest.raises(ValueError, match="subset must be"):
        load_mnist(isolated / "d", subset="validation")


def test_train_subset_missing_is_clear(isolated):
    make_split(isolated / "d", "t10k", 3)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(isolated / "d", subset="train")
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert str(isolated / "d") in message and str(isolated / "home" / "mnist") in message
    assert "download=True" in message and "path=" in message
    with pytest.raises(FileNotFoundError):
        load_mnist(isolated / "d", subset="all")


def test_search_order_data_home_env_and_system(isolated, monkeypatch):
    make_split(isolated / "home" / "mnist", "t10k", 4, seed=3)
    assert load_mnist().data.shape == (4, 784)  # via SKDEEPCLUSTER_DATA
    make_split(isolated / "explicit", "t10k", 2)
    assert load_mnist(isolated / "explicit").data.shape == (2, 784)  # path comes first
    make_split(isolated / "other" / "mnist", "t10k", 6)
    assert load_mnist(data_home=isolated / "other").data.shape == (6, 784)
    make_split(isolated / "system" / "fashion-mnist", "t10k", 5)
    bunch = load_fashion_mnist()
    assert bunch.data.shape == (5, 784)
    assert str(isolated / "system" / "fashion-mnist") in bunch.filenames[0]


def test_load_fashion_mnist(isolated):
    make_split(isolated / "f", "train", 4)
    bunch = load_fashion_mnist(isolated / "f", subset="train")
    assert bunch.data.shape == (4, 784)
    assert list(bunch.target_names[:2]) == ["T-shirt/top", "Trouser"]
    assert "Xiao" in bunch.DESCR and "MIT" in bunch.DESCR


def test_missing_everywhere(isolated):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fashion_mnist()


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "3 images but .* 4 labels"),
        (np.zeros((3, 27, 28), np.uint8), np.zeros(3, np.uint8), r"shape \(n, 28, 28\)"),
        (np.zeros((3, 28, 28), np.float32), np.zeros(3, np.uint8), "uint8 images"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "1-D uint8"),
        (np.zeros((3, 28, 28), np.uint8), np.array([0, 10, 1], np.uint8), "label 10"),
    ],
)
def test_inconsistent_files(isolated, images, labels, match):
    d = isolated / "d"
    d.mkdir()
    write(d / "t10k-images-idx3-ubyte", idx_bytes(images))
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(labels))
    with pytest.raises(ValueError, match=match):
        load_mnist(d)


def test_corrupt_file_in_loader_names_it(isolated):
    make_split(isolated / "d", "t10k", 3, compress=False)
    path = isolated / "d" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte is truncated"):
        load_mnist(isolated / "d")


def test_return_X_y_and_as_frame(isolated):
    pd = pytest.importorskip("pandas")
    make_split(isolated / "d", "t10k", 4)
    X, y = load_mnist(isolated / "d", return_X_y=True)
    assert isinstance(X, np.ndarray) and X.shape == (4, 784) and y.shape == (4,)
    bunch = load_mnist(isolated / "d", as_frame=True)
    assert isinstance(bunch.frame, pd.DataFrame) and bunch.frame.shape == (4, 785)
    assert isinstance(bunch.data, pd.DataFrame) and list(bunch.data.columns) == bunch.feature_names
    assert isinstance(bunch.target, pd.Series) and bunch.target.name == "target"
    np.testing.assert_array_equal(bunch.frame["target"].to_numpy(), y)
    Xf, yf = load_mnist(isolated / "d", as_frame=True, return_X_y=True)
    assert isinstance(Xf, pd.DataFrame) and isinstance(yf, pd.Series)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST test files not present")
def test_real_mnist_test_set(isolated):
    bunch = load_mnist(path=SHARED_MNIST)
    assert bunch.data.shape == (10000, 784) and bunch.images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(bunch.target[:5], [7, 2, 1, 0, 4])
    assert np.bincount(bunch.target).tolist()[:2] == [980, 1135]
    assert bunch.data.min() == 0.0 and bunch.data.max() == 1.0


# ------------------------------------------------------------------ download
class FakeResponse(io.BytesIO):
    pass


def serve(monkeypatch, files, calls=None, fail=()):
    """Replace the URL opener with one serving ``files`` (name -> bytes)."""

    def fake_urlopen(url, timeout=60.0):
        if calls is not None:
            calls.append(url)
        if any(url.startswith(prefix) for prefix in fail):
            raise urllib.error.URLError("mirror down")
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return FakeResponse(files[name])

    monkeypatch.setattr(datasets, "_urlopen", fake_urlopen)


def synthetic_release(tmp_path, monkeypatch, name="mnist"):
    """Synthetic gz files with their digests registered as the known ones."""
    src = tmp_path / "release"
    make_split(src, "t10k", 6, seed=4)
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    checksums = {n: {"gz": hashlib.sha256(b).hexdigest()} for n, b in files.items()}
    monkeypatch.setitem(datasets.CHECKSUMS, name, checksums)
    return files


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST test files not present")
def test_download_real_files_verified_by_known_digests(isolated, monkeypatch):
    files = {p.name: p.read_bytes() for p in SHARED_MNIST.iterdir()}
    calls = []
    serve(monkeypatch, files, calls)
    bunch = load_mnist(download=True)
    assert bunch.data.shape == (10000, 784)
    target = isolated / "home" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(files)
    assert len(calls) == 2 and calls[0].startswith(datasets.MIRRORS["mnist"][0])
    # Present files are used as they are: no second download.
    calls.clear()
    load_mnist(download=True)
    assert calls == []


def test_download_with_file_urls(isolated, monkeypatch):
    files = synthetic_release(isolated, monkeypatch)
    monkeypatch.setattr(datasets, "_urlopen", urllib.request.urlopen)  # the real opener
    monkeypatch.setitem(datasets.MIRRORS, "mnist", ((isolated / "release").as_uri() + "/",))
    X, y = load_mnist(download=True, data_home=isolated / "dl", return_X_y=True)
    assert X.shape == (6, 784)
    assert sorted(p.name for p in (isolated / "dl" / "mnist").iterdir()) == sorted(files)


def test_download_falls_back_to_next_mirror(isolated, monkeypatch):
    files = synthetic_release(isolated, monkeypatch)
    calls = []
    first, second = "https://first.example/", "https://second.example/"
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (first, second))
    serve(monkeypatch, files, calls, fail=(first,))
    assert load_mnist(download=True).data.shape == (6, 784)
    assert [c.split("/")[2] for c in calls] == ["first.example", "second.example"] * 2


def test_download_hash_mismatch_leaves_nothing(isolated, monkeypatch):
    files = synthetic_release(isolated, monkeypatch)
    tampered = dict(files)
    name = "t10k-images-idx3-ubyte.gz"
    images = read_idx_bytes(files[name])
    images[0, 0, 0] ^= 1
    tampered[name] = gzip.compress(idx_bytes(images))
    serve(monkeypatch, tampered)
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        load_mnist(download=True)
    target = isolated / "home" / "mnist"
    assert not target.exists() or list(target.iterdir()) == []


def test_download_network_failure_leaves_nothing(isolated, monkeypatch):
    synthetic_release(isolated, monkeypatch)
    serve(monkeypatch, {}, fail=("http",))
    with pytest.raises(OSError, match="mirror down"):
        load_mnist(download=True)
    target = isolated / "home" / "mnist"
    assert not target.exists() or list(target.iterdir()) == []


def test_download_rejects_file_without_known_digest(isolated, monkeypatch):
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", {})
    with pytest.raises(ValueError, match="No known SHA-256"):
        load_mnist(download=True)


def test_known_checksums_cover_every_file():
    for name in ("mnist", "fashion-mnist"):
        assert sorted(datasets.CHECKSUMS[name]) == sorted(
            f"{p}-{k}-idx{d}-ubyte.gz" for p in ("train", "t10k") for k, d in
            (("images", 3), ("labels", 1))
        )
        for digests in datasets.CHECKSUMS[name].values():
            assert len(digests["gz"]) == 64


def read_idx_bytes(gz_bytes):
    raw = gzip.decompress(gz_bytes)
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim :], dtype=np.uint8).reshape(shape).copy()
