"""Processed arrays on disk, valid only for the raw files and preprocessing code that made them.

The key stored with the arrays holds a content hash of every raw file (a size+mtime test misses
a file replaced within the same clock tick) and the preprocessing version. Image and binary
features are stored as uint8 when that is exactly reversible: CIFAR-10's cache is 4x smaller.
"""
import hashlib
import logging
from pathlib import Path

import numpy as np

from data_sources.dataset import Dataset
from toolkit.checkpoints import load_arrays, save_arrays
from toolkit.digests import file_digest
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

_DIVISORS = (1.0, 255.0)  # features == uint8 / divisor: raw pixels, binary features, MNIST's x / 255
_BLOCK = 4096


def fingerprint(paths: list[Path]) -> str:
    """SHA-256 over the names and contents of the raw files."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + bytes.fromhex(file_digest(path)))
    return digest.hexdigest()


def load(path: Path, key: dict) -> Dataset | None:
    """The cached Dataset, or None if there is none or it was made from other raw files or code."""
    if not path.is_file():
        return None
    try:
        arrays, meta = load_arrays(path)
    except P2Error as error:
        log.warning("ignoring unreadable cache: %s", error)
        return None
    if meta.get("key") != key:
        log.info("cache %s is stale (raw files or preprocessing changed); rebuilding", path)
        return None
    features = arrays["features"].astype(np.float32)
    if meta["divisor"] != 1.0:
        features /= np.float32(meta["divisor"])
    groups = arrays.get("groups")
    return Dataset(meta["name"], features, arrays["labels"], meta["num_classes"], groups)


def save(path: Path, dataset: Dataset, key: dict) -> None:
    features, divisor = _compact(dataset.features)
    meta = {"key": key, "name": dataset.name, "num_classes": dataset.num_classes, "divisor": divisor}
    arrays = {"features": features, "labels": dataset.labels}
    if dataset.groups is not None:
        arrays["groups"] = dataset.groups
    save_arrays(path, meta, **arrays)


def _compact(features: np.ndarray) -> tuple[np.ndarray, float]:
    """(uint8 array, divisor) if that gives back exactly the same float32 values, else (features, 1.0).

    Checked in blocks of rows, so the temporaries stay small next to CIFAR-10's 737 MB of features.
    """
    for divisor in map(np.float32, _DIVISORS):
        codes = np.empty(features.shape, dtype=np.uint8)
        for start in range(0, len(features), _BLOCK):
            part = features[start : start + _BLOCK]
            scaled = np.rint(part * divisor)
            if scaled.min(initial=0) < 0 or scaled.max(initial=0) > 255:
                break
            codes[start : start + _BLOCK] = scaled
            if not np.array_equal(codes[start : start + _BLOCK].astype(np.float32) / divisor, part):
                break
        else:
            return codes, float(divisor)
    return features, 1.0
