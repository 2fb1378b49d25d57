"""Inference on Dask collections, partition by partition, where the data live.

``model.predict(dask_array)`` and ``model.transform(dask_array)`` (or a Dask
DataFrame) return a lazy Dask collection: each block is labelled by the
in-memory ``predict`` / ``transform`` on the worker that holds it. The fitted
model enters the task graph once, as one ``dask.delayed`` object, so a
distributed scheduler ships it to each worker once (not with every task).
The results equal the in-memory ones bit for bit: a row's code, embedding and
label depend on that row alone (the batch-exact inference of
:mod:`skdeepcluster.training._inference`), so neither the block boundaries
nor the worker change them.

Native rather than through ``dask_ml.wrappers.ParallelPostFit``: the
estimator itself accepts the collections users hold (no wrapper to fit
through, no extra dependency), checks the number of features before building
the graph, and keeps the model out of every task's payload.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.utils.validation import _check_n_features


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask array or DataFrame (without importing Dask when it is not)."""
    if "dask" not in sys.modules:
        return False
    from dask.base import is_dask_collection as dask_collection

    return dask_collection(X) and (hasattr(X, "map_blocks") or hasattr(X, "map_partitions"))


def _labels_of_block(block, model):
    return model.predict(block)


def _embedding_of_block(block, model):
    return model.transform(block)


def predict(model, X):
    """``model.predict`` of each block or partition of ``X``: a lazy Dask array or Series."""
    import dask

    _check_n_features(model, X, reset=False)  # before any work, as in memory
    shipped = dask.delayed(model, pure=True)
    if hasattr(X, "map_partitions"):  # a Dask DataFrame: a Series of labels per partition
        return X.map_partitions(_series_of_labels, shipped, meta=("label", np.int64))
    X = X.rechunk({1: -1})  # all the columns of a row in one block
    return X.map_blocks(
        _labels_of_block, shipped, dtype=np.int64, drop_axis=1,
        meta=np.empty((0,), dtype=np.int64),
    )


def transform(model, X):
    """``model.transform`` of each block or partition of ``X``: a lazy Dask array or DataFrame."""
    import dask

    _check_n_features(model, X, reset=False)
    shipped = dask.delayed(model, pure=True)
    n_out = model.cluster_centers_.shape[1]
    if hasattr(X, "map_partitions"):
        names = list(model.get_feature_names_out())
        meta = _empty_frame(X, names)
        return X.map_partitions(_frame_of_embedding, shipped, names, meta=meta)
    X = X.rechunk({1: -1})
    return X.map_blocks(
        _embedding_of_block, shipped, dtype=np.float64, chunks=(X.chunks[0], (n_out,)),
        meta=np.empty((0, 0), dtype=np.float64),
    )


def _series_of_labels(frame, model):
    import pandas as pd

    return pd.Series(model.predict(frame), index=frame.index, name="label", dtype=np.int64)


def _frame_of_embedding(frame, model, names):
    import pandas as pd

    return pd.DataFrame(model.transform(frame), index=frame.index, columns=names)


def _empty_frame(X, names):
    import pandas as pd

    return pd.DataFrame(
        np.zeros((0, len(names))), columns=names, index=X._meta.index[:0]
    )
