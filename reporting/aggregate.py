"""A dataset's results over seeds: results/<dataset>/metrics.csv, summary.json and tradeoff.png, and its
rows of the cross-dataset table, built from EVERY seed made with the current settings and data, not
only from the seeds of the last invocation.

A seed counts when its run's summary (results/<dataset>/seed<k>/summary.json) or the dataset's existing
combined summary records the same constants and the same data fingerprint as the current experiment.
Seeds made otherwise are left out, with one log line naming them and the command that reruns them.
The committed tables hold every seed's numbers (metrics.csv), so rerunning one committed seed on a fresh
clone rebuilds the same files.
"""
import logging

import pandas as pd

from reporting import metrics_table
from reporting.summary import dataset_folder, made_like
from toolkit.checkpoints import load_json, save_json
from toolkit.errors import P2Error

log = logging.getLogger(__name__)


def _same(summary: dict, current: dict) -> bool:
    """The sweep's grid changes no model of a seed's summary (its points are in p2_sweep.json, which compares
    them itself): a seed run without `--sweep`, or with another grid, counts beside one run with it."""
    return made_like(summary, current, ignoring=("p2_sweep",))


def _run_summaries(dataset: str) -> dict[int, dict]:
    """Every full run's summary on disk, by seed."""
    found = {}
    for path in sorted(dataset_folder(dataset).glob("seed*/summary.json")):
        try:
            summary = load_json(path)
        except P2Error as error:
            log.warning("%s", error)
            continue
        if summary.get("preset") == "full" and isinstance(summary.get("seed"), int):
            found[summary["seed"]] = summary
    return found


def current_seeds(dataset: str, current: dict) -> tuple[pd.DataFrame, list[int]]:
    """(rows of every current seed, seeds left out). Each seed's own summary wins over the rows the
    committed metrics.csv holds for it."""
    folder = dataset_folder(dataset)
    frames, stale = {}, set()
    combined_path, table_path = folder / "summary.json", folder / "metrics.csv"
    if combined_path.is_file() and table_path.is_file():
        combined = load_json(combined_path)
        table = metrics_table.load(table_path)
        if _same(combined, current):
            frames.update({int(seed): rows for seed, rows in table.groupby("seed")})
        else:
            stale.update(int(seed) for seed in table["seed"].unique())
    for seed, summary in _run_summaries(dataset).items():
        if _same(summary, current):
            frames[seed] = metrics_table.long_form(summary)
            stale.discard(seed)
        elif seed not in frames:
            stale.add(seed)
    stale -= set(frames)
    rows = pd.concat([frames[seed] for seed in sorted(frames)], ignore_index=True) if frames else None
    return rows, sorted(stale)


def refresh_dataset(dataset: str, current: dict) -> dict | None:
    """Rewrite the dataset's metrics.csv, summary.json and tradeoff.png from its current seeds; returns
    the combined summary (None when no seed is current). `current` holds the experiment's "settings",
    "data_fingerprint" and "raw_data"."""
    from reporting.tradeoff_plot import write_tradeoff_plot

    rows, stale = current_seeds(dataset, current)
    if stale:
        log.warning("results/%s: seed(s) %s were made with other constants or data and are left out of the "
                    "combined results; rerun them with: python main.py --dataset %s --seed %s",
                    dataset, ", ".join(map(str, stale)), dataset, " ".join(map(str, stale)))
    if rows is None:
        return None
    folder = dataset_folder(dataset)
    metrics_table.save(rows, folder / "metrics.csv")
    combined = combined_summary(dataset, metrics_table.load(folder / "metrics.csv"), current)
    save_json(folder / "summary.json", combined)
    write_tradeoff_plot(combined, folder / "tradeoff.png")
    return combined


def combined_summary(dataset: str, rows: pd.DataFrame, current: dict) -> dict:
    """The summary over seeds: means, with their std under "std", and what the seeds were made from."""
    return {"dataset": dataset, "seed": sorted(int(seed) for seed in rows["seed"].unique()), "preset": "full",
            "raw_data": current["raw_data"], "data_fingerprint": current["data_fingerprint"],
            "settings": current["settings"], **metrics_table.combine(rows)}
