"""Self-labelling as a strategy object: its budgets and weights, and the stage it runs.

:class:`SelfLabel` is a small scikit-learn-style object (``get_params``,
``set_params``, ``clone``) holding the hyper-parameters of the self-labelling
stage, so that ``AutoencoderKMeans(self_label=SelfLabel(rounds=6))``
grid-searches as ``self_label__rounds``. Its :meth:`SelfLabel.fit_labels` runs
the stage on a trained network and the clusterer's labels: the classifier of
the clusters (:func:`~skdeepcluster.label._head.train_label_head`), then the
neighbour consistency (:func:`~skdeepcluster.label._consistency.train_consistency`)
and the self-training rounds (:func:`~skdeepcluster.label._head.self_train`)
asked for, each kept only where it learnt something (:func:`head_failure`).
The estimator hands it factories (the optimizer, the augmentation), so it
runs without an estimator too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from torch import nn

from ._consistency import train_consistency
from ._head import LabelHead, predict_labels, self_train, train_label_head

#: Signature of ``warn``: ``warn(what, failure, kept)`` says that ``what`` (a
#: classifier) was not kept because of ``failure``, and whose labels (``kept``) stay.
WarnNotKept = Callable[[str, str, str], None]


class SelfLabel(BaseEstimator):
    """Self-labelling strategy: a classifier of the clusters behind ``labels_`` and ``predict``.

    A copy of the trained encoder with a linear layer (a
    :class:`~skdeepcluster.label.LabelHead`) learns to predict the clusterer's
    labels of the training rows, with label-smoothed cross-entropy (as in the
    last step of SCAN, Van Gansbeke et al., 2020). The classifier is one
    function for the training rows and new rows, so new data are labelled as
    well as the fit's, where the neighbour embedding places them less well. It
    is kept only where it learnt the clustering (``min_agreement``). Then,
    when asked, two further trainings of a copy of it, each kept only where it
    neither diverged nor emptied a cluster: ``consistency`` steps of neighbour
    consistency on the neighbour embedding's graph (SCAN's clustering step:
    each row and a neighbour get the same cluster), then ``rounds`` rounds of
    self-training on the classifier's most confident rows. Run it through
    ``AutoencoderKMeans(self_label=SelfLabel(...))``, or with
    :meth:`fit_labels` on a module and data.

    Parameters
    ----------
    steps : int >= 1, default=300
        Optimisation steps (batches of the estimator's ``batch_size``) of the
        classifier of the clusters, whatever the number of rows: the labels
        are a function of codes the trained encoder already nearly separates.
        More steps help little; fewer save time on large data.
    max_epochs : int >= 1, default=15
        ... but at most this many passes over the rows, so that small data
        do not take hundreds of passes. Raise it (with ``steps``) when the
        classifier is dropped on small data for not reaching ``min_agreement``.
    label_smoothing : float in [0, 1), default=0.1
        Label smoothing of the cross-entropy of the classifier and of the
        self-training rounds: the classifier does not chase the last training
        labels with ever larger logits, which is what makes it generalise to
        new rows. 0 turns it off; values up to about 0.3 behave alike.
    min_agreement : float in [0, 1], default=0.95
        The classifier is kept only when it gives at least this share of the
        training rows the clusterer's label (and leaves no cluster empty);
        below, it did not learn the clustering (too few steps on tiny data,
        clusters it cannot tell apart) and the clusterer's labels stay. Lower
        it only to keep a classifier of clusters that overlap.
    consistency : int >= 0, default=0
        Steps of neighbour consistency after the classifier (0: none), on the
        neighbour embedding's graph (the estimator's reducer must be one).
        Try a few thousand where the clusters cut the data where the classes
        do not (e.g. clothes images), best with augmentation.
    consistency_learning_rate : float > 0, default=0.1
        Learning rate of the neighbour consistency, as a share of the
        estimator's ``learning_rate`` (SCAN's 1e-4 against the estimator's
        default 1e-3). Lower it if the consistency loss diverges.
    entropy_weight : float >= 0, default=5.0
        Weight of the entropy of the clusters' mean predicted distribution in
        the neighbour consistency's loss, which keeps the clusters from
        collapsing into a few: SCAN's value for 10 clusters. Raise it if
        consistency empties clusters; 0 lets them collapse.
    rounds : int >= 0, default=0
        Rounds of self-training after the classifier (and the consistency;
        0: none). Each round labels the rows with the classifier, trains it on
        the most confident of each cluster and relabels every row, so that
        what it learnt from its surest rows corrects the doubtful ones. About
        six rounds, with augmentation, suit image data.
    round_steps : int >= 1, default=1000
        Optimisation steps of each round, with a cosine learning rate from the
        estimator's to 0.
    round_max_epochs : int >= 1, default=50
        ... but at most this many passes over the round's rows (small data).
    first_share : float in (0, 1], default=0.5
        Share of each cluster's rows, the most confident ones, that the first
        round trains on.
    share_step : float >= 0, default=0.1
        How much the share grows each round (capped at all rows): with the
        defaults, all rows from the sixth round on. 0 keeps ``first_share``.
    augment : 'auto', None or an augmentation object, default='auto'
        Batch augmentation of the neighbour consistency and the
        self-training: ``'auto'`` uses the estimator's ``augment``, None
        none, and an object with a ``make`` method (such as
        :class:`~skdeepcluster.ImageAugment`) its own. The classifier of the
        clusters itself is trained without augmentation.

    See Also
    --------
    skdeepcluster.refine.RefinementStrategy : The refinement strategies, built
        the same way.

    Notes
    -----
    Measurements of these settings: the user guide's Self-labelling and
    Neighbour consistency sections and ``benchmarks/results/suite.md``.

    Examples
    --------
    >>> from sklearn.base import clone
    >>> from skdeepcluster.label import SelfLabel
    >>> strategy = SelfLabel(rounds=6)
    >>> strategy.rounds
    6
    >>> strategy.get_params()["consistency"]
    0
    >>> clone(strategy).set_params(consistency=3000).get_params()["consistency"]
    3000
    """

    _parameter_constraints: dict = {
        "steps": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "min_agreement": [Interval(Real, 0, 1, closed="both")],
        "consistency": [Interval(Integral, 0, None, closed="left")],
        "consistency_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "rounds": [Interval(Integral, 0, None, closed="left")],
        "round_steps": [Interval(Integral, 1, None, closed="left")],
        "round_max_epochs": [Interval(Integral, 1, None, closed="left")],
        "first_share": [Interval(Real, 0, 1, closed="right")],
        "share_step": [Interval(Real, 0, None, closed="left")],
        "augment": [StrOptions({"auto"}), None, HasMethods(["make"])],
    }

    def __init__(
        self, *, steps=300, max_epochs=15, label_smoothing=0.1, min_agreement=0.95,
        consistency=0, consistency_learning_rate=0.1, entropy_weight=5.0, rounds=0,
        round_steps=1000, round_max_epochs=50, first_share=0.5, share_step=0.1, augment="auto",
    ):
        self.steps = steps
        self.max_epochs = max_epochs
        self.label_smoothing = label_smoothing
        self.min_agreement = min_agreement
        self.consistency = consistency
        self.consistency_learning_rate = consistency_learning_rate
        self.entropy_weight = entropy_weight
        self.rounds = rounds
        self.round_steps = round_steps
        self.round_max_epochs = round_max_epochs
        self.first_share = first_share
        self.share_step = share_step
        self.augment = augment

    def fit_labels(
        self,
        module: nn.Module,
        X,
        clusters: np.ndarray,
        *,
        n_codes: int,
        n_clusters: int,
        batch_size: int,
        optimizer_factory: Callable[..., torch.optim.Optimizer],
        augmenter: Callable[[int], Callable] | None,
        graph: tuple | None,
        seeds,
        device: torch.device,
        verbose: int = 0,
        warn: WarnNotKept | None = None,
    ) -> tuple[LabelHead | None, np.ndarray, dict[str, list[float]]]:
        """Train the classifier of ``clusters`` and the further trainings asked for.

        Parameters
        ----------
        module : torch.nn.Module
            Trained autoencoder with ``encode``; not changed (the classifier
            trains a copy).
        X : ndarray or memmap of shape (n_samples, n_features)
            The training rows (float32), read in row order.
        clusters : ndarray of shape (n_samples,)
            The clusterer's labels of ``X``'s rows (int64, ``0..n_clusters-1``).
        n_codes : int
            Width of the codes ``module.encode`` returns.
        n_clusters : int
            Number of clusters (the classifier's logits).
        batch_size : int
            Rows per optimisation step.
        optimizer_factory : callable
            ``optimizer_factory(params, learning_rate_scale=1.0)`` returns a
            torch optimizer of ``params`` at the estimator's learning rate
            times ``learning_rate_scale``; the neighbour consistency passes
            ``consistency_learning_rate``.
        augmenter : callable or None
            ``augmenter(seed)`` returns the batch transform of the neighbour
            consistency and the self-training (None: no augmentation); the
            estimator builds it from ``augment``.
        graph : tuple (scipy.sparse.csr_matrix, ndarray) or None
            The neighbour embedding's ``graph_`` and ``fit_indices_`` (the
            sorted rows of ``X`` it is over); needed when ``consistency > 0``.
        seeds : object
            With int attributes ``self_label`` (the classifier's weights, rows
            and batches), ``consistency`` and ``self_train`` (the further
            trainings' random streams), e.g. the estimator's fit seeds.
        device : torch.device
            Where the classifier trains.
        verbose : int, default=0
            ``> 0`` shows a progress bar per training.
        warn : callable or None, default=None
            ``warn(what, failure, kept)``, called (directly from this method)
            when a classifier is not kept: ``what`` names it, ``failure`` says
            why, ``kept`` whose labels stay. None: no call.

        Returns
        -------
        head : LabelHead or None
            The classifier (eval mode), or None where the first one was not
            kept.
        labels : ndarray of shape (n_samples,)
            Its labels of ``X`` (int64), or ``clusters`` itself without a head.
        history : dict
            Lists of per-epoch losses: ``'self_label_loss'``, and
            ``'consistency_loss'`` and ``'self_train_loss'`` when they ran.
        """
        self._validate_params()
        if self.consistency and graph is None:
            raise ValueError(
                f"self_label__consistency={self.consistency} trains on the neighbour "
                "embedding's graph, but graph is None: pass the reducer's graph_ and "
                "fit_indices_, or set consistency=0."
            )
        head, history = train_label_head(
            module, X, clusters, n_codes=n_codes, n_clusters=n_clusters,
            batch_size=batch_size, optimizer_factory=optimizer_factory,
            seed=seeds.self_label, device=device, verbose=verbose, steps=self.steps,
            max_epochs=self.max_epochs, label_smoothing=self.label_smoothing,
        )
        labels = None if head is None else predict_labels(head, X, device=device)
        failure = head_failure(labels, clusters, min_agreement=self.min_agreement)
        if failure is not None:
            if warn is not None:
                warn("the self-labelling classifier", failure, "the clusterer's")
            return None, clusters, history
        shared = dict(batch_size=batch_size, augment=augmenter, device=device, verbose=verbose)
        for name, train, kwargs in self._further_trainings(optimizer_factory, graph, seeds):
            trained, train_history = train(head, X, **shared, **kwargs)
            history.update(train_history)
            trained_labels = None if trained is None else predict_labels(trained, X, device=device)
            failure = head_failure(trained_labels, labels, min_agreement=0.0)
            if failure is None:
                head, labels = trained, trained_labels
            elif warn is not None:
                what = f"the classifier trained by self_label__{name}={getattr(self, name)}"
                warn(what, failure, "the self-labelling classifier's")
        return head, labels, history

    def _further_trainings(self, optimizer_factory, graph, seeds) -> list[tuple]:
        """The trainings after the classifier, in order: ``(name, train, kwargs)``.

        ``name`` is the parameter that asked for it, ``train`` the function
        (:func:`train_consistency` or :func:`self_train`, called as
        ``train(head, X, batch_size=..., augment=..., device=..., verbose=...,
        **kwargs)``).
        """
        trainings = []
        if self.consistency:
            csr_graph, rows = graph
            trainings.append(("consistency", train_consistency, dict(
                graph=csr_graph, rows=rows, n_steps=self.consistency,
                optimizer_factory=functools.partial(
                    optimizer_factory, learning_rate_scale=self.consistency_learning_rate
                ),
                seed=seeds.consistency, entropy_weight=self.entropy_weight,
            )))
        if self.rounds:
            trainings.append(("rounds", self_train, dict(
                n_rounds=self.rounds, optimizer_factory=optimizer_factory,
                seed=seeds.self_train, steps=self.round_steps,
                max_epochs=self.round_max_epochs, first_share=self.first_share,
                share_step=self.share_step, label_smoothing=self.label_smoothing,
            )))
        return trainings

    def _requested_further(self) -> str | None:
        """The further trainings asked for, as ``'self_label__name=value'`` joined by
        ``' and '`` (e.g. ``'self_label__consistency=3000 and self_label__rounds=6'``),
        or None."""
        asked = [
            f"self_label__{name}={getattr(self, name)}"
            for name in ("consistency", "rounds")
            if getattr(self, name)
        ]
        return " and ".join(asked) or None


def head_failure(labels, clusters, *, min_agreement: float = 0.95) -> str | None:
    """Why a classifier of ``clusters`` is not kept (None: it is).

    ``labels`` are its labels of the training rows (None: its training
    diverged). It is dropped when it leaves a cluster empty or gives fewer
    than ``min_agreement`` of the rows their cluster (``SelfLabel``'s
    ``min_agreement`` for the first classifier; 0 for the further trainings,
    which may move rows to other clusters but not empty one).
    """
    if labels is None:
        return "its training diverged"
    n_clusters, n_found = np.unique(clusters).size, np.unique(labels).size
    if n_found < n_clusters:
        return f"it leaves {n_clusters - n_found} of the {n_clusters} clusters empty"
    agreement = float(np.mean(labels == clusters))
    if agreement < min_agreement:
        return (
            f"it gives only {agreement:.3f} of the training samples their cluster, below "
            f"the {min_agreement:g} it must reach (it did not learn the clustering)"
        )
    return None
