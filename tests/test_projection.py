"""Tests of the input's principal components in front of the network (``input_pca``)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from skdeepcluster import (
    MLP,
    AutoencoderKMeans,
    IdentityAutoencoder,
    MLPAutoencoder,
    ProjectedAutoencoder,
)
from skdeepcluster._projection import fit_projection, sample_rows


@pytest.fixture(scope="module")
def wide():
    """300 rows of 260 features (above the 256 where 'auto' projects) in 3 clusters."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(3, 260))
    y = np.repeat(np.arange(3), 100)
    return (centres[y] + rng.normal(size=(300, 260))).astype(np.float32), y


def test_fit_projection_is_the_pca_of_the_rows():
    X = np.random.default_rng(1).normal(size=(200, 12)).astype(np.float32)
    mean, components = fit_projection(X, 4, seed=0)
    pca = PCA(4).fit(X)
    assert mean.dtype == components.dtype == np.float32
    np.testing.assert_allclose(mean, pca.mean_, atol=1e-5)
    np.testing.assert_allclose(np.abs(components @ pca.components_.T), np.eye(4), atol=1e-4)


def test_sample_rows_draws_distinct_rows_in_order_and_reproducibly():
    X = np.arange(1000, dtype=np.float32).reshape(500, 2)
    sample = sample_rows(X, 50, seed=3)
    assert sample.shape == (50, 2) and np.all(np.diff(sample[:, 0]) > 0)
    np.testing.assert_array_equal(sample, sample_rows(X, 50, seed=3))
    assert not np.array_equal(sample, sample_rows(X, 50, seed=4))
    assert sample_rows(X, 500, seed=0).shape == (500, 2)  # all rows when few


def test_projected_autoencoder_encodes_the_components_and_decodes_back():
    X = np.random.default_rng(2).normal(size=(100, 6)).astype(np.float32)
    mean, components = fit_projection(X, 6, seed=0)  # a full basis: lossless
    ae = ProjectedAutoencoder(IdentityAutoencoder(6), mean, components)
    x = torch.as_tensor(X)
    expected = (X - mean) @ components.T
    np.testing.assert_allclose(ae.encode(x).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(ae(x).numpy(), X, atol=1e-4)
    assert (ae.n_features, ae.n_components, ae.latent_dim) == (6, 6, 6)
    assert not any(p.requires_grad for p in ae.parameters())  # the basis is fixed
    with pytest.raises(ValueError, match="components must have shape"):
        ProjectedAutoencoder(IdentityAutoencoder(6), mean[:3], components)


def test_training_moves_the_inner_network_only():
    X = np.random.default_rng(3).normal(size=(64, 10)).astype(np.float32)
    ae = ProjectedAutoencoder(MLPAutoencoder(4, (8,), 2), *fit_projection(X, 4, seed=0))
    basis = ae.components.clone()
    optimizer = torch.optim.Adam(ae.parameters(), lr=1e-2)
    x = torch.as_tensor(X)
    loss = ((ae(x) - x) ** 2).mean()
    loss.backward()
    optimizer.step()
    assert torch.equal(ae.components, basis)
    assert ((ae(x) - x) ** 2).mean() < loss


def test_auto_projects_wide_inputs_and_the_fit_is_reproducible(wide):
    X, y = wide
    params = dict(n_clusters=3, architecture=MLP((32,)), epochs=3, random_state=0)
    model = AutoencoderKMeans(**params).fit(X)
    assert model.input_components_ == 50 and model.architecture_ == "mlp"
    assert isinstance(model.autoencoder_, ProjectedAutoencoder)
    assert isinstance(model.autoencoder_.inner, MLPAutoencoder)
    assert model.autoencoder_.inner.n_features == 50
    assert model.reconstruct(X[:5]).shape == (5, 260)
    again = AutoencoderKMeans(**params).fit(X)
    np.testing.assert_array_equal(model.labels_, again.labels_)
    np.testing.assert_array_equal(model.transform(X), again.transform(X))
    plain = AutoencoderKMeans(**params, input_pca=None).fit(X)
    assert plain.input_components_ is None and isinstance(plain.autoencoder_, MLPAutoencoder)


def test_no_network_clusters_the_components(wide):
    X, y = wide
    model = AutoencoderKMeans(3, architecture="none", input_pca=5, reducer=None, random_state=0)
    embedding = model.fit_transform(X)
    components = PCA(5).fit_transform(X)
    # standardized components, up to the sign of each axis
    scaled = (components - components.mean(0)) / components.std(0)
    np.testing.assert_allclose(np.abs(embedding), np.abs(scaled), atol=1e-3)
    np.testing.assert_allclose(
        model.inverse_transform(embedding), PCA(5).fit(X).inverse_transform(components), atol=1e-3
    )


def test_a_projected_model_pickles_and_predicts_the_same(wide):
    X, _ = wide
    model = AutoencoderKMeans(3, architecture="none", random_state=0).fit(X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(X), model.labels_)
    np.testing.assert_array_equal(clone.transform(X), model.transform(X))


def test_the_projection_is_fitted_on_a_sample_of_a_memmap(tmp_path, wide, monkeypatch):
    import skdeepcluster._projection as projection

    X, _ = wide
    path = tmp_path / "X.f32"
    X.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    monkeypatch.setattr(projection, "MAX_FIT_ROWS", 120)
    seen = []
    real = projection.sample_rows
    monkeypatch.setattr(
        projection, "sample_rows", lambda X, n, seed: seen.append(n) or real(X, n, seed)
    )
    model = AutoencoderKMeans(3, architecture="none", streaming=True, random_state=0)
    model.fit(mapped)
    assert seen == [120] and model.input_components_ == 50
    assert model.predict(X[:10]).shape == (10,)
