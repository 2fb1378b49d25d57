"""The estimator's shape: one plan read by the stages, families of options as objects.

What ``fit`` does is decided by :func:`~skdeepcluster._plan.resolve_plan`; the
stages read the plan, never the constructor's parameters (the AST of their
source says which, if any, do). Each family of options is one parameter
holding an object, grid-searchable by prefix, its shortcuts included.
"""

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
from sklearn.model_selection import GridSearchCV

from skdeepcluster import (
    MLP,
    AutoencoderKMeans,
    ConvNet,
    ImageAugment,
    SelfLabel,
    _checks,
    _estimator,
    _plan,
    _stages,
)
from skdeepcluster._fitted import FittedModelMixin
from skdeepcluster.refine import IDEC

from .conftest import LABEL_FAST

PARAMS = set(AutoencoderKMeans().get_params(deep=False))

#: The estimator's methods that may read its parameters: the scikit-learn API and
#: parameter handling (before a plan exists) and ``_atomic`` (the thread count around
#: a whole fit). Every other method is a stage, or works for one, and reads the plan.
NOT_STAGES = {
    "__init__", "set_params", "fit", "fit_transform", "partial_fit", "_atomic",
    "_validate_fit_data", "_validate_X", "__sklearn_tags__",
}


def _raw_reads(function) -> list[str]:
    """The ``self.<parameter>`` reads in ``function``'s source, as ``'line: name'``."""
    source = textwrap.dedent(inspect.getsource(function))
    first = function.__code__.co_firstlineno
    return [
        f"{first + node.lineno - 1}: self.{node.attr}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in PARAMS
    ]


def test_the_stage_methods_read_no_constructor_parameter():
    own = {
        name: member
        for name, member in vars(AutoencoderKMeans).items()
        if inspect.isfunction(member) and name not in NOT_STAGES
    }
    assert {"_fit", "_partial_fit", "_set_fitted"} <= set(own)
    reads = {name: _raw_reads(method) for name, method in own.items()}
    assert {name: found for name, found in reads.items() if found} == {}


def test_the_stages_never_see_the_estimator():
    tree = ast.parse(Path(_stages.__file__).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    arguments = {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    assert not {"self", "est"} & (names | arguments)


def test_the_plan_resolves_every_auto_into_what_a_stage_uses():
    plan = _plan.resolve_plan(
        AutoencoderKMeans(10), (30_000, 784), stream=False, seeds=_plan.fit_seeds(0),
        partial=False,
    )
    assert isinstance(plan.network, MLP) and plan.network.hidden_layer_sizes == (500, 500, 2000)
    assert plan.reducer.n_components == 10 and plan.clusterer == _plan.GRAPH_OR_KMEANS
    assert isinstance(plan.self_label, SelfLabel) and plan.self_label.augment is None
    assert plan.input_components == 50 and plan.epochs == 13 and plan.refine is None
    for name, value in vars(plan).items():
        assert not (isinstance(value, str) and value == "auto"), name


def test_the_combinations_are_checked_in_one_place_first(monkeypatch):
    seen = []
    monkeypatch.setattr(_plan, "check_params", lambda *a, **k: seen.append(a[0]))
    est = AutoencoderKMeans(3)
    _plan.resolve_plan(est, (100, 4), stream=False, seeds=_plan.fit_seeds(0), partial=False)
    assert seen == [est]
    assert not [name for name in vars(AutoencoderKMeans) if name.startswith("_check_param")]
    assert _checks.check_params.__module__ == "skdeepcluster._checks"


def test_the_estimator_has_at_most_32_parameters():
    assert len(PARAMS) <= 32


@pytest.mark.parametrize(
    "path", sorted(Path(_estimator.__file__).parent.rglob("*.py")), ids=lambda p: p.name
)
def test_no_package_file_is_over_800_lines(path):
    assert len(path.read_text().splitlines()) <= 800


def test_the_class_docstring_is_short():
    assert len(AutoencoderKMeans.__doc__.splitlines()) < 250
    assert FittedModelMixin.__doc__


# ------------------------------------------------------- families by prefix
@pytest.mark.parametrize(
    "component, given, nested, expected",
    [
        ("self_label", "auto", {"rounds": 2}, SelfLabel(rounds=2)),
        ("self_label", True, {"consistency": 5}, SelfLabel(consistency=5)),
        ("architecture", "mlp", {"dropout": 0.1}, MLP(dropout=0.1)),
        ("architecture", "conv", {"channels": (8,)}, ConvNet(channels=(8,))),
        ("augment", None, {"flip": True}, ImageAugment(flip=True)),
        ("refine", "idec", {"gamma": 0.1}, IDEC(gamma=0.1)),
    ],
)
def test_nested_parameters_on_a_shortcut_make_its_object(component, given, nested, expected):
    est = AutoencoderKMeans(**{component: given})
    est.set_params(**{f"{component}__{k}": v for k, v in nested.items()})
    made = getattr(est, component)
    assert type(made) is type(expected) and made.get_params() == expected.get_params()


@pytest.mark.parametrize(
    "component, given",
    [("self_label", False), ("architecture", "auto"), ("architecture", "none"),
     ("refine", None), ("refine", "auto")],
)
def test_nested_parameters_without_an_object_are_refused(component, given):
    est = AutoencoderKMeans(**{component: given})
    with pytest.raises(ValueError, match=f"{component}__x sets a parameter of {component}"):
        est.set_params(**{f"{component}__x": 1})
    assert getattr(est, component) == given


@pytest.mark.filterwarnings("ignore:self_label=SelfLabel")
def test_self_label_rounds_grid_search(blobs):
    X, _ = blobs
    est = AutoencoderKMeans(3, random_state=0, **LABEL_FAST)
    grid = GridSearchCV(est, {"self_label__rounds": [0, 1]}, cv=2).fit(X)
    assert grid.best_params_["self_label__rounds"] in (0, 1)
    assert grid.best_estimator_.self_label.rounds == grid.best_params_["self_label__rounds"]
    assert est.self_label == "auto"  # the search worked on clones
