"""Purchase2/10/20/50: the original derived them by clustering Purchase100's features with KMeans."""
import logging

import numpy as np

from data_sources.dataset import Dataset

log = logging.getLogger(__name__)

RANDOM_STATE = 9  # the original's


def relabel_by_kmeans(source: Dataset, num_clusters: int, name: str) -> Dataset:
    """Same rows and features; the label is the KMeans cluster id."""
    log.info("clustering %d rows of %s into %d classes (KMeans, n_init=10)", len(source.labels), source.name, num_clusters)
    from sklearn.cluster import KMeans  # here, not at the top: importing scikit-learn costs a second

    model = KMeans(n_clusters=num_clusters, random_state=RANDOM_STATE, n_init=10)
    labels = model.fit_predict(source.features).astype(np.int64)
    return Dataset(name, source.features, labels, num_clusters)
