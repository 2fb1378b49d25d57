"""Unit tests of the fit plan (``skdeepcluster._plan``): every 'auto' resolved once."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from skdeepcluster import MLP, AutoencoderKMeans, NeighborEmbedding
from skdeepcluster import _plan as plan
from skdeepcluster.refine import DEC, IDEC, KMeansLoss, RefinementStrategy
from skdeepcluster.training import EarlyStopping

STREAM_FIELDS = (
    "init", "batches", "augment", "split", "cluster", "refine", "projection", "communities",
    "self_label", "self_train", "consistency", "choice",
)



class _Codec(torch.nn.Module):
    """The smallest user module: encode and decode are the identity."""

    def encode(self, x):
        return x

    def decode(self, z):
        return z

def est(**params):
    return AutoencoderKMeans(**{"n_clusters": 3, "device": "cpu", **params})


def resolve(model, n_samples=500, *, n_features=8, partial=False, seeds=None):
    seeds = plan.fit_seeds(0) if seeds is None else seeds
    shape = (n_samples, n_features)
    return plan.resolve_plan(model, shape, stream=False, seeds=seeds, partial=partial)


# ------------------------------------------------------------------ epochs
@pytest.mark.parametrize(
    "n_samples, batch_size, expected",
    [
        (1_797, 256, 188),  # the digits: ceil(1500 / 8)
        (10_000, 256, 38),  # MNIST test set: ceil(1500 / 40)
        (38_400, 256, 10),  # 150 batches: exactly 10
        (60_000, 256, 10),  # clipped from below: 600,000 rows in all
        (70_000, 256, 8),  # at most AUTO_MAX_ROWS = 600,000 rows in all
        (250_000, 256, 2),
        (1_000_000, 256, 1),  # one pass, not ten
        (300, 256, 200),  # 2 batches: 750, clipped from above
        (100, 256, 200),  # batch clipped to n_samples: one batch
        (1_797, 64, 52),  # ceil(1500 / 29)
    ],
)
def test_auto_epochs_rule(n_samples, batch_size, expected):
    model = est(batch_size=batch_size, architecture="mlp")
    assert plan.n_epochs(model, n_samples) == expected
    assert resolve(model, n_samples).epochs == expected
    assert plan.AUTO_STEPS == 1500 and plan.AUTO_MAX_ROWS == 600_000


def test_explicit_epochs_and_partial_fit_epochs():
    assert plan.n_epochs(est(epochs=7), 1_797) == 7
    assert resolve(est(epochs=7), 1_797).epochs == 7
    assert resolve(est(epochs=7), 1_797, partial=True).epochs == 1
    assert resolve(est(), 1_797, partial=True).epochs == 1


# ------------------------------------------------------------ architecture
def test_auto_architecture_trains_no_network_on_small_data():
    small = plan.CHOICE_MIN_SAMPLES - 1
    fitted = resolve(est(), small)
    assert fitted.architecture == "none" and fitted.epochs == 0 and fitted.refine is None
    assert fitted.choice is None and "fewer than 2,000 rows" in fitted.architecture_reason
    wide = plan.AUTO_NETWORK_MIN_FEATURES
    assert resolve(est(), small, n_features=wide - 1).architecture == "none"
    assert (plan.CHOICE_MIN_SAMPLES, wide) == (2000, 256)


@pytest.mark.parametrize("n_samples, n_features", [(2000, 8), (100, 256), (70_000, 784)])
def test_auto_architecture_leaves_the_choice_to_the_data(n_samples, n_features):
    """From 5,000 rows, or 256 features, 'auto' trains the MLP and holds the plan without."""
    fitted = resolve(est(), n_samples, n_features=n_features)
    assert fitted.architecture == "mlp" and fitted.architecture_reason == "chosen by the data"
    choice = fitted.choice
    assert choice.n_rows == min(plan.CHOICE_ROWS, n_samples)
    expected = max(1, round(fitted.epochs * plan.CHOICE_EPOCH_SHARE))
    assert choice.probe_epoch == expected <= fitted.epochs
    assert choice.fallback.architecture == "none" and choice.fallback.epochs == 0
    assert choice.fallback.seeds == fitted.seeds and choice.fallback.choice is None
    # the sample is clustered as a fit without a network on that many rows would be
    sample = resolve(est(architecture="none"), choice.n_rows, n_features=n_features)
    assert choice.sample_plan.clusterer == sample.clusterer and choice.sample_plan.verbose == 0


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"architecture": "mlp"}, "as given"),
        ({"epochs": 5}, "a parameter of the network or its use was set"),
        ({"image_shape": (1, 4, 2)}, "image_shape was given: a convolutional network"),
        ({"device": ["cpu", "cpu"]}, "training on several devices"),
    ],
)
def test_no_choice_where_the_parameters_decide(params, reason):
    fitted = resolve(est(**params), 6000)
    assert fitted.choice is None and fitted.architecture_reason == reason
    assert resolve(est(), 6000, partial=True).choice is None


@pytest.mark.parametrize(
    "params",
    [
        {"epochs": 5},
        {"reducer": None},
        {"reducer": PCA(2)},
        {"refine": "idec"},
        {"noise": 0.1},
        {"noise_type": "mask"},
        {"warm_start": True},
        {"architecture": "mlp"},
        {"architecture": MLP((64, 32))},
        {"architecture": MLP([500, 500])},
        {"architecture": MLP([500, 500, 2000])},  # the wide network asked for by name
        {"latent_dim": 5},
        {"learning_rate": 0.01},
        {"batch_size": 64},
        {"architecture": MLP(dropout=0.1)},
        {"architecture": MLP(batch_norm=True)},
        {"callbacks": [EarlyStopping(patience=2)]},
    ],
)
def test_auto_architecture_keeps_the_network_when_asked_for_training(params):
    assert resolve(est(**params), 100).architecture == "mlp"


@pytest.mark.parametrize(
    "params",
    [{"augment": None}, {"noise": 0}, {"learning_rate": 1e-3},
     {"callbacks": []}, {"n_clusters": 5, "n_init": 3, "clusterer": "gmm"}],
)
def test_auto_architecture_defaults_however_spelled(params):
    assert resolve(est(**params), 100).architecture == "none"


def test_auto_architecture_other_cases():
    assert resolve(est(), 100, partial=True).architecture == "mlp"  # chunk by chunk
    assert resolve(est(image_shape=(1, 2, 2)), 100).architecture == "conv"
    assert resolve(est(module=_Codec()), 100).architecture == "module"
    assert resolve(est(architecture="none"), 10**6).architecture == "none"
    assert resolve(est(architecture="none", reducer=None), 100).refine is None


# ------------------------------------------------------- hidden_layer_sizes
def test_auto_hidden_layer_sizes_widen_with_the_rows():
    wide = plan.AUTO_WIDE_MIN_SAMPLES
    assert plan.AUTO_HIDDEN_LAYER_SIZES == (500, 500, 2000)
    assert plan.AUTO_HIDDEN_LAYER_SIZES_SMALL == (500, 500, 1000)
    assert resolve(est(), 10_000).network.hidden_layer_sizes == (500, 500, 1000)
    assert resolve(est(), wide - 1).network.hidden_layer_sizes == (500, 500, 1000)
    assert resolve(est(), wide).network.hidden_layer_sizes == (500, 500, 2000)
    assert resolve(est(), 100, partial=True).network.hidden_layer_sizes == (500, 500, 2000)


@pytest.mark.parametrize("sizes", [(), (64,), [500, 500, 2000], np.array([8, 4])])
def test_explicit_hidden_layer_sizes_pass_through(sizes):
    for n_samples in (100, 10**6):
        network = resolve(est(architecture=MLP(sizes)), n_samples).network
        assert network.hidden_layer_sizes is sizes


def test_auto_hidden_layer_sizes_build_the_planned_network():
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    model = est(architecture="mlp", epochs=1, reducer=None, refine=None).fit(X)
    widths = [m.out_features for m in model.autoencoder_.modules() if hasattr(m, "out_features")]
    assert widths[:4] == [500, 500, 1000, model.latent_dim]


# --------------------------------------------------------------- input_pca
def test_auto_input_pca_projects_wide_inputs_for_an_mlp_or_no_network():
    wide = plan.AUTO_NETWORK_MIN_FEATURES
    assert plan.AUTO_INPUT_COMPONENTS == 50
    assert resolve(est(), 10_000, n_features=wide).input_components == 50
    assert resolve(est(architecture="none"), 10_000, n_features=784).input_components == 50
    assert resolve(est(), 30, n_features=784).input_components == 30  # at most n_samples
    assert resolve(est(), 10_000, n_features=wide - 1).input_components == 0
    assert resolve(est(), 10_000, n_features=784, partial=True).input_components == 0
    assert resolve(est(image_shape=(1, 28, 28)), 100, n_features=784).input_components == 0
    assert resolve(est(module=_Codec()), 100, n_features=784).input_components == 0
    sigmoid = est(architecture=MLP(output_activation="sigmoid"))
    assert resolve(sigmoid, 100, n_features=784).input_components == 0
    assert resolve(est(input_pca=None), 10_000, n_features=784).input_components == 0


def test_explicit_input_pca_is_honoured_or_refused_with_the_reason():
    assert resolve(est(input_pca=3), 100).input_components == 3  # below 256 features too
    assert resolve(est(input_pca=3), 100, partial=True).input_components == 3
    with pytest.raises(ValueError, match="at most min"):
        resolve(est(input_pca=9), 100)  # 8 features
    with pytest.raises(ValueError, match="'conv' network"):
        resolve(est(input_pca=3, image_shape=(1, 2, 4)), 100)
    with pytest.raises(ValueError, match="'module' network"):
        resolve(est(input_pca=3, module=_Codec()), 100)
    with pytest.raises(ValueError, match="output_activation='sigmoid'"):
        resolve(est(input_pca=3, architecture=MLP(output_activation="sigmoid")), 100)


# ----------------------------------------------------------------- reducer
def test_auto_reducer_is_auto_by_default():
    assert plan.resolve_reducer(est(), partial=False) == "auto"
    assert plan.resolve_reducer(est(refine=None), partial=False) == "auto"
    assert plan.resolve_reducer(est(refine="auto"), partial=False) == "auto"
    assert isinstance(resolve(est(), 1_000).reducer, NeighborEmbedding)  # resolved


@pytest.mark.parametrize("refine", ["kmeans", "dec", "idec", IDEC(gamma=0.1), KMeansLoss()])
def test_auto_reducer_is_none_with_an_explicit_refinement(refine):
    assert plan.resolve_reducer(est(refine=refine), partial=False) is None
    assert resolve(est(refine=refine), 1_000).reducer is None


def test_auto_reducer_is_none_in_partial_fit_only():
    assert plan.resolve_reducer(est(), partial=True) is None
    assert resolve(est(), partial=True).reducer is None
    # No cliff: the neighbour embedding at every size (its k-NN search scales).
    for n in (99_999, 100_000, 1_000_000, 10_000_000):
        assert plan.resolve_reducer(est(), partial=False) == "auto"
        assert isinstance(resolve(est(), n).reducer, NeighborEmbedding)


def test_explicit_reducer_is_passed_through():
    pca = PCA(n_components=2)
    assert plan.resolve_reducer(est(reducer=pca), partial=False) is pca
    assert plan.resolve_reducer(est(reducer=pca), partial=True) is pca
    assert plan.resolve_reducer(est(reducer=None), partial=False) is None


def test_the_auto_embedding_is_sized_on_the_codes():
    def reducer(**params):
        return resolve(est(**params), 1_000).reducer

    small = reducer(n_clusters=5, architecture=MLP(), latent_dim=3)
    assert isinstance(small, NeighborEmbedding)
    assert small.n_components == 3  # no more than the codes have
    # at least AUTO_MIN_COMPONENTS (10) dimensions, more for more clusters
    assert reducer(n_clusters=5, architecture=MLP(), latent_dim=64).n_components == 10
    assert reducer(n_clusters=20, architecture=MLP(), latent_dim=64).n_components == 20
    assert reducer(n_clusters=5) is not reducer(n_clusters=5)  # fresh
    assert reducer(n_clusters=5).n_components == 8  # no network: the 8 features
    # The user's module: sized once its codes are known.
    p = resolve(est(n_clusters=5, module=_Codec()), 1_000)
    assert p.reducer.n_components == 10
    assert plan.make_reducer(p, n_codes=3).n_components == 3
    assert plan.make_reducer(p, n_codes=64) is p.reducer
    pca = PCA(n_components=2)
    assert plan.make_reducer(resolve(est(reducer=pca)), 3) is pca
    assert plan.make_reducer(resolve(est(reducer=None)), 3) is None


# ------------------------------------------------------------------ refine
@pytest.mark.parametrize("clusterer", ["kmeans", "minibatch_kmeans"])
def test_auto_refine_is_idec_with_no_reducer_and_kmeans(clusterer):
    model = est(reducer=None, clusterer=clusterer)
    strategy = resolve(model).refine
    assert type(strategy) is IDEC
    assert strategy.get_params() == IDEC().get_params()
    assert resolve(model).refine is not strategy  # a fresh instance per plan


@pytest.mark.parametrize(
    "params",
    [
        dict(),  # the default neighbour embedding
        dict(reducer=PCA(n_components=2, whiten=True)),
        dict(reducer=NeighborEmbedding()),
        dict(reducer=None, clusterer="gmm"),
        dict(reducer=None, clusterer=GaussianMixture()),
    ],
)
def test_auto_refine_is_none_otherwise(params):
    assert resolve(est(**params)).refine is None


def test_auto_refine_is_idec_through_a_pca_reducer():
    # An affine second stage, as the old ``pca_components`` gave: 'auto' refines.
    assert type(resolve(est(reducer=PCA(n_components=2))).refine) is IDEC


def test_auto_refine_with_large_data_is_none():
    # reducer='auto' keeps the (non-affine) neighbour embedding at every size.
    assert resolve(est(), 1_000_000).refine is None
    assert type(resolve(est(reducer=None), 1_000_000).refine) is IDEC


@pytest.mark.parametrize("name, cls", [("kmeans", KMeansLoss), ("dec", DEC), ("idec", IDEC)])
def test_refine_shortcuts_are_fresh_default_instances(name, cls):
    assert plan.REFINE_SHORTCUTS[name] is cls
    model = est(refine=name)
    a, b = resolve(model).refine, resolve(model).refine
    assert type(a) is cls and type(b) is cls
    assert a is not b
    assert a.get_params() == cls().get_params()
    assert model.refine == name  # the parameter is left as given


@pytest.mark.parametrize(
    "strategy",
    [IDEC(gamma=0.1, epochs=3), DEC(update_interval=5), KMeansLoss(lambda_=0.5, warmup_epochs=0)],
)
@pytest.mark.parametrize("reducer", ["auto", None, PCA(n_components=2)])
def test_user_strategy_is_cloned(strategy, reducer):
    model = est(refine=strategy, reducer=reducer)
    resolved = resolve(model).refine
    assert resolved is not strategy
    assert type(resolved) is type(strategy)
    assert resolved.get_params() == strategy.get_params()
    assert model.refine is strategy


def test_refine_none_and_partial_fit_never_refine():
    assert resolve(est(refine=None, reducer=None)).refine is None
    assert resolve(est(refine="idec"), partial=True).refine is None
    assert resolve(est(reducer=None), partial=True).refine is None


def test_explicit_refine_with_a_non_affine_reducer_is_not_planned():
    # The estimator's parameter checks refuse it with a clear error (test_options).
    assert plan.resolve_refine(est(refine="idec"), NeighborEmbedding()) is None
    assert plan.resolve_refine(est(refine="idec"), PCA(whiten=True)) is None
    assert isinstance(plan.resolve_refine(est(refine="idec"), PCA(2)), RefinementStrategy)


def test_kmeans_clusterers_constant():
    # 'auto' is k-means wherever refinement can run (an affine second stage).
    assert set(plan.KMEANS_CLUSTERERS) == {"auto", "kmeans", "minibatch_kmeans"}


# ------------------------------------------------------------- clusterer
@pytest.mark.parametrize("reducer", ["auto", NeighborEmbedding(n_components=2)])
def test_auto_clusterer_stays_auto_with_a_neighbour_graph(reducer):
    assert resolve(est(reducer=reducer)).clusterer == plan.GRAPH_OR_KMEANS
    assert resolve(est(reducer=reducer), 1_000_000).clusterer == plan.GRAPH_OR_KMEANS
    assert resolve(est(reducer=reducer, clusterer="graph")).clusterer == "graph"


@pytest.mark.parametrize(
    "params", [dict(reducer=None), dict(reducer=PCA(2)), dict(refine="idec")]
)
def test_auto_clusterer_is_kmeans_without_a_neighbour_graph(params):
    assert resolve(est(**params)).clusterer == "kmeans"
    assert resolve(est(**params), 1_000_000).clusterer == "minibatch_kmeans"
    assert resolve(est(), partial=True).clusterer == "kmeans"  # no reducer in partial_fit


@pytest.mark.parametrize(
    "params, partial, match",
    [
        (dict(reducer=None), False, "reducer=None"),
        (dict(reducer=PCA(2)), False, "PCA"),
        (dict(), True, "None in partial_fit"),
    ],
)
def test_graph_clusterer_needs_a_neighbour_graph(params, partial, match):
    with pytest.raises(ValueError, match=match):
        resolve(est(clusterer="graph", **params), partial=partial)


# ------------------------------------------------------------ plan object
def test_fit_plan_is_frozen():
    p = resolve(est(), 1_797)
    assert dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.epochs = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.refine = IDEC()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seeds.init = 0


def test_fit_plan_devices_stream_and_seeds():
    seeds = plan.fit_seeds(42)
    p = plan.resolve_plan(est(), (1_797, 8), stream=True, seeds=seeds, partial=False)
    assert p.devices == (torch.device("cpu"),)
    assert p.device == torch.device("cpu")
    assert p.stream is True
    assert p.seeds is seeds
    p = plan.resolve_plan(est(device=["cpu", "cpu"]), (1_797, 8), stream=False, seeds=seeds,
                          partial=False)
    assert p.devices == (torch.device("cpu"), torch.device("cpu"))
    assert p.device == torch.device("cpu")


def test_streams_rule(monkeypatch):
    X = np.zeros((100, 10), dtype=np.float32)  # 4,000 bytes as float32
    assert plan.STREAM_BYTES == 2**30
    assert not plan.streams(est(), X)
    assert plan.streams(est(streaming=True), X)
    monkeypatch.setattr(plan, "STREAM_BYTES", 3_999)
    assert plan.streams(est(), X)
    assert not plan.streams(est(streaming=False), X)
    assert not plan.streams(est(validation_fraction=0.1), X)
    assert not plan.streams(est(device=["cpu", "cpu"]), X)
    monkeypatch.setattr(plan, "STREAM_BYTES", 4_000)
    assert not plan.streams(est(), X)  # strictly larger than the limit


# ------------------------------------------------------------------ seeds
def test_fit_seeds_are_deterministic_and_distinct():
    a, b = plan.fit_seeds(0), plan.fit_seeds(0)
    assert a == b
    values = dataclasses.astuple(a)
    assert tuple(f.name for f in dataclasses.fields(a)) == STREAM_FIELDS
    assert len(set(values)) == len(STREAM_FIELDS) == 12  # twelve independent streams
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in values)
    assert plan.fit_seeds(1) != a
    assert plan.fit_seeds(2**40 + 7) == plan.fit_seeds(2**40 + 7)  # large entropy too


def test_partial_fit_seeds_differ_per_call_and_from_fit():
    calls = [plan.partial_fit_seeds(0, n) for n in range(5)]
    assert calls == [plan.partial_fit_seeds(0, n) for n in range(5)]  # deterministic
    assert len(set(calls)) == 5
    assert plan.fit_seeds(0) not in calls
    for seeds in calls:
        assert len(set(dataclasses.astuple(seeds))) == len(STREAM_FIELDS)
    assert plan.partial_fit_seeds(1, 0) != calls[0]
    # no stream of one call reappears as a stream of another call or of fit
    streams = [v for s in [plan.fit_seeds(0), *calls] for v in dataclasses.astuple(s)]
    assert len(set(streams)) == len(streams)


def test_root_entropy_of_an_int_is_the_int():
    assert plan.root_entropy(0) == 0
    assert plan.root_entropy(12345) == 12345
    assert plan.root_entropy(np.int64(7)) == 7


def test_root_entropy_of_none_is_fresh_and_leaves_global_state_alone():
    state = np.random.get_state()
    torch_state = torch.get_rng_state()
    values = {plan.root_entropy(None) for _ in range(5)}
    assert len(values) == 5
    after = np.random.get_state()
    assert after[0] == state[0] and after[2:] == state[2:]
    np.testing.assert_array_equal(after[1], state[1])
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_root_entropy_of_a_random_state_consumes_a_draw():
    rng = np.random.RandomState(3)
    position = rng.get_state()[2]
    first = plan.root_entropy(rng)
    assert rng.get_state()[2] != position  # one draw taken
    second = plan.root_entropy(rng)
    assert first != second  # the next fit gets another entropy
    assert plan.root_entropy(np.random.RandomState(3)) == first  # reproducible
    assert 0 <= first < np.iinfo(np.int32).max
