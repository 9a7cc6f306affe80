"""The in-memory form every loader returns, whatever the raw format was."""
from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    name: str
    features: np.ndarray  # float32; tabular (N, F); images (N, C, H, W)
    labels: np.ndarray  # int64 (N,), values 0..num_classes-1
    num_classes: int
    groups: np.ndarray | None = None  # int64 writer id per row (FEMNIST only), else None
    fingerprint: str = ""             # of the raw files and preprocessing version (set by load_dataset)

    def __post_init__(self) -> None:
        """Catch a loader bug here rather than as a shape error deep inside training."""
        rows = len(self.labels)
        if self.features.dtype != np.float32 or self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise ValueError(f"{self.name}: features must be float32 and labels int64 (N,)")
        if len(self.features) != rows or (self.groups is not None and self.groups.shape != (rows,)):
            raise ValueError(f"{self.name}: features, labels and groups disagree on the number of rows")
        if rows and not (0 <= self.labels.min() and self.labels.max() < self.num_classes):
            raise ValueError(f"{self.name}: labels outside 0..{self.num_classes - 1}")
