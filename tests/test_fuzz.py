"""Property-based fuzzing of :class:`AutoencoderKMeans` and :class:`NeighborEmbedding`.

Hypothesis draws the data (1 to 60 rows, 1 to 12 features; float64, float32,
integer, bool and object dtypes; magnitudes 1e-3 to 1e3 and, rarely, 1e-30 or
1e30; offsets; many identical rows; NaN and infinity; strings; pandas and
polars DataFrames; 2 or 3 chunks for ``partial_fit``) and tiny estimators
(``MLP((8,))``-sized networks, 1 or 2 epochs, ``n_init=1``,
1 to 3 clusters), and checks on every successful fit that

- labels are integers in ``[0, n_clusters)`` and ``labels_ == predict(X)``;
- the embedding, the centres and the inertia are finite;
- a row's embedding and label do not depend on the batch
  (``transform(X)[i] == transform(X[i:i+1])[0]`` exactly) and identical
  rows get identical embeddings and labels;
- a pickled and unpickled estimator predicts and transforms identically;
- ``fit(X).transform(X) == fit_transform(X)`` for the same ``random_state``;
- inputs whose largest ``|value|`` lies outside ``[1e-6, 1e6]`` warn
  ``"badly scaled"`` (``UserWarning``), others do not; no other warning than
  scikit-learn's ``ConvergenceWarning`` is raised;

and that bad input (NaN, infinity, strings, complex numbers) raises a
``ValueError`` that says what is wrong, leaving a fitted estimator as
documented (see ``docs/architecture.rst``, *Rollback on failure*).

Modes (environment variables; the strategies and settings live in
``tests/fuzz_strategies.py``):

``SKDEEPCLUSTER_FUZZ`` unset (or ``ci``)
    The default for CI: a fixed, small number of examples per test,
    ``derandomize=True`` (the same examples on every run), about a minute on
    one thread in all.
``SKDEEPCLUSTER_FUZZ=long``
    Fresh random examples (nominally ``max_examples=100000``) until the time
    budget is spent: ``SKDEEPCLUSTER_FUZZ_SECONDS`` (default 1200) for the
    whole module, shared by the selected fuzz tests in proportion to their
    ``weight`` (a failure adds Hypothesis' shrinking, up to about five
    minutes, and ends that test's loop). The number of
    cases tried is printed at the end of the module (pytest's terminal) and,
    with ``SKDEEPCLUSTER_FUZZ_REPORT=path.json``, written to that file (also
    in the default mode)::

        SKDEEPCLUSTER_FUZZ=long SKDEEPCLUSTER_FUZZ_SECONDS=1200 \\
        SKDEEPCLUSTER_FUZZ_REPORT=fuzz.json OMP_NUM_THREADS=1 \\
        python -m pytest -q -p no:cacheprovider tests/test_fuzz.py

``SKDEEPCLUSTER_FUZZ_KNOWN_BUGS=1``
    Also draw the inputs of the library bugs this fuzzer found and that are
    not fixed yet (``KNOWN_BUGS`` in ``tests/fuzz_strategies.py``), which the
    strategies otherwise steer clear of: to check a fix.

A failure prints the drawn data (``Matrix(...)`` with the array itself) and
parameters, shrunk to a minimal example, and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import pickle
import re
import sys
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skdeepcluster import MLP, AutoencoderKMeans, NeighborEmbedding
from skdeepcluster.embedding._neighbor_embedding import _scaled_float32

from .fuzz_strategies import (
    BUDGET,
    FITTABLE_EXTREMES,
    FLOAT_DTYPES,
    LONG,
    autoencoder_kmeans_params,
    avoids,
    bad_values,
    badly_scaled,
    frames,
    fuzz_test,
    groups_of_identical_rows,
    label_events,
    matrices,
    neighbor_embedding_params,
    numeric,
    with_bad_values,
)

#: What a ValueError about non-finite input must mention.
NONFINITE = re.compile(r"NaN|infinity", re.IGNORECASE)
#: Whether a failed plain ``fit`` (``warm_start=False``) keeps the previous model.
#: The documented rollback (docs/architecture.rst) leaves the estimator *unfitted*;
#: ``partial_fit`` and ``warm_start=True`` put the previous model back.
FAILED_FIT_KEEPS_MODEL = False
#: Warnings of dependencies that the fuzzer met and that are known and harmless:
#: (category, message regex, file regex, why).
KNOWN_WARNINGS = [
    (
        RuntimeWarning,
        "invalid value encountered in divide",
        r"sklearn[/\\]decomposition[/\\]_pca\.py$",
        "PCA of one sample or of constant codes: explained_variance(_ratio)_ is 0/0 = NaN; "
        "the projection itself stays finite",
    ),
    (
        UserWarning,
        "clusterer='graph' found no",
        r"tests[/\\]test_fuzz\.py$",  # attributed to the caller of fit
        "too few samples for more small clusters than communities: k-means is used, "
        "as the warning says",
    ),
]


def known(w) -> bool:
    return any(
        issubclass(w.category, category)
        and re.search(message, str(w.message))
        and re.search(filename, w.filename or "")
        for category, message, filename, _ in KNOWN_WARNINGS
    )


# ----------------------------------------------------------------- plumbing
@pytest.fixture(scope="module", autouse=True)
def _fuzz_report(request):
    """Share the long mode's budget over the selected tests; report the cases tried."""
    module = sys.modules[__name__]
    BUDGET.selected = [
        item.originalname or item.name
        for item in request.session.items
        if getattr(item, "module", None) is module
    ]
    yield
    line = BUDGET.write()
    if LONG:  # past pytest's output capture, like capsys.disabled()
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if capture is not None:
            with capture.global_and_fixture_disabled():
                print(f"\n{line}", flush=True)
        else:  # pragma: no cover - pytest without its capture plugin
            print(line)


