"""Data larger than memory: streamed fits, partial_fit, MiniBatchKMeans, threads, GPUs."""

import os
import pickle
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

import skdeepcluster._clustering as clustering
import skdeepcluster._plan as plan
import skdeepcluster._stages as stages_module
from skdeepcluster import MLP, AutoencoderKMeans, MLPAutoencoder, NeighborEmbedding
from skdeepcluster._data import (
    StreamSource,
    TensorSource,
    iter_row_blocks,
    read_sorted_rows,
    release_pages,
)
from skdeepcluster._device import resolve_device
from skdeepcluster.metrics import cluster_accuracy
from skdeepcluster.refine import DEC, IDEC, KMeansLoss

from ._trained import check_trained
from .conftest import FAST


@pytest.fixture
def blob_memmap(tmp_path):
    """Blobs written to disk and opened read-only as a memmap, with their labels."""
    X, y = make_blobs(n_samples=600, centers=3, n_features=12, random_state=0)
    path = tmp_path / "X.f32"
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    out[:] = X
    out.flush()
    del out
    return np.memmap(path, dtype=np.float32, mode="r", shape=X.shape), y


class SliceOnly:
    """An array-like with ``shape``, ``dtype`` and row slicing only (like h5py/zarr)."""

    def __init__(self, X):
        self._X = np.asarray(X)
        self.shape = self._X.shape
        self.dtype = self._X.dtype

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("only row slices are supported")
        return self._X[key].copy()


# ----------------------------------------------------------------- sources
def _epoch_indices(source, batch_size, seed, avoid_singleton=False):
    gen = torch.Generator().manual_seed(seed)
    batches = list(source.batches(batch_size, gen, avoid_singleton=avoid_singleton))
    return batches, torch.cat([idx for idx, _ in batches]).numpy()


@pytest.mark.parametrize("n_samples", [1, 7, 64, 101])
def test_stream_epoch_visits_every_row_once(n_samples):
    X = np.arange(n_samples * 3, dtype=np.float32).reshape(n_samples, 3)
    source = StreamSource(X, torch.device("cpu"), batch_size=4, block_rows=8)
    batches, seen = _epoch_indices(source, 4, seed=0)
    assert np.array_equal(np.sort(seen), np.arange(n_samples))
    for idx, xb in batches:  # each batch holds the rows its indices name
        assert torch.equal(xb, torch.from_numpy(X[idx.numpy()]))
        assert xb.shape[0] <= 4


def test_stream_shuffles_reproducibly():
    X = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    source = StreamSource(X, torch.device("cpu"), batch_size=10, block_rows=20)
    _, a = _epoch_indices(source, 10, seed=1)
    _, b = _epoch_indices(source, 10, seed=1)
    _, c = _epoch_indices(source, 10, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(100))


def test_stream_avoids_single_row_batches():
    X = np.zeros((17, 2), dtype=np.float32)  # blocks of 8, 8 and 1 rows
    source = StreamSource(X, torch.device("cpu"), batch_size=4, block_rows=8)
    batches, seen = _epoch_indices(source, 4, seed=0, avoid_singleton=True)
    assert min(xb.shape[0] for _, xb in batches) > 1
    assert np.array_equal(np.sort(seen), np.arange(17))


def test_sequential_matches_tensor_source():
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    stream = torch.cat(list(StreamSource(X, "cpu", 4, block_rows=8).sequential(5)))
    tensor = torch.cat(list(TensorSource(torch.from_numpy(X)).sequential(5)))
    assert torch.equal(stream, tensor)


