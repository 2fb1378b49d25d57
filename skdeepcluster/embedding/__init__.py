"""A neighbour-graph embedding (UMAP-style) in PyTorch, as a scikit-learn transformer.

:class:`NeighborEmbedding` is the second stage of "N2D" (McConville et al.,
2020) without the optional ``umap-learn`` dependency: it builds the k-nearest
neighbour graph of the data, turns it into fuzzy membership weights (McInnes
et al., 2018), and lays the points out in a few dimensions so that neighbours
attract and random pairs repel. With ``min_dist=0`` clusters come out compact
and well separated, which is what k-means or a Gaussian mixture needs.

The pieces are small functions over tensors, one concern per private module,
run on any torch device:

* ``_neighbors``: k-NN search, exact in blocks on any device
  (:func:`knn_search`), or by faiss's HNSW graph, pynndescent's NN-descent or
  scipy's KD-tree on the CPU for large data (:class:`NeighborIndex`);
* ``_graph``: the per-point bandwidths and the symmetric fuzzy graph
  (:func:`fuzzy_neighbor_graph`);
* ``_layout``: the similarity curve (:func:`layout_curve_params`), the
  initial and stochastic layout (:func:`optimize_layout`) and the placement
  of new samples (:func:`interpolate_embedding`);
* ``_layout_kernel``: the layout's steps as a compiled numba loop, which
  :func:`optimize_layout` runs on the CPU (torch operations run them on a GPU);
* ``_unique``: identical rows, which are one node of the graph;
* ``_neighbor_embedding``: the :class:`NeighborEmbedding` transformer.

New samples are placed by interpolating the embedding of their nearest
training samples; a sample equal to a training sample gets that sample's
embedding exactly, so ``fit(X).transform(X)`` equals ``fit_transform(X)``.

References
----------
L. McInnes, J. Healy and J. Melville, "UMAP: Uniform manifold approximation
and projection for dimension reduction", arXiv:1802.03426, 2018.

R. McConville, R. Santos-Rodriguez, R. J. Piechocki and I. Craddock, "N2D:
(Not too) deep clustering via clustering the local manifold of an
autoencoded embedding", ICPR 2020.
"""

from ._graph import fuzzy_neighbor_graph
from ._layout import interpolate_embedding, layout_curve_params, optimize_layout
from ._neighbor_embedding import NeighborEmbedding
from ._neighbors import NeighborIndex, knn_search

__all__ = [
    "NeighborEmbedding",
    "NeighborIndex",
    "fuzzy_neighbor_graph",
    "interpolate_embedding",
    "knn_search",
    "layout_curve_params",
    "optimize_layout",
]
