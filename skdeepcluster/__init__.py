"""Deep clustering for scikit-learn users, powered by PyTorch."""

# First: asks oneMKL for thread-count-independent products before any torch work.
from . import _numerics  # noqa: F401
from ._architecture import MLP, ConvNet
from ._choice import ArchitectureChoice
from ._estimator import AutoencoderKMeans
from ._networks import ConvAutoencoder, IdentityAutoencoder, MLPAutoencoder
from ._projection import ProjectedAutoencoder
from .embedding import NeighborEmbedding
from .label import SelfLabel
from .training import ImageAugment

__version__ = "0.1.0.dev0"

__all__ = [
    "ArchitectureChoice",
    "AutoencoderKMeans",
    "ConvAutoencoder",
    "ConvNet",
    "IdentityAutoencoder",
    "ImageAugment",
    "MLP",
    "MLPAutoencoder",
    "NeighborEmbedding",
    "ProjectedAutoencoder",
    "SelfLabel",
    "__version__",
]