def _rss_file_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and madvise")
def test_reading_a_memmap_in_blocks_releases_its_pages(tmp_path):
    path = tmp_path / "big.f32"
    n_rows = 16 * 2**20 // (4 * 256)  # 64 MiB of float32
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n_rows * 4, 256))
    out[:] = 1.0
    out.flush()
    del out
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n_rows * 4, 256))
    before = _rss_file_kib()
    total = 0.0
    for _, block in iter_row_blocks(X, n_rows // 4):
        total += float(block.sum())
    after = _rss_file_kib()
    assert total == X.shape[0] * 256
    # Without the release, all 64 MiB of the file would now be resident.
    assert after - before < 16 * 1024
    X.sum()  # plain numpy maps every page ...
    assert _rss_file_kib() - before > 48 * 1024
    release_pages(X)  # ... and releasing them brings the footprint back down
    assert _rss_file_kib() - before < 16 * 1024


def test_private_memmaps_are_not_released(tmp_path):
    path = tmp_path / "c.f32"
    np.memmap(path, dtype=np.float32, mode="w+", shape=(10, 4)).flush()
    X = np.memmap(path, dtype=np.float32, mode="c", shape=(10, 4))
    X[0, 0] = 5.0  # a private change that MADV_DONTNEED would discard
    release_pages(X)
    assert X[0, 0] == 5.0


# -------------------------------------------------------- streamed fits
def test_streamed_fit_on_a_memmap(blob_memmap, train_seed):
    X, y = blob_memmap
    model = AutoencoderKMeans(n_clusters=3, streaming=True, random_state=train_seed, **FAST)
    labels = model.fit_predict(X)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.938, max 1, mean 0.994 ± 0.018
    check_trained(cluster_accuracy(y, labels), ">", 0.9)
    assert np.array_equal(model.predict(X), model.labels_)
    np.testing.assert_allclose(model.transform(X), model.transform(np.asarray(X)))
    again = AutoencoderKMeans(n_clusters=3, streaming=True, random_state=train_seed, **FAST).fit(X)
    assert np.array_equal(again.labels_, labels)


@pytest.mark.parametrize("refine", [IDEC, DEC, KMeansLoss])
def test_streamed_refinement(blob_memmap, refine, train_seed):
    X, y = blob_memmap
    model = AutoencoderKMeans(
        n_clusters=3, streaming=True, refine=refine(epochs=3), random_state=train_seed, **FAST
    ).fit(X)
    assert "refine_loss" in model.history_
    assert np.array_equal(model.predict(X), model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.99, max 1, mean 0.999 ± 0.0023
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.9)


def test_streaming_any_sliceable_array_like(blobs, train_seed):
    X, y = blobs
    model = AutoencoderKMeans(n_clusters=3, streaming=True, random_state=train_seed, **FAST)
    labels = model.fit_predict(SliceOnly(X))
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.953, max 1, mean 0.988 ± 0.015
    check_trained(cluster_accuracy(y, labels), ">", 0.9)
    assert model.n_features_in_ == X.shape[1]
    assert np.array_equal(model.predict(SliceOnly(X)), labels)


def test_auto_streams_only_large_data(blob_memmap, monkeypatch):
    X, _ = blob_memmap
    created = []

    class Spy(StreamSource):
        def __init__(self, *args, **kwargs):
            created.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(stages_module, "StreamSource", Spy)
    AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).fit(X)
    assert not created  # 600 x 12 floats: copied to one tensor
    monkeypatch.setattr(plan, "STREAM_BYTES", 1024)
    AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).fit(X)
    assert created


def test_streamed_nan_is_rejected_and_leaves_unfitted(tmp_path):
    X = np.memmap(tmp_path / "nan.f32", dtype=np.float32, mode="w+", shape=(50, 4))
    X[:] = 1.0
    X[30, 2] = np.nan
    model = AutoencoderKMeans(n_clusters=2, streaming=True, **FAST)
    with pytest.raises(ValueError, match="NaN.*rows 0 to 49"):
        model.fit(X)
    assert not hasattr(model, "labels_")
    X[30, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.fit(X)


def test_streamed_fit_checks_shape_and_dtype(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(n_clusters=3, streaming=True, **FAST)
    with pytest.raises(ValueError, match="numeric"):
        model.fit(SliceOnly(X.astype(str)))
    fitted = AutoencoderKMeans(n_clusters=3, streaming=True, **FAST).fit(SliceOnly(X))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(SliceOnly(X[:, :-1]))


def test_streaming_rejects_validation_split(blob_memmap):
    X, _ = blob_memmap
    model = AutoencoderKMeans(n_clusters=3, streaming=True, validation_fraction=0.1, **FAST)
    with pytest.raises(ValueError, match="validation_fraction"):
        model.fit(X)


# ------------------------------------------------------------ partial_fit
def test_partial_fit_trains_one_epoch_per_call(blobs, train_seed):
    X, y = blobs
    model = AutoencoderKMeans(n_clusters=3, random_state=train_seed, **FAST)
    for i in range(1, 6):
        model.partial_fit(X)
        assert model.n_iter_ == i
        assert len(model.history_["train_loss"]) == i
    losses = model.history_["train_loss"]
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.956, max 0.984, mean 0.977 ± 0.0085
    check_trained(losses[-1] / losses[0], "<", 1.005)
    assert np.array_equal(model.predict(X), model.labels_)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.96, max 1, mean 0.992 ± 0.014
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.9)


def test_partial_fit_on_chunks_is_reproducible(blobs):
    X, _ = blobs
    chunks = np.array_split(X, 3)

    def run():
        model = AutoencoderKMeans(n_clusters=3, random_state=0, **FAST)
        for chunk in chunks:
            model.partial_fit(chunk)
        return model

    a, b = run(), run()
    assert a.labels_.shape == (chunks[-1].shape[0],)
    assert np.array_equal(a.predict(X), b.predict(X))
    np.testing.assert_allclose(a.history_["train_loss"], b.history_["train_loss"])


def test_partial_fit_keeps_the_model_on_bad_input(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).partial_fit(X)
    weights = {k: v.clone() for k, v in model.autoencoder_.state_dict().items()}
    labels = model.predict(X)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :-1])
    with pytest.raises(ValueError, match="n_clusters"):
        model.partial_fit(X[:2])
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(X_nan)
    for k, v in model.autoencoder_.state_dict().items():
        assert torch.equal(v, weights[k])
    assert np.array_equal(model.predict(X), labels)


