"""What a fitted :class:`~skdeepcluster.AutoencoderKMeans` does: inference and pickling.

The estimator's ``fit`` (``_estimator.py``) sets the fitted attributes; this
mixin reads them: ``transform``, ``predict``, ``score``, ``reconstruct``,
``inverse_transform``, and pickles that load on a machine without the GPU
they were fitted on. Inference runs batch by batch on the fitted device, each
row's result independent of the others in its batch.
"""

from __future__ import annotations

import copy

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from . import _partitioned as partitioned
from . import _plan
from ._clustering import assign_nearest
from ._device import available_device, torch_threads
from ._networks import _module_device
from ._partitioned import is_dask_collection
from .label._head import predict_labels
from .training import decode_array, encode_array, reconstruct_array

_FLOAT_DTYPES = [np.float64, np.float32]


class FittedModelMixin:
    """Inference and pickling of the fitted model (see the module docstring).

    Needs ``_validate_X`` from the estimator and its fitted attributes.
    """

    # -------------------------------------------------------- inference
    def _check_new_X(self, X):
        check_is_fitted(self)
        return self._validate_X(X, reset=False, stream=_plan.streams(self, X))

    def _transform(self, X):
        return self._embed(self._check_new_X(X))

    def _embed(self, X):
        """The embedding of validated ``X``."""
        with torch_threads(self.n_jobs):
            codes = encode_array(self.autoencoder_, X, device=self.device_)
        return self.second_stage_.transform(codes)

    def _labels(self, X, embedding=None):
        """The clusters of validated ``X``: the self-labelling head's, or on its embedding."""
        # getattr: models pickled before self-labelling have no label_head_.
        if getattr(self, "label_head_", None) is not None:
            with torch_threads(self.n_jobs):
                return predict_labels(self.label_head_, X, device=self.device_)
        if embedding is None:
            embedding = self._embed(X)
        return self._predict_embedding(embedding, self.clusterer_, self.cluster_centers_)

    def predict(self, X):
        """Cluster of each sample: the self-labelling classifier, or the clusterer on the embedding.

        With ``label_head_`` (see ``self_label``), the classifier's most
        likely cluster; otherwise the nearest centre in the embedding, or the
        clusterer's ``predict`` on it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data; a Dask array or DataFrame is labelled block by block, lazily,
            on the workers (see :ref:`scaling`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster index of each sample (a Dask array, or a Dask Series for a
            Dask DataFrame, equal to the in-memory labels bit for bit).
        """
        if is_dask_collection(X):
            check_is_fitted(self)
            return partitioned.predict(self, X)
        return self._labels(self._check_new_X(X))

    @staticmethod
    def _predict_embedding(embedding, clusterer, centers):
        """The cluster of each row of an embedding (``predict`` after ``transform``).

        The clusterer's ``predict`` where it has one; else (k-means, or a
        clusterer without ``predict`` such as agglomerative clustering) the
        nearest centre, for new data and the training samples alike.
        """
        if clusterer is not None and hasattr(clusterer, "predict"):
            return np.asarray(clusterer.predict(embedding), dtype=np.int64)
        labels, _ = assign_nearest(embedding, centers)
        return labels

    def score(self, X, y=None):
        """Negative k-means objective of ``X`` on the fitted centres.

        Higher is better, so model selection without labels (e.g.
        :class:`~sklearn.model_selection.GridSearchCV`) works out of the box.
        See the Notes of the class for caveats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.
        y : Ignored
            Not used.

        Returns
        -------
        score : float
            Minus the sum of squared distances of the samples to the centre of
            their cluster (:meth:`predict`): the nearest centre for k-means;
            on the training data, ``-inertia_``.
        """
        X = self._check_new_X(X)
        embedding = self._embed(X)
        labels = self._labels(X, embedding)
        return -float(((embedding - self.cluster_centers_[labels]) ** 2).sum())

    def reconstruct(self, X):
        """Pass ``X`` through the autoencoder: the decoded inputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct (new or seen in ``fit``).

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
            ``decode(encode(X))``, in the feature space of ``X``.
        """
        X = self._check_new_X(X)
        with torch_threads(self.n_jobs):
            return reconstruct_array(self.autoencoder_, X, device=self.device_)

    def inverse_transform(self, X):
        """Decode embeddings back to the input space.

        The second stage is inverted first (scaler, PCA or a reducer with
        ``inverse_transform``), then the decoder is applied.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_embedding)
            Embeddings, as returned by ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            Decoded samples.
        """
        check_is_fitted(self)
        embedding = check_array(X, dtype=_FLOAT_DTYPES)
        n_embedding = self.cluster_centers_.shape[1]
        if embedding.shape[1] != n_embedding:
            raise ValueError(
                f"X has {embedding.shape[1]} features, but the embedding has {n_embedding}."
            )
        codes = self.second_stage_.inverse_transform(embedding)
        with torch_threads(self.n_jobs):
            return decode_array(self.autoencoder_, codes, device=self.device_)

    # ----------------------------------------------------------- pickling
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never alter the live estimator
        # Lean pickles: partial_fit's optimizer state (as large as the network) stays out.
        state.pop("_optimizer", None)
        for name in ("autoencoder_", "label_head_"):
            module = state.get(name)
            if module is not None and _module_device(module).type != "cpu":
                # Pickle CPU weights so the model loads on machines without a GPU.
                state[name] = copy.deepcopy(module).to("cpu")
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "autoencoder_" in state:
            device = available_device(state["device_"])
            self.autoencoder_ = self.autoencoder_.to(device).eval()
            if getattr(self, "label_head_", None) is not None:
                self.label_head_ = self.label_head_.to(device).eval()
            self.device_ = device

