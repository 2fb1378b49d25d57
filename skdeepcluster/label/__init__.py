"""Self-labelling: a classifier of the clusters behind ``labels_`` and ``predict``.

After the clustering, the self-labelling *strategy* :class:`SelfLabel` trains a
copy of the encoder with a linear layer (a :class:`LabelHead`) to predict the
clusters, so that new data are labelled by the same function as the training
data; then, when asked, neighbour consistency on the neighbour embedding's
graph (SCAN's clustering step) and rounds of self-training on the classifier's
most confident rows. Its hyper-parameters are grid-searched as
``self_label__rounds``; :meth:`SelfLabel.fit_labels` runs it on a module and
data, without an estimator.

The pieces live in private modules, one concern each:

* ``_head``: :class:`LabelHead`, the classifier's training
  (``train_label_head``), the self-training rounds (``self_train``) and the
  batched inference (``predict_labels``);
* ``_consistency``: the neighbour consistency (``train_consistency``);
* ``_strategy``: :class:`SelfLabel` and the rule for keeping a classifier.
"""

from ._head import LabelHead
from ._strategy import SelfLabel

__all__ = ["LabelHead", "SelfLabel"]
