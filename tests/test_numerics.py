"""Fits that do not depend on the number of threads (``skdeepcluster/_numerics.py``)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from skdeepcluster._numerics import STRICT_MODE, mkl_mode

# Fits digits with n_jobs=1 and n_jobs=2 in one fresh process and prints whether the
# labels, the embeddings and the weights are identical (bit for bit).
_FIT_TWICE = """
import numpy as np, torch
import skdeepcluster
from skdeepcluster._numerics import mkl_mode
from sklearn.datasets import load_digits
X, _ = load_digits(return_X_y=True)
fits = [skdeepcluster.AutoencoderKMeans(
    10, architecture=skdeepcluster.MLP((64,)), latent_dim=8, epochs=5,
    random_state=3, n_jobs=n).fit(X / 16) for n in (1, 2)]
a, b = fits
same_weights = all(torch.equal(p, q) for p, q in zip(
    a.autoencoder_.state_dict().values(), b.autoencoder_.state_dict().values()))
print(mkl_mode(), np.array_equal(a.labels_, b.labels_),
      np.array_equal(a.transform(X / 16), b.transform(X / 16)), same_weights)
"""


def _environment(**changes):
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env.update(changes)
    return env


def test_import_asks_onemkl_for_strict_reproducibility():
    code = "import skdeepcluster, os; from skdeepcluster._numerics import mkl_mode; " \
           "print(os.environ['MKL_CBWR'], mkl_mode())"
    out = subprocess.run([sys.executable, "-c", code], env=_environment(),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == STRICT_MODE
    assert out[1] in ("strict", "unknown")  # unknown: a torch build without oneMKL


def test_a_mode_the_user_chose_is_kept():
    code = "import skdeepcluster, os; print(os.environ['MKL_CBWR'])"
    out = subprocess.run([sys.executable, "-c", code], env=_environment(MKL_CBWR="COMPATIBLE"),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "COMPATIBLE"


def test_mkl_mode_in_this_process():
    assert mkl_mode() in ("strict", "compatible", "default", "unknown")


def test_the_same_fit_on_one_and_two_threads():
    out = subprocess.run([sys.executable, "-c", _FIT_TWICE], env=_environment(),
                         capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "unknown":
        pytest.skip("this torch build does not tell oneMKL's mode")
    assert out[1:] == ["True", "True", "True"]


def test_a_faiss_search_leaves_torchs_threads():
    """faiss and torch share one OpenMP runtime: a search must not change torch's threads."""
    pytest.importorskip("faiss")
    from skdeepcluster.embedding._neighbors import NeighborIndex

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
        NeighborIndex(X, "hnsw", random_state=0).graph(5, torch.device("cpu"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
