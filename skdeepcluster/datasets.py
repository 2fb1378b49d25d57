"""Loaders for MNIST and Fashion-MNIST, a strict reader of IDX files, and :func:`open_rows`.

The loaders look for the four standard IDX files (plain or gzip-compressed)
in, in this order: an explicit ``path``, ``<data_home>/mnist`` (or
``<data_home>/fashion-mnist``), then system folders such as
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``
package). With ``download=True`` missing files are fetched from canonical
mirrors into the data home and checked against their published SHA-256
digests before use. Nothing is downloaded unless asked for. :func:`open_rows`
opens folders of ``.npy`` shards, Parquet and Zarr data, read on demand.

Over 600 lines for a reason: two loaders and the strict IDX reader, each with
numpydoc and doctests, and the checksums of the files they read.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ._sources import open_rows

__all__ = [
    "get_data_home",
    "load_fashion_mnist",
    "load_mnist",
    "open_rows",
    "read_idx",
]

#: Environment variable overriding the default data home.
DATA_HOME_ENV = "SKDEEPCLUSTER_DATA"

_GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CHUNK = 1 << 20

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}

#: Canonical mirrors, tried in order. Each serves the four ``*.gz`` files.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}

#: SHA-256 digests accepted for each downloaded file: ``'gz'`` is the digest of
#: the canonical gzip file as published (these match the MD5 sums published by
#: the data authors and are the values used by torchvision and TensorFlow
#: Datasets); ``'raw'`` is the digest of the decompressed IDX payload, which
#: also accepts a mirror that re-compressed the same content. ``'raw'`` is only
#: known for the MNIST test files. Every file has a known digest, so the check
#: is mandatory for every download.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": {
            "gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        },
        "train-labels-idx1-ubyte.gz": {
            "gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        },
        "t10k-images-idx3-ubyte.gz": {
            "gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "raw": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        "t10k-labels-idx1-ubyte.gz": {
            "gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "raw": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": {
            "gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        },
        "train-labels-idx1-ubyte.gz": {
            "gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        },
        "t10k-images-idx3-ubyte.gz": {
            "gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        },
        "t10k-labels-idx1-ubyte.gz": {
            "gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    },
}

#: Folders searched after ``path`` and the data home.
SYSTEM_DIRS = {
    "mnist": ("/usr/share/datasets/mnist",),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}

_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_MNIST_DESCR = """\
.. _mnist_dataset:

MNIST handwritten digits
------------------------

**Data Set Characteristics:**

:Number of Instances: 60,000 training and 10,000 test images
:Number of Attributes: 784 (28 x 28 grey levels, scaled here to [0, 1])
:Classes: 10 (the digits 0-9)
:Source: http://yann.lecun.com/exdb/mnist/
:Licence: Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0), as
    stated by the authors; the images derive from NIST Special Databases 1
    and 3.

The MNIST database was assembled by Yann LeCun, Corinna Cortes and
Christopher J. C. Burges from NIST handwriting samples: digits were
size-normalised to a 20 x 20 box and centred by centre of mass in a 28 x 28
image. The training images were written by about 250 people; the test images
by a disjoint set of writers.

The files are not shipped with skdeepcluster. ``load_mnist`` reads the
standard IDX files from disk, or downloads them from public mirrors (with
SHA-256 verification) when called with ``download=True``.

.. rubric:: References

- Y. LeCun, L. Bottou, Y. Bengio and P. Haffner. "Gradient-based learning
  applied to document recognition." Proceedings of the IEEE, 86(11):
  2278-2324, 1998.
- Y. LeCun, C. Cortes and C. J. C. Burges. "The MNIST database of
  handwritten digits." http://yann.lecun.com/exdb/mnist/
"""

_FASHION_DESCR = """\
.. _fashion_mnist_dataset:

Fashion-MNIST
-------------

**Data Set Characteristics:**

:Number of Instances: 60,000 training and 10,000 test images
:Number of Attributes: 784 (28 x 28 grey levels, scaled here to [0, 1])
:Classes: 10 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
    Sneaker, Bag, Ankle boot)
:Source: https://github.com/zalandoresearch/fashion-mnist
:Licence: MIT Licence, Copyright (c) 2017 Zalando SE.

Fashion-MNIST consists of Zalando article images in the same format and with
the same splits sizes as MNIST, meant as a harder drop-in replacement for it.

