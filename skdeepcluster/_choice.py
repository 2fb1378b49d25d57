"""``architecture='auto'``: keep the network only where its clusters beat the input's.

Where the plan leaves the choice to the data (:attr:`FitPlan.choice
<skdeepcluster._plan.FitPlan>`), ``fit`` clusters a sample of the rows twice
-- once in the input's own representation (standardized, or its principal
components: what the fit without a network would use), once in the codes of
the network a part of the way through its pre-training -- and scores each
partition without labels (:func:`partition_score`). Pre-training goes on only
where the network's partition scores higher; otherwise it stops there and the
fit goes on without a network, as with ``architecture='none'``.

The validation of the criterion (every data set of the suite, both candidates,
the score and the ACC) is in ``benchmarks/results/suite.md``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from . import _stages
from ._fitted import FittedModelMixin
from ._projection import sample_rows
from .training import Callback, encode_array

#: Neighbours per row of the score's neighbour graph.
SCORE_NEIGHBORS = 15


@dataclass(frozen=True)
class ArchitectureChoice:
    """What ``architecture`` a fit used, and why (the fitted ``architecture_choice_``).

    Attributes
    ----------
    architecture : str
        ``'none'``, ``'mlp'``, ``'conv'`` or ``'module'``.
    reason : str
        Why, in a few words.
    scores : dict
        The label-free score of each candidate's partition of the sample
        (``{'none': ..., 'mlp': ...}``): only ``'none'`` where the input's
        partition scored 1 (no network was trained), empty where nothing was
        measured.
    n_rows : int or None
        The rows of the sample the candidates were scored on.
    epoch : int or None
        The pre-training epoch at which the network was scored (None where it
        was not trained: the input's partition had the highest score there is).
    seconds : float
        What the choice cost: clustering and scoring the sample, and the
        pre-training epochs of a network that was then dropped.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdeepcluster import AutoencoderKMeans
    >>> X, _ = make_blobs(300, n_features=4, centers=3, random_state=0)
    >>> print(AutoencoderKMeans(n_clusters=3, random_state=0).fit(X).architecture_choice_)
    architecture='none': fewer than 2,000 rows of fewer than 256 features
    """

    architecture: str
    reason: str
    scores: dict
    n_rows: int | None = None
    epoch: int | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        text = f"architecture={self.architecture!r}: {self.reason}"
        if self.scores:
            scores = ", ".join(f"{k} {v:.3f}" for k, v in self.scores.items())
            probe = "" if self.epoch is None else f"network scored after epoch {self.epoch}; "
            text += (
                f" (scores on {self.n_rows:,} rows: {scores}; {probe}"
                f"the choice took {self.seconds:.1f} s)"
            )
        return text


def partition_score(codes: np.ndarray, labels: np.ndarray) -> float:
    """How well ``labels`` follow the neighbourhoods of ``codes``: a label-free score in [0, 1].

    The share of each row's ``SCORE_NEIGHBORS`` nearest neighbours (in the
    standardized codes) that carry its label, averaged over the rows. A
    representation whose neighbourhoods hold the clusters scores high;
    where the clusters cut through neighbourhoods, it scores low.
    """
    codes = np.asarray(codes, dtype=np.float64)
    scale = codes.std(axis=0)
    codes = (codes - codes.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    k = min(SCORE_NEIGHBORS, codes.shape[0] - 1)
    neighbors = NearestNeighbors(n_neighbors=k + 1).fit(codes)
    idx = neighbors.kneighbors(codes, return_distance=False)[:, 1:]
    return float((labels[idx] == labels[:, None]).mean())


def sample_partition(codes: np.ndarray, plan) -> np.ndarray:
    """The fit's second stage and clusterer on the sample's codes: its labels."""
    fitted, embedding = _stages.second_stage(codes, plan)
    clusterer, centers = _stages.cluster(embedding, plan, fitted)
    return FittedModelMixin._predict_embedding(embedding, clusterer, centers)


def _score(codes, plan) -> float:
    return partition_score(codes, sample_partition(codes, plan))


class _Probe(Callback):
    """Scores the network's codes of the sample after one epoch; stops it where it loses."""

    stage = "pretrain"

    def __init__(self, sample, choice, input_score):
        self.sample = sample
        self.choice = choice
        self.input_score = input_score

    def on_epoch_end(self, state):
        if state.epoch + 1 != self.choice.probe_epoch:
            return
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # training's random streams stay as they are
            codes = encode_array(state.module, self.sample, device=self.choice.sample_plan.device)
            self.network_score_ = _score(codes, self.choice.sample_plan)
        state.module.train()
        self.seconds_ = time.perf_counter() - start
        if self.network_score_ <= self.input_score:
            state.stop = True


def given(plan) -> ArchitectureChoice:
    """The record of a fit whose plan chose the architecture by itself."""
    return ArchitectureChoice(plan.architecture, plan.architecture_reason, {})


def pretrain_or_drop(X, plan, previous, callbacks):
    """Stage 1 with the choice: ``(plan, network, history, ArchitectureChoice)``.

    Without a choice to make, this is :func:`~skdeepcluster._stages.pretrain`.
    With one, the input's partition of the sample is scored first, then the
    network's after ``probe_epoch`` epochs of pre-training; where the network
    does not score higher, pre-training stops and the fit goes on with the
    plan without a network (and the input's representation, already built).
    Where the input's partition scores 1 (every neighbour of every row in its
    cluster), no network can score higher, so none is trained at all.
    """
    choice = plan.choice
    if choice is None:
        return (plan, *_stages.pretrain(X, plan, previous, callbacks), given(plan))
    start = time.perf_counter()
    sample = sample_rows(X, choice.n_rows, plan.seeds.choice)
    identity = _stages.build_network(choice.fallback, X)
    input_score = _score(encode_array(identity, sample, device=plan.device), choice.sample_plan)
    seconds = time.perf_counter() - start
    if input_score >= 1.0:  # the highest score there is: the network cannot beat it
        record = ArchitectureChoice(
            "none", "the input's clusters hold every row's neighbours: no network can score "
            "higher", {"none": input_score}, sample.shape[0], None, seconds,
        )
        return _dropped(plan, identity, record)
    probe = _Probe(sample, choice, input_score)
    start = time.perf_counter()
    module, history = _stages.pretrain(X, plan, previous, [*callbacks, probe])
    scores = {"none": input_score, plan.architecture: getattr(probe, "network_score_", np.nan)}
    kept = not scores[plan.architecture] <= input_score  # a NaN keeps the network
    if kept:
        seconds += getattr(probe, "seconds_", 0.0)
        record = ArchitectureChoice(
            plan.architecture, "the network's clusters score higher than the input's",
            scores, sample.shape[0], choice.probe_epoch, seconds,
        )
        _report(plan, record)
        return plan, module, history, record
    seconds += time.perf_counter() - start  # the pre-training that is dropped
    record = ArchitectureChoice(
        "none", "the input's clusters score at least as high as the network's", scores,
        sample.shape[0], choice.probe_epoch, seconds,
    )
    return _dropped(plan, identity, record)


def _dropped(plan, identity, record):
    """The fit goes on without a network: the fallback plan (with the record's reason) and
    the input's representation."""
    _report(plan, record)
    fallback = replace(plan.choice.fallback, architecture_reason=record.reason)
    return fallback, identity, _stages.empty_history(), record


def _report(plan, record) -> None:
    if plan.verbose:
        print(str(record), file=sys.stderr)
