"""Deep clustering for scikit-learn users, powered by PyTorch."""

from ._autoencoder_kmeans import AutoencoderKMeans
from ._networks import MLPAutoencoder

__version__ = "0.1.0.dev0"

__all__ = ["AutoencoderKMeans", "MLPAutoencoder", "__version__"]
