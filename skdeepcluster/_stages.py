"""The stages of :meth:`AutoencoderKMeans.fit <skdeepcluster.AutoencoderKMeans.fit>`.

Each stage is a function of the data and the resolved plan
(:class:`~skdeepcluster._plan.FitPlan`): none reads the estimator's
parameters, so what a fit does is what its plan says. In order:
:func:`pretrain` (build and train the network), encode, :func:`second_stage`
(scaler and reducer), :func:`cluster`, :func:`refine` (optional) and
:func:`self_label` (optional); the estimator sets the fitted attributes.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import torch

from . import _plan
from ._clustering import fit_clusterer, fit_second_stage
from ._communities import fit_graph_communities, prefer_communities
from ._data import StreamSource, TensorSource, split_rows
from ._device import torch_seed_context
from ._networks import IdentityAutoencoder, resolve_image_shape
from ._progress import stage_bar
from ._projection import ProjectedAutoencoder, fit_projection
from ._warn import warn_user
from .embedding import NeighborEmbedding
from .refine import affine_head_from_sklearn
from .training import encode_array, train_autoencoder
from .training._inference import to_tensor


def trainable(module) -> bool:
    """Whether ``module`` has weights to train (an :class:`IdentityAutoencoder` has none)."""
    return any(p.requires_grad for p in module.parameters())


def empty_history() -> dict:
    return {"train_loss": [], "val_loss": [], "best_epoch": None}


def build_network(plan, X):
    """The untrained network of the plan (an identity map when it trains none).

    With ``plan.input_components``, the network of that many features sits
    behind the input's principal components, fitted on (a sample of) ``X``.
    """
    n_features, n_components = X.shape[1], plan.input_components
    if n_components and plan.image_shape is not None:
        resolve_image_shape(plan.image_shape, n_features)  # validated on the input
    if plan.network is None:  # no network: the input (or its principal components) as codes
        if not n_components:
            return IdentityAutoencoder(n_features)
        return _projected(IdentityAutoencoder(n_components), X, plan)
    if not n_components:
        return plan.network.build(n_features, plan.latent_dim, plan.image_shape)
    return _projected(plan.network.build(n_components, plan.latent_dim), X, plan)


def _projected(inner, X, plan):
    mean, components = fit_projection(X, plan.input_components, seed=plan.seeds.projection)
    return ProjectedAutoencoder(inner, mean, components)


def source(X, plan, device):
    """Training data: one tensor on ``device``, or a stream of blocks."""
    if plan.stream:
        return StreamSource(X, device, min(plan.training.batch_size, X.shape[0]))
    return TensorSource(to_tensor(X, device))


def augmenter(augment, plan, n_features: int, seed: int):
    """The batch transform of ``augment`` (an ImageAugment) seeded with ``seed``, or None."""
    if augment is None:
        return None
    return augment.make(plan.image_shape, n_features, seed)


def pretrain(X, plan, previous, callbacks):
    """Stage 1: the trained autoencoder (a copy of ``previous`` to warm-start) and history."""
    if plan.architecture == "none":  # no network, nothing to train
        return build_network(plan, X), empty_history()
    training = plan.training
    X_train, X_val = split_rows(X, training.validation_fraction, plan.seeds.split)
    with torch_seed_context(plan.seeds.init, plan.device):
        if previous is not None and trainable(previous):
            module = copy.deepcopy(previous)  # the old model survives a failure
        else:
            module = build_network(plan, X_train)
        module = module.to(plan.device)
        params = training.loop_params(epochs=plan.epochs, verbose=plan.verbose)
        if len(plan.devices) > 1:
            from .training._distributed import train_autoencoder_distributed

            history = train_autoencoder_distributed(
                module, X_train, devices=plan.devices, optimizer=training.optimizer,
                learning_rate=training.learning_rate, weight_decay=training.weight_decay,
                seed=plan.seeds.batches, X_val=X_val, callbacks=callbacks, **params,
            )
        else:
            history = train_autoencoder(
                module,
                source(X_train, plan, plan.device),
                optimizer=training.make_optimizer(module.parameters()),
                X_val=None if X_val is None else to_tensor(X_val, plan.device),
                generator=torch.Generator().manual_seed(plan.seeds.batches),
                augment=augmenter(plan.augment, plan, X.shape[1], plan.seeds.augment),
                callbacks=callbacks,
                **params,
            )
    return module, history


def partial_train(module, optimizer, X, plan, device, callbacks):
    """One epoch of ``partial_fit`` on ``X`` with ``optimizer`` (none without a network)."""
    if not trainable(module):
        return {"train_loss": []}
    with torch_seed_context(plan.seeds.init, device):  # dropout, without global state
        return train_autoencoder(
            module,
            source(X, plan, device),
            optimizer=optimizer,
            generator=torch.Generator().manual_seed(plan.seeds.batches),
            augment=augmenter(plan.augment, plan, X.shape[1], plan.seeds.augment),
            callbacks=callbacks,
            **plan.training.loop_params(epochs=1, verbose=plan.verbose),
        )


def second_stage(codes, plan):
    """Stage 3: the scaler and the reducer, fitted on the codes."""
    return fit_second_stage(
        codes,
        standardize=plan.standardize,
        reducer=_plan.make_reducer(plan, codes.shape[1]),
        random_state=plan.seeds.cluster,
    )


def cluster(embedding, plan, fitted_stage, previous=None):
    """Stage 4: the fitted clusterer and its centres.

    ``previous`` (the last second stage and centres, from ``partial_fit``)
    warm-starts the clustering when both second stages are affine: the old
    centres are mapped back to codes and into the new embedding, so that
    cluster ids carry over.
    """
    init_centers = None
    if previous is not None and previous[0].is_affine and fitted_stage.is_affine:
        init_centers = fitted_stage.transform(previous[0].inverse_transform(previous[1]))
    with stage_bar("clustering", 1, plan.verbose, unit="fit") as bar:
        if plan.clusterer in (_plan.GRAPH_OR_KMEANS, "graph"):
            fitted = _cluster_graph(embedding, plan, fitted_stage.reducer)
        else:
            fitted = _fit_clusterer(embedding, plan.clusterer, plan, init_centers)[:2]
        bar.update(1)
    return fitted


def _fit_clusterer(embedding, clusterer, plan, init_centers=None):
    """``fit_clusterer`` with the plan's ``n_clusters``, ``n_init`` and seed."""
    return fit_clusterer(
        embedding,
        clusterer=clusterer,
        n_clusters=plan.n_clusters,
        n_init=plan.n_init,
        random_state=plan.seeds.cluster,
        init_centers=init_centers,
    )


