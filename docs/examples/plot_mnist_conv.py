"""
==========================================
A convolutional autoencoder on MNIST
==========================================

For images, a convolutional autoencoder (``image_shape=(C, H, W)``) exploits the
spatial structure that a fully connected network has to learn from scratch. The
data stay a 2-D array, one flattened image per row.

The example uses 2,000 images of the MNIST test set, read with
:func:`skdeepcluster.datasets.load_mnist` from local IDX files. Where the files
are not found it falls back to scikit-learn's digits, upsampled to 16x16, so that
it always runs; point ``MNIST_DIRS`` (or the ``SKDEEPCLUSTER_DATA`` environment
variable) at your copy of MNIST, or pass ``download=True`` to
:func:`~skdeepcluster.datasets.load_mnist` to fetch it.
"""

# %%
# Data
# ----
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skdeepcluster import AutoencoderKMeans, ConvNet
from skdeepcluster.datasets import load_mnist
from skdeepcluster.metrics import clustering_scores
from skdeepcluster.plotting import plot_cluster_montage, plot_reconstructions

# Folders tried in turn (relative to where the script runs), then the data home.
MNIST_DIRS = ["../../../shared/data/mnist", "../../shared/data/mnist", None]
N_SAMPLES = 2000


def load_images():
    for path in MNIST_DIRS:
        if path is not None and not Path(path).is_dir():
            continue
        try:
            X, y = load_mnist(path=path, subset="test", return_X_y=True)
        except FileNotFoundError:
            continue
        return X[:N_SAMPLES], y[:N_SAMPLES], (1, 28, 28), "MNIST"
    print("MNIST files not found: using scikit-learn's digits, upsampled to 16x16.")
    X, y = load_digits(return_X_y=True)
    images = np.kron(X.reshape(-1, 8, 8) / 16.0, np.ones((2, 2)))
    return images.reshape(len(X), -1), y, (1, 16, 16), "digits"


X, y, image_shape, name = load_images()
print(f"{name}: X {X.shape}, values in [{X.min():.0f}, {X.max():.0f}], image {image_shape}")

# %%
# Fit
# ---
# Two stride-2 convolutions with 16 and 32 channels, a 10-dimensional code and a
# sigmoid output for pixels in [0, 1]; a few epochs only.
model = AutoencoderKMeans(
    n_clusters=10,
    image_shape=image_shape,
    architecture=ConvNet(channels=(16, 32), output_activation="sigmoid"),
    latent_dim=10,
    epochs=20,
    batch_size=64,
    random_state=0,
)
labels = model.fit_predict(X)
print(type(model.autoencoder_).__name__)
print(clustering_scores(y, labels))

# %%
# Twenty epochs on 2,000 images is a small fraction of a real training run, so
# the scores are modest; the :doc:`/benchmarks` page reports the full MNIST
# test set with the default settings.

# %%
# What is in each cluster
# -----------------------
# :func:`~skdeepcluster.plotting.plot_cluster_montage` draws a few random members
# of every cluster, one row per cluster.
fig = plot_cluster_montage(X, labels, image_shape=image_shape, n_per_cluster=10, random_state=0)

# %%
# Reconstructions
# ---------------
# Inputs (top) and their reconstructions through the 10-dimensional code
# (bottom): what the code keeps is what the clustering sees.
fig = plot_reconstructions(model, X[:10], n=10)
plt.show()