def test_partial_fit_calls_draw_different_seeds(blobs, monkeypatch):
    """Each call has its own child of the root SeedSequence (not the seeds of fit)."""
    X, _ = blobs
    seen = []

    def spy(entropy, call):
        seeds = partial_fit_seeds(entropy, call)
        seen.append((entropy, call, seeds))
        return seeds

    partial_fit_seeds = plan.partial_fit_seeds
    monkeypatch.setattr(plan, "partial_fit_seeds", spy)
    model = AutoencoderKMeans(n_clusters=3, random_state=0, **FAST)
    for _ in range(3):
        model.partial_fit(X)
    assert [(e, c) for e, c, _ in seen] == [(0, 0), (0, 1), (0, 2)]
    seeds = [s for _, _, s in seen]
    assert len({s.batches for s in seeds}) == 3 and len({s.init for s in seeds}) == 3
    assert plan.fit_seeds(0) not in seeds


def test_partial_fit_continues_a_fit(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(n_clusters=3, random_state=0, refine=None, **FAST).fit(X)
    before = [p.detach().clone() for p in model.autoencoder_.parameters()]
    model.partial_fit(X)
    assert model.n_iter_ == FAST["epochs"] + 1
    after = list(model.autoencoder_.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_partial_fit_streams_a_memmap(blob_memmap, train_seed):
    X, y = blob_memmap
    model = AutoencoderKMeans(n_clusters=3, streaming=True, random_state=train_seed, **FAST)
    for _ in range(5):
        model.partial_fit(X)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.912, max 1, mean 0.99 ± 0.027
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.85)


def test_pickle_leaves_the_optimizer_out(blobs):
    X, _ = blobs
    module = MLPAutoencoder(X.shape[1], (256, 256), 4)
    model = AutoencoderKMeans(n_clusters=3, module=module, epochs=2, random_state=0)
    model.partial_fit(X)
    param_bytes = sum(p.numel() * 4 for p in model.autoencoder_.parameters())
    optimizer_bytes = sum(
        t.numel() * 4
        for state in model._optimizer.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor)
    )
    assert optimizer_bytes >= 2 * param_bytes  # Adam's two moments
    blob = pickle.dumps(model)
    # The module given as a parameter and the fitted network, but no optimizer state.
    assert len(blob) < 2.5 * param_bytes
    loaded = pickle.loads(blob)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    loaded.partial_fit(X)  # resumes with a fresh optimizer
    assert loaded.n_iter_ == 2


# -------------------------------------------------- clustering of large n
def test_minibatch_kmeans_clusterer(blobs, train_seed):
    X, y = blobs
    # 20 epochs: k-means on the codes of 5 merged two blobs on one seed of ten.
    model = AutoencoderKMeans(
        n_clusters=3, clusterer="minibatch_kmeans", reducer=None, random_state=train_seed,
        **dict(FAST, epochs=20),
    ).fit(X)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.947, max 1, mean 0.993 ± 0.016
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.8)
    assert np.array_equal(model.predict(X), model.labels_)
    assert "refine_loss" in model.history_  # refine='auto' refines k-means centres


