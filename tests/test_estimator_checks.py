"""scikit-learn's own estimator checks, with no expected failures.

The default estimator is checked as users get it, plus small configurations that
exercise the other code paths: a PCA second stage, the convolutional network (with
``image_shape=(1, 1, -1)``, so one image row of whatever width the checks' data has),
joint refinement (strategy objects), a Gaussian-mixture clusterer and training
callbacks; and the neighbour embedding on its own.
"""

from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdeepcluster import MLP, AutoencoderKMeans, ConvNet, NeighborEmbedding
from skdeepcluster.refine import IDEC, KMeansLoss
from skdeepcluster.training import GradientNormClipping, LRScheduler

SMALL = dict(architecture=MLP((16,)), latent_dim=4, epochs=10)


@parametrize_with_checks(
    [
        AutoencoderKMeans(),
        # was pca_components=2: a PCA second stage, refined by refine='auto' (IDEC())
        AutoencoderKMeans(
            **dict(SMALL, architecture=MLP((16,), activation="elu")),
            reducer=PCA(n_components=2), refine="idec",
        ),
        AutoencoderKMeans(
            image_shape=(1, 1, -1), architecture=ConvNet((4, 8)), latent_dim=3, epochs=5
        ),
        AutoencoderKMeans(**SMALL, refine=IDEC(epochs=3)),
        AutoencoderKMeans(**SMALL, refine=KMeansLoss(epochs=3), noise=0.1),
        AutoencoderKMeans(**SMALL, clusterer="gmm", n_init=2),
        AutoencoderKMeans(**SMALL, reducer=None),
        AutoencoderKMeans(
            **SMALL, callbacks=[LRScheduler("cosine"), GradientNormClipping(1.0)]
        ),
        NeighborEmbedding(),
        NeighborEmbedding(n_components=2, max_samples=20, init="random"),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
