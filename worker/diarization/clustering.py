"""Speaker embeddings into speakers: average-linkage agglomerative clustering on cosine distance, cut at
a fixed distance when the number of speakers is not given (or where the bounds given allow).

Linkage needs every pairwise distance, so it runs on at most MAX_LINKED embeddings, spread evenly over
the recording; every embedding is then given the nearest speaker's centroid. Memory is bounded by the
number of embeddings, never by the recording's length."""

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from tingxie.transcript import MAX_SPEAKERS

MAX_LINKED = 1500  # 1500² / 2 distances: 9 MB
# Cosine distance at which two groups of pieces are taken for different speakers. Resemblyzer's pieces of
# one speaker average about 0.2-0.35 from each other, of two speakers 0.45-0.7 (bench/diarization.py).
DISTANCE_THRESHOLD = 0.45
# With the count left to the clustering, a group holding less than this share of the pieces is taken for
# noise (a cough, crosstalk, a burst of music) and joins its nearest speaker.
MIN_SHARE = 0.02
REFINE_ROUNDS = 3


@dataclass(frozen=True)
class SpeakerCount:
    """What the client said about the number of speakers: exactly, or bounds on it (or nothing)."""

    exactly: int | None = None
    at_least: int = 1
    at_most: int = MAX_SPEAKERS


def cluster(embeddings: np.ndarray, count: SpeakerCount) -> np.ndarray:
    """A speaker index (0, 1, ...) per row of L2-normalised `embeddings`."""
    if len(embeddings) < 2:
        return np.zeros(len(embeddings), dtype=np.int64)
    linked = embeddings[np.linspace(0, len(embeddings) - 1, min(len(embeddings), MAX_LINKED)).astype(int)]
    tree = linkage(linked, method="average", metric="cosine")
    if count.exactly is not None:
        speakers = min(count.exactly, len(linked))
        labels = fcluster(tree, t=speakers, criterion="maxclust")
    else:
        labels, speakers = _automatic(tree, len(linked), count)
    centroids = _centroids(linked, _largest(labels, speakers))
    return _refined(embeddings, centroids)


def _automatic(tree: np.ndarray, n: int, count: SpeakerCount) -> tuple[np.ndarray, int]:
    """Groups cut at DISTANCE_THRESHOLD, and how many of them are speakers rather than noise (within the
    client's bounds, cut again by count when the bounds overrule the threshold)."""
    labels = fcluster(tree, t=DISTANCE_THRESHOLD, criterion="distance")
    found = int(np.sum(np.bincount(labels)[1:] >= max(2, MIN_SHARE * n)))
    speakers = min(max(found, count.at_least, 1), count.at_most, n)
    if speakers != found:
        labels = fcluster(tree, t=speakers, criterion="maxclust")
    return labels, speakers


def _largest(labels: np.ndarray, speakers: int) -> np.ndarray:
    """The `speakers` largest groups kept; the pieces of any other are set to 0 (none) and are placed by
    their nearest centroid afterwards."""
    sizes = np.bincount(labels)
    sizes[0] = 0
    keep = np.argsort(sizes)[::-1][:speakers]
    return np.where(np.isin(labels, keep), labels, 0)


def _centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    groups = [label for label in np.unique(labels) if label != 0]
    means = np.stack([embeddings[labels == label].mean(axis=0) for label in groups])
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def _refined(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Every embedding to its nearest centroid, with the centroids recomputed a few times (k-means on the
    sphere), so pieces left out of the linkage and outliers in it are placed the same way."""
    labels = np.argmax(embeddings @ centroids.T, axis=1)
    for _ in range(REFINE_ROUNDS):
        present = np.unique(labels)
        means = np.stack([embeddings[labels == label].mean(axis=0) for label in present])
        centroids = means / np.linalg.norm(means, axis=1, keepdims=True)
        labels = np.argmax(embeddings @ centroids.T, axis=1)
    return labels