def test_kmeans_switches_to_minibatch_for_large_data(blobs, monkeypatch):
    X, _ = blobs
    used = []

    class Spy(clustering.MiniBatchKMeans):
        def fit(self, *args, **kwargs):
            used.append(self.batch_size)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(clustering, "MiniBatchKMeans", Spy)
    AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).fit(X)
    assert not used
    monkeypatch.setattr(clustering, "MINIBATCH_MIN_SAMPLES", 100)
    AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).fit(X)
    assert used == [clustering.MINIBATCH_SIZE]


def test_auto_reducer_keeps_the_neighbor_embedding(blobs):
    """No size cliff (issue 15): 'auto' is the neighbour embedding, without refinement."""
    X, _ = blobs
    model = AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).fit(X)
    assert isinstance(model.reducer_, NeighborEmbedding)
    assert "refine_loss" not in model.history_
    assert not hasattr(plan, "NE_MAX_AUTO_SAMPLES")  # the 100,000-row cliff is gone
    # (test_neighbor_embedding.py fits 120,000 rows with the neighbour embedding.)


# ------------------------------------------------------- threads and GPUs
class ThreadRecorder(MLPAutoencoder):
    seen: list = []

    def encode(self, x):
        ThreadRecorder.seen.append(torch.get_num_threads())
        return super().encode(x)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_n_jobs_sets_torch_threads_and_restores_them(blobs, n_jobs):
    X, _ = blobs
    ThreadRecorder.seen = []
    previous = torch.get_num_threads()
    model = AutoencoderKMeans(
        n_clusters=3,
        module=ThreadRecorder,
        module_kwargs={"hidden_layer_sizes": (8,), "latent_dim": 2},
        epochs=2,
        refine=None,
        n_jobs=n_jobs,
    ).fit(X)
    model.predict(X)
    assert set(ThreadRecorder.seen) == {n_jobs}
    assert torch.get_num_threads() == previous


def test_n_jobs_zero_is_rejected(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n_jobs == 0"):
        AutoencoderKMeans(n_clusters=3, n_jobs=0, **FAST).fit(X)


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)

    def no_query(*args, **kwargs):  # would create a CUDA context on that GPU
        raise AssertionError("mem_get_info must not be called")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_query)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_auto_device_in_a_main_process_is_the_current_gpu(four_gpus):
    assert resolve_device("auto") == torch.device("cuda")


def test_auto_device_spreads_ranked_workers_over_gpus(four_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "6")
    assert resolve_device("auto") == torch.device("cuda", 2)


@pytest.mark.parametrize(
    "name, index", [("LokyProcess-1", 0), ("LokyProcess-3", 2), ("ForkPoolWorker-6", 1)]
)
def test_auto_device_for_joblib_and_pool_workers(four_gpus, monkeypatch, name, index):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "current_process", lambda: SimpleNamespace(name=name))
    assert resolve_device("auto") == torch.device("cuda", index)


def test_auto_device_with_one_gpu_is_plain_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")


