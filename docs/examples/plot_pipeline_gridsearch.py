"""
==================================================
Pipelines and grid search, with and without labels
==================================================

:class:`~skdeepcluster.AutoencoderKMeans` is a scikit-learn estimator, so it goes
at the end of a :class:`~sklearn.pipeline.Pipeline` and into
:class:`~sklearn.model_selection.GridSearchCV` like any other clusterer.

Two ways of scoring a candidate are shown:

* without labels, the estimator's own ``score`` (minus the k-means objective on the
  held-out fold): comparable only between settings that keep the same embedding
  space, and always favouring more clusters;
* with labels, :data:`~skdeepcluster.metrics.cluster_accuracy_scorer` (clustering
  accuracy after Hungarian matching), when a labelled data set is available to tune
  the method.

Searches are small here (``n_jobs=1``, few epochs) to run in seconds.
"""

# %%
# Data and pipeline
# -----------------
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skdeepcluster import MLP, AutoencoderKMeans
from skdeepcluster.metrics import cluster_accuracy_scorer, clustering_scores

X, y = load_digits(return_X_y=True)
X, y = X[:900], y[:900]

pipe = Pipeline(
    [
        ("scale", MinMaxScaler()),
        (
            "cluster",
            AutoencoderKMeans(
                n_clusters=10,
                architecture=MLP(hidden_layer_sizes=(64,)),
                epochs=40,
                n_init=3,
                random_state=0,
            ),
        ),
    ]
)
cv = KFold(n_splits=3, shuffle=True, random_state=0)

# %%
# Without labels: the negative k-means objective
# ----------------------------------------------
# Searching ``n_clusters`` with the default score picks the largest value: more
# centres always fit the held-out data more closely. Read the curve for an
# "elbow" instead of taking the maximum.
search = GridSearchCV(pipe, {"cluster__n_clusters": [4, 7, 10, 13, 16]}, cv=cv, n_jobs=1)
search.fit(X)
unsupervised = pd.DataFrame(search.cv_results_)
print(
    unsupervised[["param_cluster__n_clusters", "mean_test_score"]].round(1).to_string(index=False)
)

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(unsupervised["param_cluster__n_clusters"], unsupervised["mean_test_score"], "o-")
ax.set_xlabel("n_clusters")
ax.set_ylabel("mean score (negative inertia)")
ax.set_title("The unsupervised score keeps rising")
fig.tight_layout()

# %%
# With labels: clustering accuracy
# --------------------------------
# Passing ``y`` to ``fit`` hands it to the scorer only; training stays
# unsupervised. Here ``latent_dim`` changes the embedding space, which the
# unsupervised score could not compare fairly.
search = GridSearchCV(
    pipe,
    {
        "cluster__latent_dim": [2, 10],
        "cluster__architecture__hidden_layer_sizes": [(64,), (128, 64)],
    },
    scoring=cluster_accuracy_scorer,
    cv=cv,
    n_jobs=1,
)
search.fit(X, y)
results = pd.DataFrame(search.cv_results_)
print(
    results[
        [
            "param_cluster__latent_dim",
            "param_cluster__architecture__hidden_layer_sizes",
            "mean_test_score",
        ]
    ]
    .round(3)
    .to_string(index=False)
)
print("best:", search.best_params_)

# %%
# The refitted best pipeline clusters the whole data set. Scores on data used
# for the search are optimistic; keep a test set apart for an honest estimate.
print(clustering_scores(y, search.best_estimator_.predict(X)))
