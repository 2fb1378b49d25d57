"""predict and transform on Dask collections: lazy, block by block, equal to in-memory."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from skdeepcluster import AutoencoderKMeans

from .conftest import LABEL_FAST

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def client():
    # Two worker processes: the model and the blocks cross process boundaries, as on
    # a real cluster.
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_blobs(100_000, n_features=8, centers=3, random_state=0)
    X = X.astype(np.float32)
    model = AutoencoderKMeans(3, random_state=0, **LABEL_FAST).fit(X[:2_000])
    return model, X


def test_predict_on_a_dask_array_equals_in_memory_bit_for_bit(client, fitted):
    model, X = fitted
    assert model.label_head_ is not None  # the classifier labels, as in the defaults
    labels = model.predict(da.from_array(X, chunks=(7_000, 3)))  # odd blocks, split columns
    assert isinstance(labels, da.Array) and labels.dtype == np.int64
    assert labels.chunks[0][:2] == (7_000, 7_000)
    computed = labels.compute()
    np.testing.assert_array_equal(computed, model.predict(X))  # 100,000 rows
    # The model is one node of the graph, shipped once to each worker.
    shipped = [key for key in dict(labels.__dask_graph__()) if "AutoencoderKMeans" in str(key)]
    assert len(shipped) == 1


def test_transform_and_the_clusterer_path_on_a_dask_array(client, fitted):
    model, X = fitted
    rows = X[:3_000]
    embedding = model.transform(da.from_array(rows, chunks=1_000))
    assert embedding.shape == (3_000, model.cluster_centers_.shape[1])
    np.testing.assert_array_equal(embedding.compute(), model.transform(rows))
    head, model.label_head_ = model.label_head_, None  # labels from the embedding instead
    try:
        labels = model.predict(da.from_array(rows, chunks=700)).compute()
        np.testing.assert_array_equal(labels, model.predict(rows))
    finally:
        model.label_head_ = head


def test_dask_dataframe_gives_a_series_and_a_frame(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, _ = make_blobs(2_000, n_features=4, centers=3, random_state=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = AutoencoderKMeans(3, random_state=0, **LABEL_FAST).fit(frame)
    lazy = dd.from_pandas(frame, npartitions=3)
    labels = model.predict(lazy).compute()
    assert isinstance(labels, pd.Series)
    np.testing.assert_array_equal(labels.to_numpy(), model.predict(frame))
    embedding = model.transform(lazy).compute()
    assert list(embedding.columns) == list(model.get_feature_names_out())
    np.testing.assert_array_equal(embedding.to_numpy(), model.transform(frame))


def test_wrong_width_is_refused_before_any_work(fitted):
    model, X = fitted
    with pytest.raises(ValueError, match="X has 5 features, but AutoencoderKMeans is expecting 8"):
        model.predict(da.from_array(X[:100, :5]))
    with pytest.raises(ValueError, match="X has 5 features"):
        model.transform(da.from_array(X[:100, :5]))


def test_unfitted_model_refuses_a_dask_array():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AutoencoderKMeans(3).predict(da.zeros((10, 2)))


def test_shards_on_disk_are_labelled_by_the_workers(client, fitted, tmp_path):
    """A folder of .npy shards: the workers open the files themselves (the opened rows
    pickle as paths, not as copies), and the labels equal the in-memory ones."""
    import pickle

    from skdeepcluster.datasets import open_rows

    model, X = fitted
    for i, part in enumerate(np.array_split(X[:20_000], 3)):
        np.save(tmp_path / f"X-{i:03d}.npy", part)
    rows = open_rows(tmp_path)
    assert len(pickle.dumps(rows)) < 10_000  # paths, not 640 kB of rows
    labels = model.predict(da.from_array(rows, chunks=(4_000, -1))).compute()
    np.testing.assert_array_equal(labels, model.predict(X[:20_000]))