The files are not shipped with skdeepcluster. ``load_fashion_mnist`` reads
the standard IDX files from disk (e.g. from Debian's
``dataset-fashion-mnist`` package), or downloads them from public mirrors
(with SHA-256 verification) when called with ``download=True``.

.. rubric:: References

- H. Xiao, K. Rasul and R. Vollgraf. "Fashion-MNIST: a Novel Image Dataset
  for Benchmarking Machine Learning Algorithms." arXiv:1708.07747, 2017.
"""


# ---------------------------------------------------------------- data home
def get_data_home(data_home: str | os.PathLike | None = None) -> str:
    """Folder where skdeepcluster keeps downloaded data sets.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to use. When None, the ``SKDEEPCLUSTER_DATA`` environment
        variable, or else ``~/skdeepcluster_data``. ``~`` is expanded.

    Returns
    -------
    data_home : str
        The folder's path. It is not created here; downloads create it.

    Examples
    --------
    >>> from skdeepcluster.datasets import get_data_home
    >>> get_data_home("/tmp/my_data")
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or os.path.join("~", "skdeepcluster_data")
    return os.path.expanduser(os.fspath(data_home))


# ----------------------------------------------------------------- IDX files
def _read_exact(stream, n_bytes: int) -> bytes:
    """Read up to ``n_bytes`` in chunks (never allocating more than read)."""
    chunks = []
    remaining = n_bytes
    while remaining > 0:
        chunk = stream.read(min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _parse_idx(stream, name: str) -> np.ndarray:
    header = _read_exact(stream, 4)
    if len(header) < 4:
        raise ValueError(f"{name} is not an IDX file: it is shorter than the 4-byte header.")
    if header[:2] != b"\x00\x00":
        raise ValueError(
            f"{name} is not an IDX file: bad magic number {header.hex()} "
            "(expected 0000 followed by a type code and the number of dimensions)."
        )
    type_code, ndim = header[2], header[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(
            f"{name} has an unknown IDX type code 0x{type_code:02x}; expected one of "
            + ", ".join(f"0x{code:02x}" for code in _IDX_DTYPES)
            + "."
        )
    if ndim == 0:
        raise ValueError(f"{name} declares 0 dimensions; an IDX array needs at least one.")
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(f"{name} is truncated inside its header ({ndim} dimensions declared).")
    shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = _IDX_DTYPES[type_code]
    expected = dtype.itemsize * int(np.prod(shape, dtype=object))
    payload = _read_exact(stream, expected + 1)
    if len(payload) != expected:
        what = "truncated" if len(payload) < expected else "longer than its header says"
        found = f"{len(payload)}" if len(payload) < expected else f"more than {expected}"
        raise ValueError(
            f"{name} is {what}: shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {found}."
        )
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the format of MNIST), plain or gzip-compressed.

    Compression is detected from the file's first bytes, not its name. The
    header is validated (magic number, type code, number of dimensions) and
    the payload must have exactly the length the header announces.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    array : ndarray
        The array, with the file's dtype (``uint8`` for MNIST) in native byte
        order and the shape stored in the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a well-formed IDX file (bad magic number, unknown
        type code, truncated or over-long payload, corrupt gzip stream). The
        message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skdeepcluster.datasets import read_idx
    >>> raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     name = os.path.join(tmp, "toy-idx2-ubyte")
    ...     with open(name, "wb") as f:
    ...         _ = f.write(raw)
    ...     read_idx(name)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = Path(path)
    name = str(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not compressed:
            return _parse_idx(f, name)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return _parse_idx(gz, name)
        except (OSError, EOFError, zlib.error) as exc:
            # gzip.BadGzipFile is an OSError; a cut stream raises EOFError.
            raise ValueError(f"{name} is not a valid gzip file ({exc}).") from exc


# ------------------------------------------------------------------- search
def _candidates(split: str, kind: str) -> list[str]:
    prefix = _SPLIT_PREFIX[split]
    ndim = 3 if kind == "images" else 1
    names = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [n + ext for n in names for ext in ("", ".gz")]


def _find_split(directory: Path, split: str) -> tuple[Path, Path] | None:
    found = []
    for kind in ("images", "labels"):
        match = next(
            (directory / n for n in _candidates(split, kind) if (directory / n).is_file()), None
        )
        if match is None:
            return None
        found.append(match)
    return found[0], found[1]


def _search_dirs(name: str, path, data_home) -> list[Path]:
    dirs = []
    if path is not None:
        dirs.append(Path(path).expanduser())
    dirs.append(Path(get_data_home(data_home)) / name)
    dirs.extend(Path(d) for d in SYSTEM_DIRS[name])
    return dirs


# ----------------------------------------------------------------- download
def _urlopen(url: str, timeout: float = 60.0):
    """Open ``url`` (monkeypatched in tests to serve local files)."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed mirror list


def _digests(file_name: str) -> tuple[str, str | None]:
    """SHA-256 of the file and of its decompressed content (None if not gzip)."""
    digest = hashlib.sha256()
    with open(file_name, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    try:
        raw = hashlib.sha256()
        with gzip.open(file_name, "rb") as gz:
            for chunk in iter(lambda: gz.read(_CHUNK), b""):
                raw.update(chunk)
        return digest.hexdigest(), raw.hexdigest()
    except (OSError, EOFError, zlib.error):
        return digest.hexdigest(), None


def _download_file(name: str, filename: str, target_dir: Path) -> Path:
    """Fetch one file from the mirrors into ``target_dir``, verifying it."""
    known = CHECKSUMS[name].get(filename)
    if not known:
        raise ValueError(f"No known SHA-256 for {name}/{filename}; refusing to download it.")
    target_dir.mkdir(parents=True, exist_ok=True)
    destination = target_dir / filename
    errors = []
    for mirror in MIRRORS[name]:
        url = mirror + filename
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                response = _urlopen(url)
                try:
                    shutil.copyfileobj(response, out, _CHUNK)
                finally:
                    close = getattr(response, "close", None)
                    if close is not None:
                        close()
            digest, raw_digest = _digests(tmp_name)
            if digest != known.get("gz") and (raw_digest is None or raw_digest != known.get("raw")):
                errors.append(
                    f"{url}: SHA-256 mismatch (got {digest}, expected {known.get('gz')})"
                )
                continue
            read_idx(tmp_name)  # never keep a file that does not parse
            os.replace(tmp_name, destination)
            return destination
        except (OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp_name)
    detail = "; ".join(errors)
    if any("SHA-256 mismatch" in e for e in errors):
        raise ValueError(f"Could not download a verified copy of {filename}: {detail}")
    raise OSError(f"Could not download {filename}: {detail}")


# ------------------------------------------------------------------ loading
def _check_subset(subset) -> list[str]:
    splits = {"train": ["train"], "test": ["test"], "all": ["train", "test"]}
    if subset not in splits:
        raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}.")
    return splits[subset]


_DISPLAY_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _not_found(name: str, split: str, dirs: Iterable[Path], loader: str) -> FileNotFoundError:
    prefix = _SPLIT_PREFIX[split]
    files = f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]"
    looked = ";\n".join(
        f"  {d}" + ("" if d.is_dir() else " (does not exist)") for d in dirs
    )
    return FileNotFoundError(
        f"Could not find the {_DISPLAY_NAMES[name]} {split} files ({files}). "
        f"Looked in:\n{looked}.\n"
        f"Get them with {loader}(..., download=True), which saves them under the data "
        f"home (set with data_home= or the {DATA_HOME_ENV} environment variable), or "
        f"pass path= a folder that holds them."
    )


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path} should hold uint8 images of shape (n, 28, 28), "
            f"got {images.dtype} of shape {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path} should hold a 1-D uint8 array of labels, "
            f"got {labels.dtype} of shape {labels.shape}."
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels."
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path} holds label {int(labels.max())}; expected 0-9.")
    return images, labels


def _load(
    name: str,
    loader: str,
    path,
    subset,
    data_home,
    download: bool,
    return_X_y: bool,
    as_frame: bool,
):
    splits = _check_subset(subset)
    dirs = _search_dirs(name, path, data_home)
    images, labels, sources = [], [], []
    for split in splits:
        found = next((f for d in dirs if (f := _find_split(d, split)) is not None), None)
        if found is None and download:
            target = Path(get_data_home(data_home)) / name
            prefix = _SPLIT_PREFIX[split]
            found = tuple(
                _download_file(name, f"{prefix}-{kind}-idx{nd}-ubyte.gz", target)
                for kind, nd in (("images", 3), ("labels", 1))
            )
        if found is None:
            raise _not_found(name, split, dirs, loader)
        split_images, split_labels = _read_split(*found)
        images.append(split_images)
        labels.append(split_labels)
        sources.append(found)

    images = np.concatenate(images) if len(images) > 1 else images[0]
    target = (np.concatenate(labels) if len(labels) > 1 else labels[0]).astype(np.int64)
    data = images.reshape(images.shape[0], -1).astype(np.float32)
    data /= np.float32(255.0)
    feature_names = [f"pixel_{i}_{j}" for i in range(28) for j in range(28)]
    if name == "mnist":
        target_names = np.arange(10)
        descr = _MNIST_DESCR
    else:
        target_names = np.array(_FASHION_CLASSES)
        descr = _FASHION_DESCR

    frame = None
    data_out, target_out = data, target
    if as_frame:
        import pandas as pd

        data_out = pd.DataFrame(data, columns=feature_names)
        target_out = pd.Series(target, name="target")
        frame = pd.concat([data_out, target_out], axis=1)
    if return_X_y:
        return data_out, target_out
    return Bunch(
        data=data_out,
        target=target_out,
        frame=frame,
        images=data.reshape(-1, 28, 28),
        feature_names=feature_names,
        target_names=target_names,
        DESCR=descr,
        filenames=[str(p) for pair in sources for p in pair],
    )


_LOADER_DOC = """Load the {title} images, scaled to [0, 1].

    Looks for the standard IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each plain or ``.gz``) in ``path``, then in
    ``<data_home>/{name}``, then in {system}.

    Parameters
    ----------
    path : str or path-like, default=None
        A folder holding the files; searched first.
    subset : {{'test', 'train', 'all'}}, default='test'
        Which split: the 10,000 test images, the 60,000 training images, or
        both (training first).
    data_home : str or path-like, default=None
        Data home; see :func:`get_data_home`.
    download : bool, default=False
        Download missing files from public mirrors into ``<data_home>/{name}``.
        Each file's SHA-256 digest is checked before it is kept; a mismatch
        raises ``ValueError`` and leaves no file behind.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        ``data`` becomes a pandas DataFrame, ``target`` a Series, and
        ``frame`` holds both (requires pandas).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (n_samples, 784) float32 in [0, 1]; ``target`` (n_samples,)
        int64; ``images`` (n_samples, 28, 28) float32; ``feature_names``;
        ``target_names``; ``frame`` (DataFrame or None); ``DESCR``;
        ``filenames`` (the files read).
    (data, target) : tuple
        When ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        If the files are not found and ``download=False``; the message lists
        the folders searched.
    ValueError
        If a file is corrupt or truncated, images and labels disagree, or a
        download fails its checksum.
    OSError
        If a download fails for network reasons.

    Notes
    -----
    {note}

    Examples
    --------
    >>> from skdeepcluster.datasets import {loader}
    >>> data = {loader}(subset="test")  # doctest: +SKIP
    >>> data.data.shape  # doctest: +SKIP
    (10000, 784)
    """


def _make_loader(name: str, loader: str, **doc: str):
    """The public loader of data set ``name``: one code, its own name and docstring."""

    def load(
        path: str | os.PathLike | None = None,
        *,
        subset: str = "test",
        data_home: str | os.PathLike | None = None,
        download: bool = False,
        return_X_y: bool = False,
        as_frame: bool = False,
    ):
        return _load(name, loader, path, subset, data_home, download, return_X_y, as_frame)

    load.__name__ = load.__qualname__ = loader
    load.__doc__ = _LOADER_DOC.format(name=name, loader=loader, **doc)
    return load


load_mnist = _make_loader(
    "mnist",
    "load_mnist",
    title="MNIST handwritten digit",
    system="``/usr/share/datasets/mnist``",
    note="MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges (LeCun et al., 1998), "
    "licensed CC BY-SA 3.0; see ``DESCR``.",
)
load_fashion_mnist = _make_loader(
    "fashion-mnist",
    "load_fashion_mnist",
    title="Fashion-MNIST article",
    system="``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``)",
    note="Fashion-MNIST is by H. Xiao, K. Rasul and R. Vollgraf (Xiao et al., 2017), "
    "MIT-licensed by Zalando SE; see ``DESCR``.",
)
