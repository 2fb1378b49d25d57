"""Deep clustering for scikit-learn users, powered by PyTorch."""

from ._autoencoder_kmeans import AutoencoderKMeans
from ._neighbor_embedding import NeighborEmbedding
from ._networks import ConvAutoencoder, MLPAutoencoder

__version__ = "0.1.0.dev0"

__all__ = [
    "AutoencoderKMeans",
    "ConvAutoencoder",
    "MLPAutoencoder",
    "NeighborEmbedding",
    "__version__",
]
