"""Grid search on a Dask cluster through joblib, and lean pickles for shipping models."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from skdeepcluster import MLP, AutoencoderKMeans

distributed = pytest.importorskip("distributed")

FAST = dict(architecture=MLP((32, 16)), latent_dim=3, epochs=5, batch_size=64)
GRID = {"n_clusters": [2, 3], "latent_dim": [2, 3]}


@pytest.fixture(scope="module")
def dask_client():
    # In-process workers (threads) talking TCP on the loopback interface only (so
    # tasks are serialised as on a real cluster), no dashboard. ``protocol`` must be
    # explicit: with processes=False distributed defaults to 'inproc://', which
    # rejects host="127.0.0.1".
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        host="127.0.0.1",
        protocol="tcp://",
        dashboard_address=":0",  # any free port: test workers may run two clusters
        timeout="30s",
    )
    client = distributed.Client(cluster, timeout="30s")
    try:
        yield client
    finally:
        client.close(timeout=10)
        cluster.close(timeout=10)


@pytest.fixture(scope="module")
def grid_data():
    X, _ = make_blobs(n_samples=200, centers=3, n_features=6, random_state=0)
    return X


def _search():
    return GridSearchCV(AutoencoderKMeans(**FAST, random_state=0), GRID, cv=2)


@pytest.fixture(scope="module")
def searches(dask_client, grid_data):
    """The same grid search on the Dask cluster and with joblib's default backend."""
    X = grid_data
    with distributed.get_task_stream(dask_client) as tasks, joblib.parallel_backend("dask"):
        on_dask = _search().fit(X)
    sequential = _search().fit(X)
    return on_dask, sequential, tasks.data


def test_grid_search_runs_on_dask(searches, grid_data):
    X = grid_data
    on_dask, sequential, tasks = searches
    assert len(tasks) > 0  # the fits did run on the cluster's workers
    assert on_dask.best_estimator_.predict(X).shape == (X.shape[0],)
    assert list(on_dask.cv_results_["params"]) == list(sequential.cv_results_["params"])
    assert np.isfinite(on_dask.cv_results_["mean_test_score"]).all()


def test_grid_search_on_dask_matches_sequential(searches, grid_data):
    X = grid_data
    on_dask, sequential, _ = searches
    assert on_dask.best_params_ == sequential.best_params_
    assert list(on_dask.cv_results_["rank_test_score"]) == list(
        sequential.cv_results_["rank_test_score"]
    )
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_allclose(
            on_dask.cv_results_[key], sequential.cv_results_[key], rtol=1e-5, atol=1e-6
        )
    np.testing.assert_array_equal(
        on_dask.best_estimator_.predict(X), sequential.best_estimator_.predict(X)
    )


def test_fitted_model_pickles_lean():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 50))
    model = AutoencoderKMeans(
        n_clusters=4,
        architecture=MLP((16,)),
        latent_dim=2,
        epochs=1,
        batch_size=1024,
        refine=None,
        n_init=1,
        random_state=0,
    ).fit(X)
    blob = pickle.dumps(model)
    # The training data (or anything of its size) is not kept in the model.
    assert len(blob) < 0.2 * X.nbytes
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict(X[:500]), model.predict(X[:500]))
    np.testing.assert_allclose(restored.transform(X[:500]), model.transform(X[:500]))
