"""Hypothesis strategies, settings and the time budget of ``tests/test_fuzz.py``.

The strategies draw the *structure* of the data (shape, number of distinct
rows and where the copies go, magnitude, offset, dtype, container) with
Hypothesis, and the values of the distinct rows as a Hypothesis array, so
that a failure shrinks to a small, readable reproducer.

Two modes, chosen by the environment variable ``SKDEEPCLUSTER_FUZZ``:

- unset (or ``ci``): a fixed, small number of examples per test,
  ``derandomize=True`` (the same examples on every run), no example database;
- ``long``: fresh random examples until the time budget
  ``SKDEEPCLUSTER_FUZZ_SECONDS`` (default 1200, for the whole module) is
  spent; see :func:`fuzz_test`.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skdeepcluster import MLP

# ------------------------------------------------------------------ modes
MODE = os.environ.get("SKDEEPCLUSTER_FUZZ", "ci").strip().lower() or "ci"
if MODE not in ("ci", "long"):
    raise ValueError(f"SKDEEPCLUSTER_FUZZ={MODE!r}: expected 'ci' (the default) or 'long'.")
LONG = MODE == "long"
#: Time budget of the long mode, for all the fuzz tests of a run together.
SECONDS = float(os.environ.get("SKDEEPCLUSTER_FUZZ_SECONDS", "1200"))
#: Where to write the JSON report (cases tried per test), if anywhere.
REPORT = os.environ.get("SKDEEPCLUSTER_FUZZ_REPORT") or None
#: Examples per Hypothesis run in the long mode; runs repeat until the budget is spent.
LONG_CHUNK = 100
#: The long mode's nominal example count (never reached: the time budget stops it first).
LONG_MAX_EXAMPLES = 100_000

_COMMON = dict(
    deadline=None,
    database=None,  # nothing written into the work tree
    print_blob=True,  # a failure prints @reproduce_failure(...) to replay it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CI_SETTINGS = settings(derandomize=True, **_COMMON)
LONG_SETTINGS = settings(derandomize=False, max_examples=LONG_CHUNK, **_COMMON)


@dataclass
class Budget:
    """Counts of the cases tried, and the long mode's shared time budget."""

    deadline: float | None = None  # time.monotonic() at which the long mode stops
    selected: list[str] = field(default_factory=list)  # fuzz tests of this pytest run
    finished: set[str] = field(default_factory=set)
    cases: dict[str, int] = field(default_factory=dict)  # examples run, per test
    runs: dict[str, int] = field(default_factory=dict)  # Hypothesis runs, per test
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def count(self, name: str) -> None:
        self.cases[name] = self.cases.get(name, 0) + 1

    weights: dict[str, float] = field(default_factory=dict)  # share of the long budget

    def share(self, name: str) -> float:
        """Seconds the test ``name`` may run: what is left, split by weight over the tests left."""
        if self.deadline is None:
            self.deadline = time.monotonic() + SECONDS
        left = [t for t in self.selected if t not in self.finished and t != name] + [name]
        total = sum(self.weights.get(t, 1.0) for t in left)
        return max(0.0, self.deadline - time.monotonic()) * self.weights.get(name, 1.0) / total

    def report(self) -> dict:
        return {
            "mode": MODE,
            "budget_seconds": SECONDS if LONG else None,
            "elapsed_seconds": round(time.monotonic() - self.started, 1),
            "total_cases": sum(self.cases.values()),
            "cases": dict(sorted(self.cases.items())),
            "hypothesis_runs": dict(sorted(self.runs.items())),
            "seconds": {k: round(v, 1) for k, v in sorted(self.seconds.items())},
        }

    def write(self) -> str:
        report = self.report()
        if REPORT:
            with open(REPORT, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
        per_test = ", ".join(f"{k}={v}" for k, v in report["cases"].items())
        return (
            f"fuzz ({MODE}): {report['total_cases']} cases in "
            f"{report['elapsed_seconds']} s [{per_test}]"
        )


BUDGET = Budget()


def fuzz_test(max_examples: int, weight: float = 1.0):
    """Give a ``@given`` test its settings: ``max_examples`` in CI, the time budget when long.

    In the long mode the test becomes a loop of Hypothesis runs of
    ``LONG_CHUNK`` fresh random examples each, until its share of the time
    budget is spent: what is left of ``SKDEEPCLUSTER_FUZZ_SECONDS``, split
    over the selected fuzz tests not yet run in proportion to their
    ``weight``. A failure stops the loop (after Hypothesis has shrunk it,
    which can add up to a few minutes). Checking the clock
    between runs, not inside one, keeps data generation consistent (an
    early return inside a Hypothesis run would be reported as a flaky
    strategy) and lets each run shrink a failure normally.
    """

    def decorate(test):
        BUDGET.weights[test.__name__] = weight
        if not LONG:
            return settings(CI_SETTINGS, max_examples=max_examples)(test)
        run = settings(LONG_SETTINGS)(test)

        @functools.wraps(test, assigned=("__module__", "__name__", "__qualname__", "__doc__"),
                         updated=())
        def loop():
            name = test.__name__
            start = time.monotonic()
            stop = start + BUDGET.share(name)
            try:
                while True:
                    run()
                    BUDGET.runs[name] = BUDGET.runs.get(name, 0) + 1
                    if time.monotonic() >= stop:
                        break
            finally:
                BUDGET.finished.add(name)
                BUDGET.seconds[name] = time.monotonic() - start

        loop.__signature__ = __import__("inspect").Signature()  # no fixtures to inject
        return loop

    return decorate


# ------------------------------------------------------------ known bugs
#: Library bugs this fuzzer found (reported with minimal reproducers, issue 17).
#: While one stands, the strategies steer clear of it, so that the suite checks
#: everything else; ``SKDEEPCLUSTER_FUZZ_KNOWN_BUGS=1`` draws them again (to
#: check a fix). Delete an entry, and its use below, once it is fixed.
KNOWN_BUGS = {
    "pca_fit_transform_rounding": (
        "with reducer=PCA(...) and few samples (n_samples < 10 * latent_dim: scikit-learn's "
        "full SVD solver), fit_transform(X) differs from fit(X).transform(X) in the last "
        "bits: fit_second_stage() uses PCA.fit_transform (U * S), not PCA.transform; "
        "compared with rtol=1e-9 while it stands"
    ),
}
AVOID_KNOWN_BUGS = os.environ.get("SKDEEPCLUSTER_FUZZ_KNOWN_BUGS", "") != "1"


def avoids(bug: str) -> bool:
    """Whether the strategies steer clear of the known bug ``bug``."""
    assert bug in KNOWN_BUGS, bug
    return AVOID_KNOWN_BUGS


# ------------------------------------------------------------ the data
#: dtypes a numeric matrix is drawn in ('object' holds Python floats).
NUMERIC_DTYPES = ("float64", "float32", "int64", "int32", "uint8", "bool", "object")
FLOAT_DTYPES = ("float64", "float32")
#: Inputs whose largest |value| falls outside this range must warn "badly scaled".
SCALE_RANGE = (1e-6, 1e6)


#: The rare extreme scales: both, only the tiny one, or none.
EXTREMES = (-30, 30)


@st.composite
def magnitudes(draw, extremes=EXTREMES):
    """A scale ``10 ** e``: e in [-3, 3], rarely (1 in 20) ``10 ** e`` for e in ``extremes``."""
    if draw(st.integers(0, 19)) == 19 and extremes:
        return 10.0 ** draw(st.sampled_from(list(extremes)))
    return 10.0 ** draw(st.floats(-3, 3))


#: The extreme scales of the tests that need a successful fit: X of order 1e30
#: can make the codes overflow float32, which ``fit`` refuses with a clear
#: ValueError (``test_autoencoder_kmeans_properties`` draws and checks that).
FITTABLE_EXTREMES = (-30,)


def cast(X: np.ndarray, dtype: str) -> np.ndarray:
    """``X`` (float64) in ``dtype``: integers rounded and clipped, bool as ``X > 0``."""
    if dtype in ("float64", "float32"):
        return X.astype(dtype)
    if dtype == "bool":
        return X > 0
    if dtype == "object":
        out = np.empty(X.shape, dtype=object)
        out[...] = [[float(v) for v in row] for row in X]
        return out
    info = np.iinfo(dtype)
    low, high = max(float(info.min), -(2.0**62)), min(float(info.max), 2.0**62)
    return np.clip(np.round(X), low, high).astype(dtype)


def exact_repr(X) -> str:
    """``repr`` of an array that round-trips: every float with all the digits it needs."""
    X = np.asarray(X)
    body = np.array2string(X, separator=", ", floatmode="unique", threshold=X.size + 1,
                           max_line_width=120)
    return f"array({body}, dtype={X.dtype.name!r})"


@dataclass
class Matrix:
    """A drawn data matrix and how it was made (shown by Hypothesis on failure)."""

    X: np.ndarray
    dtype: str
    scale: float
    offset: float
    n_distinct: int

    def __repr__(self) -> str:
        n, d = self.X.shape
        return (
            f"Matrix(shape=({n}, {d}), dtype={self.dtype}, scale={self.scale:.3g}, "
            f"offset={self.offset:g}, n_distinct<={self.n_distinct},\n"
            f"X=np.{exact_repr(self.X)})"
        )

    def _repr_pretty_(self, p, cycle):  # Hypothesis prints drawn values with this
        p.text(repr(self))


@st.composite
def matrices(draw, *, min_rows=1, max_rows=60, max_features=12, n_features=None,
             dtypes=NUMERIC_DTYPES, extremes=EXTREMES):
    """A data matrix: ``n_distinct`` rows drawn by Hypothesis, copied into ``n`` rows.

    The copies are placed at random (often many identical rows), the values
    are scaled by :func:`magnitudes` and sometimes shifted by an offset much
    larger than their spread (rows distinct in float64 may then coincide in
    float32), then cast to a dtype of ``dtypes``. ``extremes`` are the
    exponents of the rare extreme scales (``()``: none).
    """
    n = draw(st.integers(min_rows, max_rows))
    d = n_features if n_features is not None else draw(st.integers(1, max_features))
    n_distinct = draw(st.integers(1, n))
    base = draw(
        arrays(np.float64, (n_distinct, d), elements=st.floats(-1, 1, allow_subnormal=False))
    )
    if n_distinct == n:
        X = base
    else:
        rows = draw(arrays(np.intp, n, elements=st.integers(0, n_distinct - 1)))
        X = base[rows]
    scale = draw(magnitudes(extremes))
    offset = draw(st.sampled_from([0.0, 0.0, 0.0, 1.0, -3.0, 1e3]))
    dtype = draw(st.sampled_from(dtypes))
    X = cast(X * scale + offset, dtype)
    return Matrix(X=X, dtype=dtype, scale=scale, offset=offset, n_distinct=n_distinct)


def numeric(X) -> np.ndarray:
    """``X`` as the estimators validate it: float32 stays float32, the rest float64."""
    X = np.asarray(X)
    return X if X.dtype == np.float32 else X.astype(np.float64)


def max_abs(X) -> float:
    X = numeric(X)
    return float(np.abs(X).max()) if X.size else 0.0


def badly_scaled(X) -> bool:
    low, high = SCALE_RANGE
    return not low <= max_abs(X) <= high


def groups_of_identical_rows(X) -> list[np.ndarray]:
    """Indices of the rows equal to each other (by value: -0.0 == 0.0), groups of 2 or more."""
    X = numeric(X)
    _, inverse, counts = np.unique(X + X.dtype.type(0), axis=0, return_inverse=True,
                                   return_counts=True)
    inverse = inverse.ravel()
    return [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts > 1)]


