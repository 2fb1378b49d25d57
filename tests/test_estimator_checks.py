"""scikit-learn's own estimator checks, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdeepcluster import AutoencoderKMeans


@parametrize_with_checks(
    [
        AutoencoderKMeans(),
        AutoencoderKMeans(
            hidden_layer_sizes=(16,), latent_dim=4, epochs=10, pca_components=2,
            activation="elu",
        ),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
