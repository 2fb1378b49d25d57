"""Training: one loop with callbacks, pre-training, inference and data parallelism.

Pre-training and every refinement strategy run the same loop
(:func:`~skdeepcluster.training._loop.fit_loop`); early stopping, the NaN
guard, learning-rate schedules, gradient clipping and progress bars are
callbacks, and so is anything you pass as ``AutoencoderKMeans(callbacks=[...])``.
"""

from ._augment import ImageAugment
from ._callbacks import (
    Callback,
    EarlyStopping,
    GradientNormClipping,
    LRScheduler,
    NaNGuard,
    ProgressBar,
)
from ._inference import decode_array, encode_array, reconstruct_array
from ._loop import LoopState
from ._optim import LOSSES, OPTIMIZERS, make_optimizer
from ._pretrain import RandomAffine, train_autoencoder

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "Callback",
    "EarlyStopping",
    "GradientNormClipping",
    "ImageAugment",
    "LRScheduler",
    "LoopState",
    "NaNGuard",
    "ProgressBar",
    "RandomAffine",
    "decode_array",
    "encode_array",
    "make_optimizer",
    "reconstruct_array",
    "train_autoencoder",
]