@dataclass
class Frame:
    """A drawn DataFrame: its library, column names and columns (one dtype each)."""

    library: str
    names: list
    columns: dict

    def build(self):
        import importlib

        return importlib.import_module(self.library).DataFrame(self.columns)

    def __repr__(self) -> str:
        columns = ",\n ".join(f"{k!r}: np.{exact_repr(v)}" for k, v in self.columns.items())
        return f"Frame(library={self.library!r}, columns={{\n {columns}}})"

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))


@st.composite
def frames(draw, max_rows=40, extremes=EXTREMES):
    """A pandas or polars DataFrame with distinct string column names and mixed dtypes."""
    library = draw(st.sampled_from(["pandas", "polars"]))
    m = draw(matrices(max_rows=max_rows, dtypes=("float64",), extremes=extremes))
    n_features = m.X.shape[1]
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=n_features,
                          max_size=n_features, unique=True))
    dtypes = draw(st.lists(st.sampled_from(["float64", "float32", "int64", "bool"]),
                           min_size=n_features, max_size=n_features))
    columns = {}
    for j, (name, dtype) in enumerate(zip(names, dtypes, strict=True)):
        column = m.X[:, j]
        if dtype == "bool":
            column = column > np.median(column)
        elif dtype == "int64":
            column = np.clip(np.round(column), -(2.0**62), 2.0**62).astype(np.int64)
        else:
            column = column.astype(dtype)
        columns[name] = column
    return Frame(library=library, names=names, columns=columns)


