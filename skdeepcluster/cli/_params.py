"""The estimator parameters that the command line options ask for.

The one place where options become :class:`~skdeepcluster.AutoencoderKMeans`
keyword arguments: ``_estimator_params`` for ``cluster`` and ``_demo_params``
for ``demo``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._args import _parse_hidden, _parse_image_shape, _parse_pca
from ._common import CLIError


def _estimator_params(args: argparse.Namespace, n_features: int) -> dict[str, Any]:
    """The keyword arguments of ``AutoencoderKMeans`` for the ``cluster`` command.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``cluster`` options.
    n_features : int
        The number of features of the data, which ``--image-shape`` must fit.

    Returns
    -------
    params : dict
        Only the parameters that an option sets; the others keep the
        estimator's defaults.

    Raises
    ------
    CLIError
        When an option's value is invalid or this version of
        ``AutoencoderKMeans`` has no such parameter.
    """
    from .. import AutoencoderKMeans

    params: dict[str, Any] = {
        "n_clusters": args.n_clusters,
        "random_state": args.random_state,
        "device": args.device,
        "verbose": int(args.verbose),
    }
    architecture = _architecture(args.architecture, args.hidden_layer_sizes)
    if architecture is not None:
        params["architecture"] = architecture
    for name in ("latent_dim", "epochs", "batch_size", "learning_rate", "refine"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if args.pca_components is not None:
        from sklearn.decomposition import PCA

        n_components = _parse_pca(args.pca_components)
        params["reducer"] = PCA(n_components=n_components, random_state=args.random_state)
    if args.image_shape is not None:
        params["image_shape"] = _parse_image_shape(args.image_shape, n_features)
    supported = AutoencoderKMeans().get_params()
    for name in params:
        if name not in supported:
            option = "--" + name.replace("_", "-")
            raise CLIError(f"{option} is not supported by this version of AutoencoderKMeans.")
    return params


def _demo_params(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``AutoencoderKMeans`` for the ``demo`` command.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``demo`` options.

    Returns
    -------
    params : dict
        Ten clusters, the seed, the device and the progress bars, plus the
        options given.
    """
    params: dict[str, Any] = {
        "n_clusters": 10,
        "random_state": args.random_state,
        "device": args.device,
        "verbose": 0 if args.quiet else 1,  # one progress bar per stage, on stderr
    }
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if args.latent_dim is not None:
        params["latent_dim"] = args.latent_dim
    if args.hidden_layer_sizes is not None:
        params["architecture"] = _architecture(None, args.hidden_layer_sizes)
    return params


def _architecture(name: str | None, hidden: str | None):
    """``--architecture`` and ``--hidden-layer-sizes`` as the ``architecture`` parameter.

    The widths make an :class:`~skdeepcluster.MLP`; with ``--architecture conv``
    or ``none`` (no fully connected network to size) they are refused.
    """
    if hidden is None:
        return name
    if name not in (None, "auto", "mlp"):
        raise CLIError(
            f"--hidden-layer-sizes sizes the fully connected network; it cannot be "
            f"combined with --architecture {name}."
        )
    from .. import MLP

    return MLP(hidden_layer_sizes=_parse_hidden(hidden))
