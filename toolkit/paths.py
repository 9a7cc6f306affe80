"""Where raw data, processed caches, checkpoints and results live.

Every path is absolute and derived from the repository root, so scripts run from any
working directory. Environment variables move each tree elsewhere (tests use temporary ones):
P2_DATA_DIR (raw data), P2_CACHE_DIR (processed arrays), P2_MODEL_DIR, P2_RESULTS_DIR.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def data_root(override: str | Path | None = None) -> Path:
    """Folder holding one sub-folder of raw files per dataset (`dataset/` by default)."""
    if override:
        return Path(override).expanduser().resolve()
    return _from_env("P2_DATA_DIR", REPO_ROOT / "dataset")


def cache_root() -> Path:
    """Folder for processed arrays; separate from raw data, which may be read-only."""
    return _from_env("P2_CACHE_DIR", REPO_ROOT / "dataset" / "processed")


def model_root() -> Path:
    return _from_env("P2_MODEL_DIR", REPO_ROOT / "model")


def results_root() -> Path:
    return _from_env("P2_RESULTS_DIR", REPO_ROOT / "results")


def run_name(seed: int, quick: bool) -> str:
    """Name of one run's folder: full and quick runs never overwrite each other."""
    return f"quick_seed{seed}" if quick else f"seed{seed}"
