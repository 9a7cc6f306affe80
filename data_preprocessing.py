"""Raw datasets to arrays: find (or download) the raw files, parse and check them, cache the result.

    python data_preprocessing.py --dataset adult
    python data_preprocessing.py --dataset all --data-dir ../shared/datasets

Raw files are read from <data dir>/<name>/ (default dataset/, or $P2_DATA_DIR, or --data-dir);
processed arrays are cached in $P2_CACHE_DIR (default dataset/processed/) and rebuilt whenever a
raw file or the preprocessing version changes. See dataset/README.md for every source.
"""
import argparse
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_sources import adult, cache, cifar_pickle, clusters, download, idx, labelled_lines, leaf
from data_sources.dataset import Dataset
from toolkit.cli import main_guard, setup_logging
from toolkit.errors import P2Error
from toolkit.paths import cache_root, data_root

log = logging.getLogger("data_preprocessing")

PREPROCESSING_VERSION = 2  # bump when any reader's output changes: every cache is then rebuilt


@dataclass(frozen=True)
class _Source:
    folder: str  # sub-folder of the data dir holding the raw files
    locate: Callable[[Path], list[Path]]  # raw files in that folder, downloaded if missing
    read: Callable[[list[Path]], Dataset]


def _purchase_variant(num_classes: int, paths: list[Path]) -> Dataset:
    purchase = labelled_lines.read(labelled_lines.PURCHASE, paths)
    return clusters.relabel_by_kmeans(purchase, num_classes, f"purchase{num_classes}")


_PURCHASE_LOCATE = functools.partial(labelled_lines.locate, labelled_lines.PURCHASE)
_SOURCES = {
    "adult": _Source("adult", adult.locate, adult.read),
    "purchase100": _Source("purchase100", _PURCHASE_LOCATE, functools.partial(labelled_lines.read, labelled_lines.PURCHASE)),
    **{
        f"purchase{k}": _Source("purchase100", _PURCHASE_LOCATE, functools.partial(_purchase_variant, k))
        for k in (2, 10, 20, 50)
    },
    "location": _Source(
        "location",
        functools.partial(labelled_lines.locate, labelled_lines.LOCATION),
        functools.partial(labelled_lines.read, labelled_lines.LOCATION),
    ),
    "mnist": _Source("mnist", idx.locate, idx.read),
    "femnist": _Source("femnist", leaf.locate, leaf.read),
    "cifar10": _Source("cifar10", cifar_pickle.locate, cifar_pickle.read),
}
DATASETS = tuple(_SOURCES)


def _any_of(*names: str) -> Callable[[Path], bool]:
    return lambda folder: any((folder / name).exists() for name in names)


_IDX_NAMES = [name for pair in idx.PAIRS for name in pair]
# Whether the raw files are already there, by file name only (nothing is read or downloaded).
_PRESENT: dict[str, Callable[[Path], bool]] = {
    "adult": lambda folder: all((folder / name).is_file() for name in adult.FILES),
    "purchase100": _any_of(labelled_lines.PURCHASE.member, labelled_lines.PURCHASE.archive),
    "location": _any_of(labelled_lines.LOCATION.member, labelled_lines.LOCATION.archive),
    "mnist": lambda folder: all((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in _IDX_NAMES),
    "femnist": lambda folder: folder.is_dir() and next(folder.rglob("*.json"), None) is not None,
    "cifar10": _any_of(cifar_pickle.FOLDER, cifar_pickle.ARCHIVE),
}


def raw_files_present(name: str, data_dir: str | Path | None = None) -> bool:
    """True when the raw files of this dataset are in <data dir>/<folder>/ (checked by name, no download)."""
    if name not in _SOURCES:
        raise P2Error(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    source = _SOURCES[name]
    present = _PRESENT.get(source.folder)
    return present is not None and present(data_root(data_dir) / source.folder)


_LOADED: dict[str, Dataset] = {}


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """The named dataset, from the cache when it was built from the same raw files and code (read from
    disk once per process). Its `fingerprint` names the raw files and the preprocessing version: every
    stage records it, so a change of the raw data reruns what was made from the old data."""
    if name not in _SOURCES:
        raise P2Error(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    source = _SOURCES[name]
    folder = data_root(data_dir) / source.folder
    paths = source.locate(folder)
    key = {
        "dataset": name,
        "version": PREPROCESSING_VERSION,
        "raw": cache.fingerprint(paths),
        "checksums": download.checksums_enabled(),  # a copy accepted unchecked is not reused once checks are on
    }
    memo = json.dumps(key, sort_keys=True)
    if memo in _LOADED:
        return _LOADED[memo]
    target = cache_root() / f"{name}.npz"
    dataset = cache.load(target, key)
    if dataset is not None:
        log.debug("%s: read from cache %s", name, target)
    else:
        log.info("%s: preprocessing raw files in %s", name, folder)
        dataset = source.read(paths)
        try:
            cache.save(target, dataset, key)
        except (OSError, P2Error) as error:
            log.warning("%s: could not write the cache %s (%s); it will be rebuilt next time", name, target, error)
    fingerprint = {"dataset": name, "version": PREPROCESSING_VERSION, "raw": key["raw"]}
    dataset.fingerprint = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    _LOADED[memo] = dataset
    return dataset


def raw_data_provenance(name: str, data_dir: str | Path | None = None) -> str:
    """Whether the raw files are the official release, said next to every result made from them.

    Adult and MNIST are MD5-checked when read (a mismatch is an error unless P2_VERIFY_CHECKSUMS=0);
    a CIFAR-10 archive that differs is accepted, since re-encoded copies are common, and flagged here.
    """
    source = _SOURCES[name]
    folder = data_root(data_dir) / source.folder
    if not download.checksums_enabled():
        return "unverified (P2_VERIFY_CHECKSUMS=0)"
    if source.folder in ("adult", "mnist"):
        return "official (MD5 checked)"
    if source.folder == "cifar10":
        paths = source.locate(folder)
        if paths != [folder / cifar_pickle.ARCHIVE]:
            return "extracted batches (no published checksum)"
        if download.md5_of(paths[0]) == download.CIFAR10_MD5:
            return "official (MD5 checked)"
        return "NOT the official archive (MD5 differs): results are approximate"
    return "no published checksum"


def describe(dataset: Dataset) -> str:
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    text = (
        f"{dataset.name}: features {dataset.features.shape} {dataset.features.dtype}, "
        f"{dataset.num_classes} classes ({counts.min()}..{counts.max()} rows each)"
    )
    if dataset.groups is not None:
        text += f", {len(np.unique(dataset.groups))} writers"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="adult", choices=(*DATASETS, "all"), help="dataset to prepare (default: adult)")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $P2_DATA_DIR or dataset/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    names = DATASETS if args.dataset == "all" else (args.dataset,)
    failed = []
    for name in names:
        start = time.perf_counter()
        try:
            dataset = load_dataset(name, args.data_dir)
        except P2Error as error:
            if len(names) == 1:
                raise
            log.error("%s", error)
            failed.append(name)
            continue
        log.info("%s [%.1f s]", describe(dataset), time.perf_counter() - start)
    if failed:
        raise P2Error(f"could not prepare {', '.join(failed)}: see the errors above")


if __name__ == "__main__":
    main_guard(main)
