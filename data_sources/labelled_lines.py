"""Purchase100 and Location (privacytrustlab collection): lines `label,f1,...,fF`, label 1..K, binary features.

Each ships as a .tgz holding one file (`dataset_purchase`, `bangkok`); Location quotes the label.
Parsing is vectorised (np.fromstring over blocks of lines): Purchase has 197,324 lines of 601 values.
"""
import logging
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_sources import download
from data_sources.dataset import Dataset
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

BLOCK = 20_000  # lines parsed at once: bounds the temporary int64 array


@dataclass(frozen=True)
class LineFormat:
    name: str
    archive: str  # the official .tgz
    member: str  # the one file inside it
    num_features: int
    num_classes: int


PURCHASE = LineFormat("purchase100", "dataset_purchase.tgz", "dataset_purchase", 600, 100)
LOCATION = LineFormat("location", "dataset_location.tgz", "bangkok", 446, 30)


def locate(spec: LineFormat, folder: Path) -> list[Path]:
    """The extracted file if present, else the archive, downloaded if missing."""
    for candidate in (folder / spec.member, folder / spec.archive):
        if candidate.is_file():
            return [candidate]
    download.fetch([download.PRIVACYTRUSTLAB_URL + spec.archive], folder / spec.archive)
    return [folder / spec.archive]


def read(spec: LineFormat, paths: list[Path]) -> Dataset:
    path = paths[0]
    if path.name == spec.archive:
        content, source = _member_bytes(path, spec.member), f"{path}:{spec.member}"
    else:
        content, source = path.read_bytes(), str(path)
    features, labels = parse_lines(content, source, spec.num_features, spec.num_classes)
    return Dataset(spec.name, features, labels, spec.num_classes)


def _member_bytes(archive: Path, member: str) -> bytes:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                if info.isfile() and Path(info.name).name == member:
                    return tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise P2Error(f"{archive} is not a readable .tgz ({error}); delete it so it is downloaded again") from None
    raise P2Error(f"{archive} holds no file {member}; delete it so it is downloaded again")


def parse_lines(content: bytes, source: str, num_features: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (N, F), labels int64 0..K-1) from `label,f1..fF` lines, label optionally quoted."""
    lines = content.replace(b'"', b"").splitlines()
    numbers = [number for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbers:
        raise P2Error(f"{source} is empty; delete it so it is downloaded again")
    for number in numbers:
        if lines[number - 1].count(b",") != num_features:
            raise P2Error(
                f"{source} line {number} has {lines[number - 1].count(b',') + 1} columns, "
                f"expected {num_features + 1} (label and {num_features} features)"
            )
    features = np.empty((len(numbers), num_features), dtype=np.float32)
    labels = np.empty(len(numbers), dtype=np.int64)
    for start in range(0, len(numbers), BLOCK):
        block = numbers[start : start + BLOCK]
        values = _integers(lines, block, source).reshape(len(block), num_features + 1)
        labels[start : start + len(block)] = values[:, 0]
        features[start : start + len(block)] = values[:, 1:]
    outside = np.flatnonzero((labels < 1) | (labels > num_classes))
    if outside.size:
        row = outside[0]
        raise P2Error(f"{source} line {numbers[row]}: label {labels[row]} is outside 1..{num_classes}")
    not_binary = np.flatnonzero(((features != 0) & (features != 1)).any(1))
    if not_binary.size:
        row = not_binary[0]
        value = features[row][(features[row] != 0) & (features[row] != 1)][0]
        raise P2Error(f"{source} line {numbers[row]}: feature value {value:g} is not 0 or 1 (the features are binary)")
    return features, labels - 1


def _integers(lines: list[bytes], block: list[int], source: str) -> np.ndarray:
    text = b",".join(lines[number - 1] for number in block)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NumPy only warns when it stops at a bad value
            values = np.fromstring(text, dtype=np.int64, sep=",")
    except (ValueError, DeprecationWarning):
        values = np.empty(0)
    if values.size == text.count(b",") + 1:  # every line was checked to have the same column count
        return values
    for number in block:  # slow path, only to name the offending value
        for token in lines[number - 1].split(b","):
            if not token.strip().lstrip(b"-").isdigit():
                raise P2Error(f"{source} line {number}: {token.strip()!r} is not an integer")
    raise P2Error(f"{source}: values could not be parsed as integers")