@contextmanager
def recorded():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def check_warnings(caught, X=None):
    """Fit warnings: "badly scaled" exactly when X is, else only ConvergenceWarning."""
    scale = [w for w in caught if "badly scaled" in str(w.message)]
    others = [
        w for w in caught
        if "badly scaled" not in str(w.message)
        and not issubclass(w.category, ConvergenceWarning)
        and not known(w)
    ]
    assert not others, [f"{w.category.__name__}: {w.message}" for w in others]
    for w in scale:
        assert issubclass(w.category, UserWarning)
    if X is not None:
        expected = badly_scaled(X)
        assert bool(scale) == expected, (
            f"badly scaled warning {'missing' if expected else 'unexpected'} "
            f"for max|X|={np.abs(numeric(X)).max():.3g}"
        )


def quiet(method, X):
    """``method(X)``, which must not warn at all, except ConvergenceWarning."""
    with recorded() as caught:
        out = method(X)
    check_warnings(caught)
    return out


def row(X, i):
    """Row ``i`` of ``X`` as a one-row matrix of the same kind (array or DataFrame)."""
    if hasattr(X, "iloc"):
        return X.iloc[i : i + 1]
    return X[i : i + 1]


def to_numpy(X) -> np.ndarray:
    return X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)


def unfitted(est) -> bool:
    return not [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]


# ------------------------------------------------------------ properties
def check_fitted_autoencoder_kmeans(est, X, rows) -> tuple[np.ndarray, np.ndarray]:
    """The properties of a fitted :class:`AutoencoderKMeans` on ``X``; its embedding, labels."""
    n, k = len(X), est.n_clusters
    labels = est.labels_
    assert labels.shape == (n,)
    assert np.issubdtype(labels.dtype, np.integer)
    assert labels.min() >= 0 and labels.max() < k, (labels.min(), labels.max(), k)
    E = np.asarray(quiet(est.transform, X))
    assert E.shape == (n, est.cluster_centers_.shape[1])
    assert np.isfinite(E).all(), "non-finite embedding"
    assert np.isfinite(est.cluster_centers_).all(), "non-finite centres"
    assert est.cluster_centers_.shape[0] == k
    assert np.isfinite(est.inertia_)
    np.testing.assert_array_equal(quiet(est.predict, X), labels, "labels_ != predict(X)")
    for i in rows:
        one = np.asarray(quiet(est.transform, row(X, i)))
        np.testing.assert_array_equal(one[0], E[i], f"transform of row {i} depends on the batch")
        label = quiet(est.predict, row(X, i))[0]
        assert label == labels[i], f"label of row {i} depends on the batch"
    for group in groups_of_identical_rows(to_numpy(X)):
        np.testing.assert_array_equal(E[group], np.broadcast_to(E[group[0]], E[group].shape),
                                      f"identical rows {group} embedded differently")
        assert (labels[group] == labels[group[0]]).all(), f"identical rows {group} apart"
    return E, labels


