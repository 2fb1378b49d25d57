"""Warnings that point at the user's code, however deep in the package they are raised."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import sklearn

#: The frames skipped: this package's, and scikit-learn's ``_fit_context`` around ``fit``.
_SKIPPED = (str(Path(__file__).resolve().parent), str(Path(sklearn.__file__).resolve().parent))


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside the package
    (and scikit-learn's wrappers).

    (Python 3.12's ``skip_file_prefixes`` does this; the package supports 3.10.)
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
        _SKIPPED
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
