"""Cluster-quality benchmark: every configuration with several seeds, mean ± std.

Usage::

    python benchmarks/bench_quality.py                          # MNIST test set + digits, 3 seeds
    python benchmarks/bench_quality.py --datasets digits --seeds 0 1
    python benchmarks/bench_quality.py --datasets mnist \\
        --configs "AE (50 epochs, augment 0.1) + NE + KMeans"

Prints a markdown table: dataset x configuration x ACC / NMI / ARI / fit seconds
(mean ± std over seeds), followed by the per-seed results. The configurations
are the ones documented in the README and the user guide; ``(best)`` marks the
recommended one and ``torch-only`` the best one without optional dependencies
(NE is :class:`skdeepcluster.NeighborEmbedding`, the default second stage).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import _machine
import numpy as np
from bench_core import DEFAULT_MNIST, IMAGE_SHAPES, load  # same data loading as bench_core


def _umap(n_components: int, n_neighbors: int):
    import umap

    return umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=0.0)


def configurations(dataset: str, k: int) -> dict:
    """Name -> factory(seed) of an estimator with ``fit_predict``."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skdeepcluster import AutoencoderKMeans, ImageAugment, NeighborEmbedding

    shape = IMAGE_SHAPES[dataset]

    def augmented(s, **params):
        """MLP autoencoder trained on shifted and rotated images (``ImageAugment(0.1)``)."""
        return AutoencoderKMeans(
            n_clusters=k, architecture="mlp", image_shape=shape, augment=ImageAugment(0.1),
            random_state=s,
            **params,
        )

    return {
        "KMeans": lambda s: KMeans(n_clusters=k, n_init=10, random_state=s),
        "PCA(50) + KMeans": lambda s: make_pipeline(
            PCA(n_components=min(50, int(np.prod(shape))), random_state=s),
            KMeans(n_clusters=k, n_init=10, random_state=s),
        ),
        # No autoencoder: the neighbour embedding of the standardized pixels.
        "StandardScaler + NE + KMeans (no AE; best, digits)": lambda s: make_pipeline(
            StandardScaler(),
            NeighborEmbedding(n_components=k, random_state=s),
            KMeans(n_clusters=k, n_init=10, random_state=s),
        ),
        # The defaults: MLP AE -> NeighborEmbedding -> k-means (torch only, no UMAP).
        "AE + NE + KMeans (defaults, torch-only)": lambda s: AutoencoderKMeans(
            n_clusters=k, random_state=s
        ),
        "AE + KMeans (no refinement)": lambda s: AutoencoderKMeans(
            n_clusters=k, reducer=None, refine=None, random_state=s
        ),
        "AE + PCA(0.9) + KMeans": lambda s: AutoencoderKMeans(
            n_clusters=k, refine=None, reducer=PCA(n_components=0.9), random_state=s
        ),
        "AE + IDEC (defaults before 0.1)": lambda s: AutoencoderKMeans(
            n_clusters=k, reducer=None, random_state=s
        ),
        "AE + k-means-loss refinement": lambda s: AutoencoderKMeans(
            n_clusters=k, refine="kmeans", random_state=s
        ),
        "conv AE + IDEC": lambda s: AutoencoderKMeans(
            n_clusters=k, image_shape=shape, reducer=None, random_state=s
        ),
        "AE + GMM (no refinement)": lambda s: AutoencoderKMeans(
            n_clusters=k, reducer=None, clusterer="gmm", n_init=10, random_state=s
        ),
        "AE (50 epochs, augment 0.1) + NE + KMeans": lambda s: augmented(s, epochs=50),
        "AE (55 epochs, augment 0.1) + NE(2-D) + KMeans": lambda s: (
            augmented(s, epochs=55, reducer=NeighborEmbedding(n_components=2))
        ),
        # The best configuration as measured before input_pca (on the 784 pixels).
        "AE (55 epochs, augment 0.1, pixels) + NE(2-D) + KMeans (best, torch-only)": (
            lambda s: augmented(
                s, epochs=55, reducer=NeighborEmbedding(n_components=2), input_pca=None
            )
        ),
        "AE (augment 0.1) + NE + KMeans": lambda s: augmented(s),
        "AE (60 epochs) + NE + GMM": lambda s: AutoencoderKMeans(
            n_clusters=k, epochs=60, clusterer="gmm", n_init=10, random_state=s
        ),
        "AE (epochs auto) + NE + GMM": lambda s: AutoencoderKMeans(
            n_clusters=k, clusterer="gmm", n_init=10, random_state=s
        ),
        "AE (20 epochs) + UMAP + GMM": lambda s: AutoencoderKMeans(
            n_clusters=k,
            epochs=20,
            reducer=_umap(n_components=k, n_neighbors=20),
            clusterer="gmm",
            n_init=10,
            random_state=s,
        ),
        "AE (60 epochs) + UMAP + GMM": lambda s: AutoencoderKMeans(
            n_clusters=k,
            epochs=60,
            reducer=_umap(n_components=k, n_neighbors=20),
            clusterer="gmm",
            n_init=10,
            random_state=s,
        ),
        "AE (epochs auto) + UMAP + GMM": lambda s: AutoencoderKMeans(
            n_clusters=k,
            reducer=_umap(n_components=k, n_neighbors=20),
            clusterer="gmm",
            n_init=10,
            random_state=s,
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "digits"])
    parser.add_argument("--configs", nargs="+", default=None, help="names (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--mnist-path", default=str(DEFAULT_MNIST))
    args = parser.parse_args(argv)

    import torch

    from skdeepcluster.metrics import clustering_scores

    print(f"# bench_quality: `python benchmarks/bench_quality.py {' '.join(sys.argv[1:])}`")
    print(
        f"# {time.strftime('%Y-%m-%d')} | {_machine.describe()} | torch {torch.__version__} "
        f"| CUDA: {torch.cuda.is_available()} | seeds {args.seeds}"
    )
    rows, per_seed = [], []
    for dataset in args.datasets:
        X, y = load(dataset, args.mnist_path)
        k = len(np.unique(y))
        configs = configurations(dataset, k)
        for name in args.configs or list(configs):
            if name not in configs:
                continue
            scores = []
            for seed in args.seeds:
                model = configs[name](seed)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # umap's n_jobs notice
                    labels = model.fit_predict(X)
                seconds = time.perf_counter() - start
                s = clustering_scores(y, labels)
                scores.append([s["accuracy"], s["nmi"], s["ari"], seconds])
                per_seed.append(
                    f"| {dataset} | {name} | {seed} | {s['accuracy']:.3f} | {s['nmi']:.3f} | "
                    f"{s['ari']:.3f} | {seconds:.1f} |"
                )
                print(per_seed[-1], file=sys.stderr, flush=True)
            a = np.array(scores)
            mean, std = a.mean(axis=0), a.std(axis=0)
            cells = " | ".join(f"{m:.3f} ± {d:.3f}" for m, d in zip(mean[:3], std[:3], strict=True))
            spread = a[:, 0].max() - a[:, 0].min()
            rows.append(
                f"| {dataset} (n={X.shape[0]}) | {name} | {cells} | {mean[3]:.0f} ± {std[3]:.0f} "
                f"| {spread:.3f} |"
            )
    print()
    print("| dataset | configuration | ACC | NMI | ARI | fit s | ACC max-min |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("Per seed:")
    print()
    print("| dataset | configuration | seed | ACC | NMI | ARI | fit s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(per_seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