def test_fits_in_threads_are_reproducible(blobs):
    """torch's global generator is process-wide: concurrent fits must not share it."""
    X, _ = blobs
    params = dict(FAST, architecture=MLP((32, 16), dropout=0.2), refine=IDEC(epochs=3))

    def fit(seed):
        return AutoencoderKMeans(n_clusters=3, random_state=seed, **params).fit(X)

    expected = {seed: fit(seed).transform(X) for seed in (0, 1)}
    results = {}

    def run(seed, slot):
        results[slot] = (seed, fit(seed).transform(X))

    threads = [threading.Thread(target=run, args=(i % 2, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, embedding in results.values():
        np.testing.assert_array_equal(embedding, expected[seed])


def test_estimator_pretrains_on_a_list_of_devices(blobs, train_seed):
    X, y = blobs
    model = AutoencoderKMeans(
        n_clusters=3, device=["cpu", "cpu"], random_state=train_seed, **dict(FAST, epochs=20)
    ).fit(X)
    assert model.device_ == torch.device("cpu")
    assert len(model.history_["train_loss"]) == 20
    losses = model.history_["train_loss"]
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.337, max 0.725, mean 0.54 ± 0.13
    check_trained(losses[-1] / losses[0], "<", 1.0)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.853, max 1, mean 0.983 ± 0.045
    check_trained(cluster_accuracy(y, model.labels_), ">", 0.8)
    assert np.array_equal(model.predict(X), model.labels_)
    with pytest.raises(ValueError, match="list of devices"):
        AutoencoderKMeans(n_clusters=3, device=["cpu", "cpu"], streaming=True, **FAST).fit(X)
    with pytest.raises(ValueError, match="one device"):
        AutoencoderKMeans(n_clusters=3, device=["cpu", "cpu"], **FAST).partial_fit(X)


def test_partial_fit_is_seeded_and_leaves_global_state_alone(blobs):
    X, _ = blobs
    params = dict(FAST, architecture=MLP((32, 16), dropout=0.3))
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        model = AutoencoderKMeans(n_clusters=3, random_state=0, **params)
        for _ in range(3):
            model.partial_fit(X)
        runs.append(model.history_["train_loss"])
    assert runs[0] == runs[1]
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("clusterer", ["kmeans", "gmm"])
def test_partial_fit_keeps_cluster_ids(blobs, clusterer, train_seed):
    X, _ = blobs
    model = AutoencoderKMeans(n_clusters=3, clusterer=clusterer, random_state=train_seed, **FAST)
    model.partial_fit(X)
    previous = model.predict(X)
    for chunk in np.array_split(X, 3):
        model.partial_fit(chunk)
        labels = model.predict(X)
        # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.853, max 1, mean 0.991 ± 0.021
        check_trained((labels == previous).mean(), ">", 0.8)  # permuted ids: about 0.3
        previous = labels


def test_failed_fit_drops_partial_fit_state(blobs):
    X, _ = blobs
    model = AutoencoderKMeans(n_clusters=3, random_state=0, **FAST).partial_fit(X)
    with pytest.raises(ValueError):
        model.set_params(n_clusters=500).fit(X)
    assert not hasattr(model, "autoencoder_")
    assert not any(
        hasattr(model, name) for name in ("_optimizer", "_seed_entropy", "_n_partial_fit_calls")
    )


def test_auto_does_not_stream_with_validation_or_device_lists(blob_memmap, monkeypatch):
    X, _ = blob_memmap
    monkeypatch.setattr(plan, "STREAM_BYTES", 1024)
    model = AutoencoderKMeans(n_clusters=3, validation_fraction=0.2, **FAST)
    assert not plan.streams(model, X)
    model.fit(X)
    assert len(model.history_["val_loss"]) == FAST["epochs"]
    assert not plan.streams(AutoencoderKMeans(device=["cpu", "cpu"]), X)
    assert plan.streams(AutoencoderKMeans(), X)


def test_streaming_a_tensor(blobs, train_seed):
    X, y = blobs
    model = AutoencoderKMeans(n_clusters=3, streaming=True, random_state=train_seed, **FAST)
    labels = model.fit_predict(torch.from_numpy(X))
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.953, max 1, mean 0.988 ± 0.015
    check_trained(cluster_accuracy(y, labels), ">", 0.9)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_seed_lock_is_free_in_a_forked_child():
    import skdeepcluster._device as device

    held, release = threading.Event(), threading.Event()

    def hold():  # another thread is inside a seeded section while we fork
        with device._SEED_LOCK:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: that thread does not exist here, the lock must be free
            ok = device._SEED_LOCK.acquire(timeout=3)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.WEXITSTATUS(status) == 0


def test_read_sorted_rows_from_arrays_memmaps_and_slice_only_array_likes(tmp_path):
    X = np.arange(5000 * 4, dtype=np.float64).reshape(5000, 4)
    path = tmp_path / "X.f64"
    X.tofile(path)
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    rows = np.sort(np.random.default_rng(0).choice(5000, 700, replace=False))
    for source in (X, mm, SliceOnly(X)):
        sample = read_sorted_rows(source, rows)
        assert sample.dtype == np.float32
        np.testing.assert_array_equal(sample, X[rows].astype(np.float32))
        np.testing.assert_array_equal(read_sorted_rows(source), X.astype(np.float32))
