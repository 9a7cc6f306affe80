"""MNIST's IDX files: a big-endian header (magic, counts, sizes) then uint8 values, .gz or not."""
import gzip
import hashlib
import logging
import struct
import zlib
from pathlib import Path

import numpy as np

from data_sources import download
from data_sources.dataset import Dataset
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

PAIRS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SIDE = 28
NUM_CLASSES = 10


def locate(folder: Path) -> list[Path]:
    """Images, labels, images, labels: each uncompressed if present, else .gz, downloaded if missing."""
    paths = []
    for name in (name for pair in PAIRS for name in pair):
        found = next((path for path in (folder / name, folder / f"{name}.gz") if path.is_file()), None)
        if found is None:
            found = folder / f"{name}.gz"
            download.fetch([base + found.name for base in download.MNIST_URLS], found)
        paths.append(found)
    return paths


def read(paths: list[Path]) -> Dataset:
    """Train and test pooled (70,000): features (N, 1, 28, 28) in [0, 1]."""
    images, labels = [], []
    for image_path, label_path in zip(paths[0::2], paths[1::2]):
        pixels = _array(image_path, IMAGES_MAGIC, 3)
        classes = _array(label_path, LABELS_MAGIC, 1)
        if pixels.shape[1:] != (SIDE, SIDE):
            raise P2Error(f"{image_path} holds {pixels.shape[1]}x{pixels.shape[2]} images, MNIST is {SIDE}x{SIDE}")
        if len(pixels) != len(classes):
            raise P2Error(f"{image_path} has {len(pixels)} images but {label_path} has {len(classes)} labels")
        if classes.size and classes.max() >= NUM_CLASSES:
            raise P2Error(f"{label_path} has label {classes.max()}, MNIST labels are 0..{NUM_CLASSES - 1}")
        images.append(pixels)
        labels.append(classes)
    features = (np.concatenate(images).astype(np.float32) / 255.0)[:, None]
    return Dataset("mnist", features, np.concatenate(labels).astype(np.int64), NUM_CLASSES)


def _array(path: Path, magic: int, ndim: int) -> np.ndarray:
    content = _content(path)
    name = path.name.removesuffix(".gz")
    download.verify_md5(f"{path} (uncompressed)", download.MNIST_MD5[name], found=hashlib.md5(content).hexdigest())
    header = 4 * (1 + ndim)
    if len(content) < header:
        raise P2Error(f"{path} is too short for an IDX header; delete it so it is downloaded again")
    found_magic, *shape = struct.unpack(f">{1 + ndim}I", content[:header])
    if found_magic != magic:
        raise P2Error(f"{path} has magic number {found_magic}, expected {magic}: it is not {name}")
    if len(content) != header + int(np.prod(shape)):
        raise P2Error(
            f"{path} holds {len(content) - header} values but its header promises {int(np.prod(shape))} "
            f"({'x'.join(map(str, shape))}); delete it so it is downloaded again"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def _content(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise P2Error(f"{path} is not a complete gzip file ({error}); delete it so it is downloaded again") from None
