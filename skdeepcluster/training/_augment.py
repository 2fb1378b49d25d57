"""Data augmentation as an object: what :class:`~skdeepcluster.AutoencoderKMeans` draws per batch.

``augment=ImageAugment(shift=0.1, flip=True)`` is one object shared by the
pre-training and the self-labelling stage (``SelfLabel(augment='auto')``), a
small scikit-learn-style object grid-searched as ``augment__shift``. The
estimator calls :meth:`ImageAugment.make` with the image shape and a seed of
the fit's random streams to get the batch transform (a
:class:`~skdeepcluster.training.RandomAffine`).
"""

from __future__ import annotations

from numbers import Real

import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval

from .._networks import resolve_image_shape
from ._pretrain import RandomAffine


class ImageAugment(BaseEstimator):
    """Random shifts, rotations and mirroring of images given as flat rows.

    Each image of a batch gets its own transform, drawn from the fit's
    random streams; the network learns codes that do not change with them.
    Needs the estimator's ``image_shape``.

    Parameters
    ----------
    shift : float in (0, 0.5), default=0.1
        Largest shift, as a fraction of the image's height and width. Small
        values (0.05-0.1) suit centred objects such as digits.
    rotation : float >= 0 or None, default=None
        Largest rotation, in degrees; None is ``100 * shift`` (10 degrees at
        the default shift). Set 0 where orientation carries the class.
    flip : bool, default=False
        Mirror half of the images left to right: for data whose classes are
        mirror-symmetric (clothes, natural images), not digits or text.

    See Also
    --------
    skdeepcluster.training.RandomAffine : The batch transform it makes.

    Examples
    --------
    >>> from skdeepcluster import AutoencoderKMeans, ImageAugment
    >>> model = AutoencoderKMeans(10, image_shape=(1, 28, 28),
    ...                           augment=ImageAugment(shift=0.1, flip=True))
    >>> model.get_params()["augment__flip"]
    True
    """

    _parameter_constraints: dict = {
        "shift": [Interval(Real, 0, 0.5, closed="neither")],
        "rotation": [Interval(Real, 0, None, closed="left"), None],
        "flip": ["boolean"],
    }

    def __init__(self, shift=0.1, *, rotation=None, flip=False):
        self.shift = shift
        self.rotation = rotation
        self.flip = flip

    def make(self, image_shape, n_features: int, seed: int) -> RandomAffine:
        """The batch transform for rows of ``n_features`` pixels of ``image_shape``, seeded."""
        rotation = 100.0 * self.shift if self.rotation is None else self.rotation
        return RandomAffine(
            resolve_image_shape(image_shape, n_features),
            shift=self.shift,
            rotation=rotation,
            flip=self.flip,
            generator=torch.Generator().manual_seed(seed),
        )