def check_pickle(est, X, E, labels):
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(quiet(restored.predict, X), labels)
    np.testing.assert_array_equal(np.asarray(quiet(restored.transform, X)), E)
    return restored


def fit_checked(est, X, method="fit"):
    with recorded() as caught:
        out = getattr(est, method)(X)
    check_warnings(caught, X)
    return out


def assert_fit_transform_equal(E2, E, params):
    """``fit_transform(X)`` (``E2``) equals ``fit(X).transform(X)`` (``E``) exactly."""
    message = "fit_transform(X) != fit(X).transform(X)"
    if isinstance(params["reducer"], PCA) and avoids("pca_fit_transform_rounding"):
        np.testing.assert_allclose(E2, E, rtol=1e-9, atol=1e-12, err_msg=message)
    else:
        np.testing.assert_array_equal(E2, E, message)


#: Clear refusals of degenerate fits (found by the long fuzz run): codes beyond float32
#: (X of order 1e30, or a network that diverged on unscaled data with one-row batches),
#: and scikit-learn's GaussianMixture on collapsed codes. Each is a ValueError that
#: names the cause and the fix, which is what the properties ask for such data.
CLEAR_REFUSALS = ("beyond the float32 range", "ill-defined empirical covariance")


def clear_refusal(error: Exception) -> bool:
    """Whether ``error`` is one of the clear refusals of a degenerate fit."""
    return isinstance(error, ValueError) and any(m in str(error) for m in CLEAR_REFUSALS)


def check_autoencoder_kmeans(X, params, rows):
    est = AutoencoderKMeans(**params)
    try:
        fit_checked(est, X)
    except ValueError as error:
        if clear_refusal(error):
            note(f"refused with a clear error: {error}")
            return None
        raise
    E, labels = check_fitted_autoencoder_kmeans(est, X, rows)
    check_pickle(est, X, E, labels)
    twin = AutoencoderKMeans(**params)
    E2 = np.asarray(fit_checked(twin, X, "fit_transform"))
    assert_fit_transform_equal(E2, E, params)
    np.testing.assert_array_equal(twin.labels_, labels, "same random_state, other labels")


def draw_rows(data, n):
    return data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True),
                     label="rows checked for batch independence")


# ------------------------------------------------- AutoencoderKMeans: arrays
@fuzz_test(max_examples=300, weight=4)
@given(data=st.data())
def test_autoencoder_kmeans_properties(data):
    """Shapes, dtypes, magnitudes and duplicated rows: every property of a fit."""
    m = data.draw(matrices(), label="X")
    params = data.draw(autoencoder_kmeans_params(m.X.shape[0], single_sample_gmm=True),
                       label="params")
    rows = draw_rows(data, m.X.shape[0])
    label_events(m, params)
    BUDGET.count("test_autoencoder_kmeans_properties")
    if params["clusterer"] == "gmm" and m.X.shape[0] < 2:
        # scikit-learn's GaussianMixture needs 2 samples; its own error says so.
        with pytest.raises(ValueError, match="minimum of 2 is required by GaussianMixture"):
            fit_checked(AutoencoderKMeans(**params), m.X)
        return
    check_autoencoder_kmeans(m.X, params, rows)