def _cluster_graph(embedding, plan, reducer):
    """The communities of the reducer's graph, or k-means.

    ``'graph_or_kmeans'`` keeps k-means unless the communities fit the graph
    better (:func:`~skdeepcluster._communities.prefer_communities`);
    ``'graph'`` falls back to k-means, with a warning, where there are no
    communities (too few samples, or too many clusters).
    """
    rows = reducer.fit_indices_  # the samples of the graph
    communities = fit_graph_communities(
        embedding[rows], reducer.graph_, plan.n_clusters, plan.seeds.communities
    )
    if plan.clusterer == "graph" and communities is None:
        warn_user(
            f"clusterer='graph' found no {plan.n_clusters} communities in the "
            f"neighbour graph of {rows.shape[0]} samples; k-means was used instead."
        )
    if plan.clusterer == _plan.GRAPH_OR_KMEANS or communities is None:
        kmeans = _fit_clusterer(embedding, _plan.kmeans_kind(embedding.shape[0]), plan)
        if not prefer_communities(communities, kmeans[2][rows], reducer.graph_):
            return kmeans[:2]
    return communities, communities.cluster_centers_


def take_graph(reducer):
    """A neighbour embedding's ``graph_`` and ``fit_indices_``, removed from it (else None).

    The graph holds ``n_neighbors`` edges per training row; the fitted
    estimator keeps nothing of the training data's size (its pickle stays
    small), so the reducer it keeps has no ``graph_``. The neighbour
    consistency of self-labelling trains on it after the clustering.
    """
    if isinstance(reducer, NeighborEmbedding) and hasattr(reducer, "graph_"):
        graph = reducer.graph_
        del reducer.graph_
        return graph, reducer.fit_indices_
    return None


def refine(X, module, centers, fitted_stage, plan, callbacks):
    """Stage 5: joint refinement through the affine second stage; centres, embedding, history."""
    strategy, device, training = plan.refine, plan.device, plan.training
    data = source(X, plan, device)
    with torch_seed_context(plan.seeds.refine, device):
        new_centers, history = strategy.refine(
            module,
            data,
            torch.as_tensor(centers, dtype=torch.float32, device=device),
            embed=affine_head_from_sklearn(
                fitted_stage.scaler, fitted_stage.reducer, device=device
            ),
            batch_size=min(training.batch_size, data.n_samples),
            optimizer_factory=functools.partial(
                training.make_optimizer, learning_rate=strategy.learning_rate
            ),
            loss=training.loss,
            generator=torch.Generator().manual_seed(plan.seeds.refine),
            callbacks=callbacks,
            verbose=plan.verbose,
        )
    embedding = fitted_stage.transform(encode_array(module, X, device=device))
    return new_centers.detach().cpu().numpy().astype(np.float64), embedding, history


def self_label(X, module, n_codes, clusters, plan, graph):
    """Stage 6: the plan's :class:`~skdeepcluster.SelfLabel` strategy on the clusters.

    Returns the classifier (None when not kept), its labels of ``X`` and its
    history. A classifier dropped is warned about when self-labelling was
    asked for (``plan.self_label_request``), not under ``'auto'``.
    """
    strategy = plan.self_label
    own = strategy.augment
    augment = None if own is None else functools.partial(augmenter, own, plan, X.shape[1])
    return strategy.fit_labels(
        module, X, clusters, n_codes=n_codes, n_clusters=plan.n_clusters,
        batch_size=plan.training.batch_size,
        optimizer_factory=plan.training.make_optimizer, augmenter=augment, graph=graph,
        seeds=plan.seeds, device=plan.device, verbose=plan.verbose,
        warn=functools.partial(_warn_not_kept, plan.self_label_request),
    )


def _warn_not_kept(request, what, failure, kept):
    """The ``UserWarning`` of a classifier dropped because of ``failure`` (asked for only)."""
    if request is None:
        return  # self_label='auto': dropping the classifier is its rule
    warn_user(
        f"{request} asked for self-labelling, but {what} was not kept: {failure}. "
        f"labels_ and predict are {kept} labels."
    )