def label_events(m: Matrix | None = None, params: dict | None = None) -> None:
    """Tag an example for ``--hypothesis-show-statistics`` (what was covered)."""
    from hypothesis import event

    if m is not None:
        event(f"dtype={m.dtype}")
        event("scale=" + ("1e-30" if m.scale < 1e-20 else "1e30" if m.scale > 1e20 else "normal"))
        event("identical rows" if groups_of_identical_rows(m.X) else "distinct rows")
    if params is not None:
        for key in ("reducer", "refine", "clusterer"):
            if key in params:
                value = params[key]
                name = value if value is None or isinstance(value, str) else type(value).__name__
                event(f"{key}={name}")
        if params.get("batch_norm"):
            event("batch_norm")


@st.composite
def bad_values(draw, shape):
    """Positions and values (NaN, inf or -inf) to write into a matrix of ``shape``."""
    n, d = shape
    k = draw(st.integers(1, min(5, n * d)))
    cells = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, d - 1)),
                          min_size=1, max_size=k, unique=True))
    values = draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=len(cells),
                           max_size=len(cells)))
    return list(zip(cells, values, strict=True))


def with_bad_values(X: np.ndarray, placements) -> np.ndarray:
    X = np.array(X, dtype=np.float64 if X.dtype != np.float32 else np.float32, copy=True)
    for (i, j), value in placements:
        X[i, j] = value
    return X