@fuzz_test(max_examples=100, weight=2)
@given(data=st.data())
def test_autoencoder_kmeans_bad_values_and_rollback(data):
    """NaN and infinity raise a ValueError naming them; the fitted model survives as documented."""
    huge = FITTABLE_EXTREMES
    m = data.draw(matrices(max_rows=30, dtypes=FLOAT_DTYPES + ("int64",), extremes=huge), label="X")
    X = m.X
    params = data.draw(autoencoder_kmeans_params(X.shape[0], partial=True), label="params")
    method = data.draw(st.sampled_from(["fit", "fit_transform", "fit_predict", "partial_fit",
                                        "warm_start"]), label="method")
    other = data.draw(st.booleans(), label="bad rows are other rows")
    base = X
    if other:
        base = data.draw(matrices(max_rows=30, n_features=X.shape[1], dtypes=FLOAT_DTYPES,
                                  extremes=huge), label="other X").X
    placements = data.draw(bad_values(base.shape), label="NaN/inf placements")
    bad = with_bad_values(base, placements)
    container = data.draw(st.sampled_from(["numpy", "pandas", "polars"]), label="container")
    if container != "numpy":
        lib = pytest.importorskip(container)
        bad = lib.DataFrame({f"x{j}": bad[:, j] for j in range(bad.shape[1])})
    BUDGET.count("test_autoencoder_kmeans_bad_values_and_rollback")

    # An unfitted estimator stays unfitted.
    fresh = AutoencoderKMeans(**params)
    with pytest.raises(ValueError, match=NONFINITE):
        fit_checked(fresh, bad, "fit")
    assert unfitted(fresh)

    est = AutoencoderKMeans(**params, warm_start=method == "warm_start")
    fitted = est.partial_fit if method == "partial_fit" else est.fit
    with recorded():
        try:
            fitted(X)
        except ValueError as error:
            if clear_refusal(error):
                note(f"refused with a clear error: {error}")
                return
            raise
    E, labels = check_fitted_autoencoder_kmeans(est, X, [0])
    state = {k: v for k, v in vars(est).items() if k.endswith("_")}
    weights = {k: v.clone() for k, v in est.autoencoder_.state_dict().items()}

    for inference in (est.predict, est.transform, est.score):
        with pytest.raises(ValueError, match=NONFINITE):
            quiet(inference, bad)

    call = {"warm_start": "fit", "partial_fit": "partial_fit"}.get(method, method)
    with pytest.raises(ValueError, match=NONFINITE):
        fit_checked(est, bad, call)
    if method in ("partial_fit", "warm_start") or FAILED_FIT_KEEPS_MODEL:
        assert sorted(k for k in vars(est) if k.endswith("_")) == sorted(state)
        np.testing.assert_array_equal(est.labels_, labels)
        for name, value in est.autoencoder_.state_dict().items():
            assert (value == weights[name]).all(), f"weights {name} changed by a failed fit"
        np.testing.assert_array_equal(quiet(est.predict, X), labels)
        np.testing.assert_array_equal(quiet(est.transform, X), E)
    else:
        assert unfitted(est), "a failed fit must leave the estimator unfitted (documented)"
        with pytest.raises(NotFittedError):
            est.predict(X)


NON_NUMERIC = {
    "words": lambda X: np.where(X > 0, "yes", "no"),
    "words (object)": lambda X: np.where(X > 0, "yes", "no").astype(object),
    "one word among floats": None,  # built in the test
    "complex": lambda X: X + 1j,
    "None": None,
}


@fuzz_test(max_examples=40, weight=0.5)
@given(data=st.data())
def test_autoencoder_kmeans_rejects_non_numeric_input(data):
    """Strings, complex numbers and None: a ValueError, and the estimator stays unfitted."""
    m = data.draw(matrices(max_rows=20, dtypes=("float64",)), label="X")
    X = m.X
    kind = data.draw(st.sampled_from(sorted(NON_NUMERIC)), label="kind")
    if NON_NUMERIC[kind] is not None:
        bad = NON_NUMERIC[kind](X)
    else:
        bad = X.astype(object)
        i = data.draw(st.integers(0, X.shape[0] - 1), label="row")
        j = data.draw(st.integers(0, X.shape[1] - 1), label="column")
        bad[i, j] = "oops" if kind == "one word among floats" else None
    params = data.draw(autoencoder_kmeans_params(X.shape[0]), label="params")
    BUDGET.count("test_autoencoder_kmeans_rejects_non_numeric_input")
    est = AutoencoderKMeans(**params)
    match = {"None": NONFINITE, "complex": "[Cc]omplex"}.get(kind, "float|string")
    with pytest.raises(ValueError, match=match):
        with recorded():
            est.fit(bad)
    assert unfitted(est)
    ne = NeighborEmbedding(n_components=1, n_epochs=1, device="cpu")
    with pytest.raises(ValueError, match=match), recorded():
        ne.fit(bad)


