"""Refinement: fine-tune the encoder and the cluster centres together.

After pre-training and a first clustering, a refinement *strategy* trains the
network and the centres jointly through the affine second stage (scaler and
PCA, as an :class:`AffineHead`), with the shared training loop:

* :class:`KMeansLoss` -- reconstruction plus a k-means loss (Song et al., 2013);
* :class:`DEC` -- DEC self-training (Xie et al., 2016);
* :class:`IDEC` -- DEC that keeps the reconstruction loss (Guo et al., 2017).

Each strategy is one module: a small class with its hyper-parameters and an
objective. :meth:`RefinementStrategy.refine` runs any of them on a module and
a tensor, without an estimator.
"""

from ._affine_head import AffineHead, affine_head, affine_head_from_sklearn
from ._base import RefinementStrategy
from ._dec import DEC, IDEC, soft_assignment, target_distribution
from ._kmeans_loss import KMeansLoss, lambda_schedule

__all__ = [
    "DEC",
    "IDEC",
    "AffineHead",
    "KMeansLoss",
    "RefinementStrategy",
    "affine_head",
    "affine_head_from_sklearn",
    "lambda_schedule",
    "soft_assignment",
    "target_distribution",
]