# ------------------------------------------------------- the estimators
@st.composite
def autoencoder_kmeans_params(draw, n_samples: int, *, partial: bool = False,
                              single_sample_gmm: bool = False):
    """Valid, tiny :class:`AutoencoderKMeans` parameters for ``n_samples`` rows.

    With ``partial`` (for ``partial_fit``; ``n_samples`` is then the smallest
    chunk) no explicit refinement is drawn: ``partial_fit`` never refines.
    ``clusterer='gmm'`` needs 2 samples (scikit-learn's GaussianMixture says
    so), unless ``single_sample_gmm`` asks for that error.
    """
    from sklearn.decomposition import PCA

    from skdeepcluster import NeighborEmbedding
    from skdeepcluster.refine import DEC, IDEC, KMeansLoss

    n_clusters = draw(st.integers(1, min(3, n_samples)))
    reducer_kind = draw(st.sampled_from(["none", "none", "pca", "ne", "ne", "auto"]))
    if reducer_kind == "auto" and not partial and draw(st.integers(0, 3)):
        # The 'auto' neighbour embedding runs at least 500 layout steps (~0.5 s): keep it
        # rare in fit (partial_fit uses no reducer for 'auto').
        reducer_kind = "none"
    if reducer_kind == "pca":
        reducer = PCA(n_components=draw(st.integers(1, 3)))
    elif reducer_kind == "ne":
        reducer = NeighborEmbedding(
            n_components=draw(st.integers(1, 3)),
            n_neighbors=draw(st.integers(1, 15)),
            n_epochs=draw(st.integers(0, 10)),
            batch_size=draw(st.sampled_from([8, 64, 8192])),
            init=draw(st.sampled_from(["pca", "random"])),
            device="cpu",
        )
    else:
        reducer = None if reducer_kind == "none" else "auto"
    gmm = ["gmm"] if n_samples >= 2 or single_sample_gmm else []
    # 'graph' needs the neighbour graph: a neighbour-embedding reducer, in fit.
    graph = ["graph"] if reducer_kind in ("ne", "auto") and not partial else []
    clusterer = draw(
        st.sampled_from(["auto", "kmeans", "kmeans", "minibatch_kmeans", *gmm, *graph])
    )
    refine_kind = "none_or_auto"
    if clusterer != "gmm" and reducer_kind in ("none", "pca") and not partial:
        refine_kind = draw(st.sampled_from(["none_or_auto", "kmeans", "dec", "idec"]))
    if refine_kind == "kmeans":
        refine = KMeansLoss(epochs=draw(st.integers(1, 2)), warmup_epochs=draw(st.integers(0, 1)))
    elif refine_kind == "dec":
        refine = DEC(epochs=draw(st.integers(1, 2)),
                     update_interval=draw(st.sampled_from(["auto", 1])))
    elif refine_kind == "idec":
        refine = IDEC(epochs=draw(st.integers(1, 2)), gamma=draw(st.sampled_from([0.1, 1.0])))
    else:
        refine = draw(st.sampled_from([None, "auto"]))
    batch_size = draw(st.integers(1, 16))
    # Batch normalisation needs 2 rows (a clear error says so for 1 sample).
    batch_norm = n_samples >= 2 and draw(st.integers(0, 3)) == 3
    if batch_norm:
        batch_size = max(batch_size, 2)  # batch_size=1 with batch norm: a clear ValueError
    return dict(
        n_clusters=n_clusters,
        architecture=MLP(
            hidden_layer_sizes=draw(st.sampled_from([(8,), (8,), (), (8, 4)])),
            activation=draw(st.sampled_from(["relu", "tanh", "elu", "leaky_relu", "gelu"])),
            output_activation=draw(st.sampled_from([None, None, "sigmoid", "tanh"])),
            dropout=draw(st.sampled_from([0.0, 0.0, 0.2])),
            batch_norm=batch_norm,
        ),
        latent_dim=draw(st.integers(1, 3)),
        loss=draw(st.sampled_from(["mse", "l1", "huber"])),
        optimizer=draw(st.sampled_from(["adam", "adamw", "sgd"])),
        batch_size=batch_size,
        epochs=draw(st.integers(1, 2)),
        noise=draw(st.sampled_from([0.0, 0.0, 0.1])),
        noise_type=draw(st.sampled_from(["gaussian", "mask"])),
        standardize=draw(st.booleans()),
        reducer=reducer,
        clusterer=clusterer,
        n_init=1,
        refine=refine,
        device="cpu",
        random_state=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def neighbor_embedding_params(draw, n_samples: int):
    """Valid, fast :class:`NeighborEmbedding` parameters for ``n_samples`` rows."""
    return dict(
        n_components=draw(st.integers(1, 3)),
        n_neighbors=draw(st.integers(1, 20)),
        min_dist=draw(st.sampled_from([0.0, 0.1, 1.0])),
        n_epochs=draw(st.integers(0, 20)),
        negative_sample_rate=draw(st.integers(1, 5)),
        learning_rate=draw(st.sampled_from([1.0, 0.1, 10.0])),
        batch_size=draw(st.sampled_from([1, 7, 64, 8192])),
        init=draw(st.sampled_from(["pca", "random"])),
        max_samples=draw(st.one_of(st.none(), st.integers(2, max(2, n_samples + 3)))),
        device="cpu",
        random_state=draw(st.integers(0, 2**32 - 1)),
    )