# --------------------------------------------- AutoencoderKMeans: DataFrames
@fuzz_test(max_examples=80, weight=2)
@given(data=st.data())
def test_autoencoder_kmeans_dataframes(data):
    """pandas and polars input: feature names kept, every property on the frame itself."""
    spec = data.draw(frames(extremes=FITTABLE_EXTREMES), label="frame")
    library, names = spec.library, spec.names
    lib = pytest.importorskip(library)
    frame = spec.build()
    n = len(frame)
    params = data.draw(autoencoder_kmeans_params(n), label="params")
    output = data.draw(st.sampled_from(["default", library]), label="set_output")
    rows = draw_rows(data, n)
    BUDGET.count("test_autoencoder_kmeans_dataframes")
    X = frame.to_numpy()
    est = AutoencoderKMeans(**params).set_output(transform=output)
    fit_checked(est, frame)
    np.testing.assert_array_equal(est.feature_names_in_, np.asarray(names, dtype=object))
    assert est.n_features_in_ == len(names)
    out = quiet(est.transform, frame)
    if output != "default":
        assert isinstance(out, lib.DataFrame)
        assert list(out.columns) == list(est.get_feature_names_out())
    E, labels = check_fitted_autoencoder_kmeans(est, frame, rows)
    # The frame and its values give the same result.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
        np.testing.assert_array_equal(np.asarray(est.transform(X)), E)
        np.testing.assert_array_equal(est.predict(X), labels)
    restored = check_pickle(est, frame, E, labels)
    np.testing.assert_array_equal(restored.feature_names_in_, est.feature_names_in_)
    twin = AutoencoderKMeans(**params).set_output(transform=output)
    E2 = np.asarray(fit_checked(twin, frame, "fit_transform"))
    assert_fit_transform_equal(E2, E, params)


# ----------------------------------------------- AutoencoderKMeans: chunks
@fuzz_test(max_examples=60, weight=2)
@given(data=st.data())
def test_autoencoder_kmeans_partial_fit_chunks(data):
    """2-3 chunks: properties after every call, a failed call changes nothing, reproducible."""
    n_features = data.draw(st.integers(1, 12), label="n_features")
    n_chunks = data.draw(st.integers(2, 3), label="n_chunks")
    n_clusters = data.draw(st.integers(1, 3), label="n_clusters")
    chunks = [
        data.draw(matrices(min_rows=n_clusters, max_rows=25, n_features=n_features,
                           extremes=FITTABLE_EXTREMES),
                  label=f"chunk {c}").X
        for c in range(n_chunks)
    ]
    smallest = min(len(chunk) for chunk in chunks)
    params = data.draw(autoencoder_kmeans_params(smallest, partial=True), label="params")
    params = {**params, "n_clusters": n_clusters}
    failing = data.draw(st.one_of(st.none(), st.integers(1, n_chunks - 1)),
                        label="a NaN chunk before chunk")
    BUDGET.count("test_autoencoder_kmeans_partial_fit_chunks")

    est, twin = AutoencoderKMeans(**params), AutoencoderKMeans(**params)
    for c, chunk in enumerate(chunks):
        if c == failing:
            before = quiet(est.predict, chunks[c - 1])
            bad = with_bad_values(chunk, [((0, 0), np.nan)])
            with pytest.raises(ValueError, match=NONFINITE):
                fit_checked(est, bad, "partial_fit")
            np.testing.assert_array_equal(quiet(est.predict, chunks[c - 1]), before)
        n_iter = getattr(est, "n_iter_", 0)
        with recorded() as caught:
            try:
                est.partial_fit(chunk)
            except ValueError as error:
                if clear_refusal(error):
                    note(f"refused with a clear error: {error}")
                    return
                raise
        check_warnings(caught, chunk)
        with recorded():
            twin.partial_fit(chunk)
        assert est.n_features_in_ == n_features
        # One epoch per call, unless its loss diverged (a ConvergenceWarning says so, and
        # the weights of before the epoch are kept).
        diverged = any("became" in str(w.message) for w in caught)
        assert est.n_iter_ == n_iter + (0 if diverged else 1), (est.n_iter_, n_iter, diverged)
        rows = data.draw(st.lists(st.integers(0, len(chunk) - 1), min_size=1, max_size=2,
                                  unique=True), label=f"rows of chunk {c}")
        E, labels = check_fitted_autoencoder_kmeans(est, chunk, rows)
        note(f"chunk {c}: labels {labels.tolist()}")
        # A failed call in between leaves no trace: same results as without it.
        np.testing.assert_array_equal(twin.labels_, labels, "partial_fit is not reproducible")
        np.testing.assert_array_equal(np.asarray(twin.transform(chunk)), E)
    restored = check_pickle(est, chunks[-1], E, labels)
    # Training goes on after unpickling (with a fresh optimizer).
    try:
        fit_checked(restored, chunks[0], "partial_fit")
    except ValueError as error:
        if clear_refusal(error):
            note(f"refused with a clear error: {error}")
            return
        raise
    check_fitted_autoencoder_kmeans(restored, chunks[0], [0])


