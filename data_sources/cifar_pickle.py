"""CIFAR-10 "python version": pickled batches, in the official tar.gz or extracted beside it.

The batches are pickles, and unpickling runs whatever the file names; the reader only lets
through the few NumPy names a CIFAR batch needs, so a tampered download cannot run code.
"""
import io
import logging
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from data_sources import download
from data_sources.dataset import Dataset
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
NUM_CLASSES = 10
SHAPE = (3, 32, 32)
# "core" in pickles written by NumPy 1, "_core" by NumPy 2; _frombuffer for protocol 5;
# _codecs.encode is how Python 3 writes bytes at protocol 2 (it only turns a str into bytes)
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def locate(folder: Path) -> list[Path]:
    """The six extracted batches if their folder exists, else the archive, downloaded if missing."""
    if (folder / FOLDER).is_dir():
        paths = [folder / FOLDER / name for name in BATCHES]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise P2Error(f"{folder / FOLDER} lacks {', '.join(missing)}; delete the folder to use {ARCHIVE}")
        return paths
    if not (folder / ARCHIVE).is_file():
        download.fetch([download.CIFAR10_URL], folder / ARCHIVE, download.CIFAR10_MD5)
    return [folder / ARCHIVE]


def read(paths: list[Path]) -> Dataset:
    """Train batches then the test batch (60,000); features (N, 3, 32, 32) with raw 0..255 values."""
    if len(paths) == 1:
        contents = _from_archive(paths[0])
    else:
        contents = {path.name: (str(path), path.read_bytes()) for path in paths}
    images, labels = [], []
    for name in BATCHES:
        source, content = contents[name]
        pixels, classes = _batch(source, content)
        images.append(pixels)
        labels.append(classes)
    features = np.concatenate(images).reshape(-1, *SHAPE).astype(np.float32)
    return Dataset("cifar10", features, np.concatenate(labels), NUM_CLASSES)


def _from_archive(archive: Path) -> dict[str, tuple[str, bytes]]:
    found = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                name = Path(info.name).name
                if info.isfile() and name in BATCHES and Path(info.name).parent.name == FOLDER:
                    found[name] = (f"{archive}:{info.name}", tar.extractfile(info).read())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise P2Error(f"{archive} is not a readable tar.gz ({error}); delete it so it is downloaded again") from None
    missing = [name for name in BATCHES if name not in found]
    if missing:
        raise P2Error(f"{archive} lacks {FOLDER}/{', '.join(missing)}; delete it so it is downloaded again")
    return found


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refuses to load {module}.{name}")
        return super().find_class(module, name)


def _batch(source: str, content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, 3072), int64 (n,)) of one batch, checked."""
    try:
        batch = _BatchUnpickler(io.BytesIO(content), encoding="bytes").load()
        pixels = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as error:
        raise P2Error(f"{source} is not a CIFAR-10 batch ({error!r}); delete it so it is obtained again") from None
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != int(np.prod(SHAPE)):
        raise P2Error(f"{source}: data is {pixels.dtype} {pixels.shape}, expected uint8 (N, {int(np.prod(SHAPE))})")
    if labels.shape != (len(pixels),) or labels.dtype.kind not in "iu":
        raise P2Error(f"{source}: {labels.size} labels for {len(pixels)} images, or labels not integers")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise P2Error(f"{source}: labels outside 0..{NUM_CLASSES - 1}")
    return pixels, labels.astype(np.int64)
