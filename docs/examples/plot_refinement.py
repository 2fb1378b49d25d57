"""
==============================================
Joint refinement: k-means loss and IDEC
==============================================

After pre-training and a first k-means, ``refine`` fine-tunes the encoder and the
centres together with a *strategy* of :mod:`skdeepcluster.refine` (see
:ref:`refinement` in the user guide):

* :class:`~skdeepcluster.refine.KMeansLoss` adds the k-means objective on the
  embedding to the reconstruction loss (Song et al., 2013), with its weight
  ``lambda_`` warmed up over the first ``warmup_epochs`` epochs;
* :class:`~skdeepcluster.refine.IDEC` runs DEC's self-training on Student-t soft
  assignments while keeping the reconstruction loss with weight ``gamma`` (Guo et
  al., 2017).

Each strategy holds its own settings (``epochs``, ``learning_rate``, ``tol``, ...),
which are nested parameters of the estimator: ``refine__gamma`` in a grid search.
All three models below share the same pre-training (same ``random_state``), so the
differences come from the refinement alone. The IDEC model also clips the
gradients' norm with a callback of :mod:`skdeepcluster.training`; its
``stage='refine'`` keeps it out of pre-training, which stays the same. Epochs are
kept small to run in seconds.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.base import clone
from sklearn.datasets import load_digits

from skdeepcluster import MLP, AutoencoderKMeans
from skdeepcluster.metrics import clustering_scores
from skdeepcluster.plotting import plot_loss_curve
from skdeepcluster.refine import IDEC, KMeansLoss
from skdeepcluster.training import GradientNormClipping

X, y = load_digits(return_X_y=True)
X = X / 16.0

base = AutoencoderKMeans(
    n_clusters=10,
    architecture=MLP(hidden_layer_sizes=(256, 128)),
    epochs=40,
    reducer=None,
    refine=None,
    random_state=0,
)
models = {
    "no refinement": base,
    "KMeansLoss": clone(base).set_params(refine=KMeansLoss(lambda_=0.02, epochs=15)),
    "IDEC": clone(base).set_params(
        refine=IDEC(gamma=1.0, epochs=15, update_interval=20),
        callbacks=[GradientNormClipping(max_norm=1.0, stage="refine")],
    ),
}
for name, model in models.items():
    model.fit(X)
    scores = clustering_scores(y, model.labels_)
    print(f"{name:<14} " + "  ".join(f"{k.upper()} {v:.3f}" for k, v in scores.items()))

# %%
# Refinement does not always help: it sharpens the structure found by the first
# clustering, and can also reinforce its mistakes. The weights matter: the
# k-means term is a squared distance in the standardized embedding (of order
# ``latent_dim``) while the reconstruction loss of pixels in [0, 1] is of order
# 0.01, hence the small ``lambda_`` (0.01 by default, 0.02 here); with
# ``KMeansLoss(lambda_=0.5)`` the clustering term dominates, and the accuracy on
# these digits can drop below that of the unrefined model. Check the settings on
# labelled data like this before relying on them, for example with
# ``GridSearchCV(model, {"refine__lambda_": [0.01, 0.1]}, scoring=cluster_accuracy_scorer)``
# (see :ref:`sphx_glr_auto_examples_plot_pipeline_gridsearch.py`).
#
# Loss curves
# -----------
# :func:`~skdeepcluster.plotting.plot_loss_curve` continues the epoch axis after
# pre-training with ``history_['refine_loss']`` (a dotted line marks the start of
# refinement). The refinement losses include the clustering term, so they are on
# another scale than the pure reconstruction loss.
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, name in zip(axes, ["KMeansLoss", "IDEC"], strict=True):
    plot_loss_curve(models[name], ax=ax)
    ax.set_title(name)
fig.tight_layout()

# %%
# The weight of the k-means term during the warm-up, and the fraction of labels
# that changed in each refinement epoch:
history = models["KMeansLoss"].history_
print("lambda per epoch:   ", [round(v, 2) for v in history["refine_lambda"]])
print("labels changed (%): ", [round(100 * v, 1) for v in history["n_changed"]])
plt.show()

# %%
# The strategy is a parameter of the estimator, and its settings are nested
# parameters (``refine__<name>``), which ``set_params`` and grid searches reach:
idec = models["IDEC"]
print(idec.refine)
print({k: v for k, v in idec.get_params().items() if k.startswith("refine__")})