# ----------------------------------------------------- NeighborEmbedding
def check_neighbor_embedding(X, params, rows):
    ne = NeighborEmbedding(**params)
    with recorded() as caught:
        E = ne.fit_transform(X)
    check_warnings(caught)
    n = len(X)
    assert E.shape == (n, params["n_components"])
    assert np.isfinite(E).all(), "non-finite embedding"
    assert np.isfinite(ne.embedding_).all()
    if any("badly scaled" in str(w.message) for w in caught):
        return ne, E  # a clear warning, and a finite result: enough for such data
    # A training sample is placed exactly on its node.
    np.testing.assert_array_equal(E[ne.fit_indices_], ne.embedding_,
                                  "transform(training row) != embedding_")
    twin = NeighborEmbedding(**params)
    with recorded():
        np.testing.assert_array_equal(twin.fit(X).transform(X), E,
                                      "fit(X).transform(X) != fit_transform(X)")
    for i in rows:
        np.testing.assert_array_equal(quiet(ne.transform, row(X, i))[0], E[i],
                                      f"transform of row {i} depends on the batch")
    # Identical rows (documented: equal once scaled by the fit's power of two and
    # converted to float32) share one embedding.
    for group in groups_of_identical_rows(_scaled_float32(numeric(X), ne._scale)):
        np.testing.assert_array_equal(E[group], np.broadcast_to(E[group[0]], E[group].shape),
                                      f"identical rows {group} embedded differently")
    restored = pickle.loads(pickle.dumps(ne))
    np.testing.assert_array_equal(quiet(restored.transform, X), E)
    return ne, E


@fuzz_test(max_examples=300, weight=2)
@given(data=st.data())
def test_neighbor_embedding_properties(data):
    """Every property of a NeighborEmbedding fit, on any data (see the module docstring)."""
    m = data.draw(matrices(), label="X")
    params = data.draw(neighbor_embedding_params(m.X.shape[0]), label="params")
    rows = draw_rows(data, m.X.shape[0])
    label_events(m, None)
    BUDGET.count("test_neighbor_embedding_properties")
    check_neighbor_embedding(m.X, params, rows)


@fuzz_test(max_examples=100, weight=0.5)
@given(data=st.data())
def test_neighbor_embedding_bad_values(data):
    """NaN and infinity: a ValueError naming them in fit and transform; a fitted model survives."""
    m = data.draw(matrices(max_rows=30, dtypes=FLOAT_DTYPES), label="X")
    X = m.X
    params = data.draw(neighbor_embedding_params(X.shape[0]), label="params")
    placements = data.draw(bad_values(X.shape), label="NaN/inf placements")
    bad = with_bad_values(X, placements)
    BUDGET.count("test_neighbor_embedding_bad_values")
    ne = NeighborEmbedding(**params)
    # (scikit-learn's finiteness check sums X first: inf + -inf warns "invalid value".)
    with pytest.raises(ValueError, match=NONFINITE), recorded():
        ne.fit(bad)
    assert not hasattr(ne, "embedding_")
    with recorded():
        E = ne.fit_transform(X)
    with pytest.raises(ValueError, match=NONFINITE), recorded():
        ne.transform(bad)
    with pytest.raises(ValueError, match=NONFINITE), recorded():
        ne.fit(bad)
    np.testing.assert_array_equal(quiet(ne.transform, X), E)


def test_long_run_find_gmm_on_collapsed_huge_codes_is_a_clear_error():
    """Found by the long run: two rows of 1e30, no scaling, a GMM: a ValueError naming it."""
    params = dict(n_clusters=1, architecture=MLP((8,)), latent_dim=2, batch_size=1, epochs=1,
                  standardize=False, reducer=None, clusterer="gmm", n_init=1, refine=None,
                  random_state=0)
    est = AutoencoderKMeans(**params)
    with recorded(), pytest.raises(ValueError) as info:
        est.fit(np.full((2, 1), 1e30))
    assert clear_refusal(info.value), info.value
    assert unfitted(est)
