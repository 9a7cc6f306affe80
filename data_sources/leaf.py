"""FEMNIST as LEAF writes it: JSON files {"users", "num_samples", "user_data": {user: {"x", "y"}}}.

LEAF builds these with its own scripts (sampling, per-writer splits), so there is nothing to
download: the user runs LEAF once and copies the json files here. Rows keep their writer, so
that the data can be split among clients by writer, as FEMNIST is meant to be.
"""
import json
import logging
from pathlib import Path

import numpy as np

from data_sources.dataset import Dataset
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

PIXELS = 28 * 28
NUM_CLASSES = 62
INSTRUCTIONS = (
    "FEMNIST cannot be downloaded automatically; build it with LEAF: "
    "git clone https://github.com/TalwalkarLab/leaf && cd leaf/data/femnist && "
    "./preprocess.sh -s niid --sf 0.05 -k 0 -t sample, then copy the json files of "
    "data/train/ and data/test/ into {folder}"
)


def locate(folder: Path) -> list[Path]:
    """Every *.json below the folder (LEAF's train/ and test/ splits are pooled)."""
    paths = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    if not paths:
        raise P2Error(f"{folder} holds no FEMNIST json files. " + INSTRUCTIONS.format(folder=folder))
    return paths


def read(paths: list[Path]) -> Dataset:
    """Features (N, 1, 28, 28); groups = writer id, by sorted writer name, shared across files."""
    parts = [part for path in paths for part in _writers(path)]
    if not parts:
        raise P2Error(f"the FEMNIST json files in {paths[0].parent} list no users; regenerate them with LEAF")
    names = sorted({writer for writer, _, _ in parts})
    ids = {writer: index for index, writer in enumerate(names)}
    features = np.concatenate([x for _, x, _ in parts]).reshape(-1, 1, 28, 28)
    labels = np.concatenate([y for _, _, y in parts])
    groups = np.concatenate([np.full(len(y), ids[writer], dtype=np.int64) for writer, _, y in parts])
    log.info("FEMNIST: %d rows from %d writers in %d files", len(labels), len(names), len(paths))
    return Dataset("femnist", features, labels, NUM_CLASSES, groups)


def _writers(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(writer, x float32 (n, 784), y int64 (n,)) for each writer of one file, checked."""
    try:
        content = json.loads(path.read_text())
        users, counts, data = content["users"], content["num_samples"], content["user_data"]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise P2Error(f"{path} is not valid JSON ({error}); regenerate it with LEAF") from None
    except (KeyError, TypeError):
        raise P2Error(f"{path} lacks the LEAF keys users, num_samples, user_data; is it a LEAF file?") from None
    if len(users) != len(counts):
        raise P2Error(f"{path} lists {len(users)} users but {len(counts)} num_samples")
    return [_writer(path, str(user), count, data) for user, count in zip(users, counts)]


def _writer(path: Path, user: str, count: int, data: dict) -> tuple[str, np.ndarray, np.ndarray]:
    try:
        x = np.asarray(data[user]["x"], dtype=np.float32)
        y = np.asarray(data[user]["y"], dtype=np.float64)
    except (KeyError, TypeError):
        raise P2Error(f"{path}: user {user} has no x and y in user_data") from None
    except ValueError:
        raise P2Error(f"{path}: user {user} has x rows of different lengths or non-numeric values") from None
    if y.shape != (count,) or len(x) != count:
        raise P2Error(f"{path}: user {user} has num_samples {count} but {len(y)} labels and {len(x)} rows of x")
    if count and x.shape[1:] != (PIXELS,):
        raise P2Error(f"{path}: user {user} has x rows of {x.shape[1:]} values, expected {PIXELS}")
    if not np.isfinite(x).all():
        raise P2Error(f"{path}: user {user} has non-finite pixel values")
    if count and (np.any(y != np.round(y)) or y.min() < 0 or y.max() >= NUM_CLASSES):
        raise P2Error(f"{path}: user {user} has labels outside the integers 0..{NUM_CLASSES - 1}")
    return user, x.reshape(count, PIXELS), y.astype(np.int64)
