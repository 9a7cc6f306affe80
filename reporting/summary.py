"""The results of one run: every model's utility and every attack's metrics, as summary.json and a table.

The run's summary also records what it was made from (every constant, the data fingerprint, the raw
data's provenance), the thread count, and each stage's wall time when it was made (`timings`).
"""
import json
import platform

import torch

from other_attack_and_defend.targets import Target, target_utility
from toolkit import paths
from toolkit.checkpoints import load_arrays, save_json
from toolkit.run import Run
from toolkit.scoring import membership_metrics

TABLE_METRICS = ("auc", "tpr_at_1pct_fpr")


def attack_metrics(run: Run, attack: str, target: str) -> dict | None:
    """Metrics of one attack on one target, or None where the attack does not apply (no score file)."""
    path = run.score_path(attack, target)
    if not path.is_file():
        return None
    arrays, meta = load_arrays(path)
    return membership_metrics(arrays["scores"], arrays["is_member"], meta["threshold"])


def collect(run: Run, made_from: dict, targets: list[Target], attacks: list[str], timings: dict[str, float],
            threads: int, diagnostics: dict | None = None, server_attacks: dict | None = None,
            engine: str = "inprocess") -> dict:
    """The summary of one run. `made_from` holds the run's "settings", "data_fingerprint" and "raw_data"
    (whether the raw files were the official release); `timings` each stage's seconds; `diagnostics` what
    each released model shows (reporting/diagnostics.py); `server_attacks` the FL server's attacks; `engine`
    where FedAvg and the P2 round ran (like the threads, how the run was made, not what it is made from)."""
    results = {}
    for attack in attacks:
        per_target = {target.name: attack_metrics(run, attack, target.name) for target in targets}
        results[attack] = {name: metrics for name, metrics in per_target.items() if metrics is not None}
    models = {target.name: target_utility(run, target) for target in targets}
    for name, values in (diagnostics or {}).items():
        models[name]["diagnostics"] = values
    summary = {"dataset": run.dataset, "seed": run.seed, "preset": "quick" if run.quick else "full",
               "raw_data": made_from["raw_data"], "data_fingerprint": made_from["data_fingerprint"],
               "settings": made_from["settings"], "models": models, "attacks": results}
    if server_attacks:
        summary["server_attacks"] = server_attacks
    summary.update(timings={name: round(seconds, 1) for name, seconds in timings.items()}, threads=threads,
                   engine=engine, torch=torch.__version__, machine=platform.machine())
    return summary


def save(path, summary: dict) -> None:
    save_json(path, summary)


def same_results(path, summary: dict) -> bool:
    """Whether the summary at `path` holds the same results as `summary` (wall times aside), and its run's
    figures exist: then they need not be drawn again."""
    from toolkit.checkpoints import load_json
    from toolkit.errors import P2Error

    plots = path.parent / "plots"
    if not path.is_file() or not (plots / "roc_strongest.png").is_file():
        return False
    try:
        existing = load_json(path)
    except P2Error:
        return False
    ignored = ("timings", "threads", "torch", "machine")
    return ({k: v for k, v in existing.items() if k not in ignored}
            == json.loads(json.dumps({k: v for k, v in summary.items() if k not in ignored})))


def made_like(result: dict, current: dict, ignoring: tuple[str, ...] = ()) -> bool:
    """Whether `result` (a summary or sweep record) was made with `current`'s constants, the settings groups
    in `ignoring` aside, and from the same data."""
    def constants(record: dict) -> str:
        settings = {group: values for group, values in (record.get("settings") or {}).items() if group not in ignoring}
        return json.dumps(settings, sort_keys=True)

    return constants(result) == constants(current) and result.get("data_fingerprint") == current["data_fingerprint"]


def dataset_folder(dataset: str):
    return paths.results_root() / dataset


def _cell(summary: dict, section: str, *keys: str) -> str:
    value, spread = summary[section], summary.get("std", {}).get(section)
    for key in keys:
        value = value[key]
        spread = spread.get(key) if isinstance(spread, dict) else None
    return f"{value:.3f}" + (f"±{spread:.3f}" if isinstance(spread, float) and len(_seeds(summary)) > 1 else "")


def _seeds(summary: dict) -> list:
    return summary["seed"] if isinstance(summary["seed"], list) else [summary["seed"]]


def format_table(summary: dict) -> str:
    """Rows: models; columns: train and test accuracy, then one column per attack: AUC / TPR at 1% FPR."""
    attacks = list(summary["attacks"])
    rows = [["model", "train acc", "test acc"] + attacks]
    for target in summary["models"]:
        row = [target, _cell(summary, "models", target, "train_acc"), _cell(summary, "models", target, "test_acc")]
        row += [" / ".join(_cell(summary, "attacks", attack, target, metric) for metric in TABLE_METRICS)
                if target in summary["attacks"][attack] else "-" for attack in attacks]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    title = (f"{summary['dataset']} ({summary['preset']} preset, seeds {_seeds(summary)}, raw data: "
             f"{summary['raw_data']}); attack cells: AUC / TPR at 1% FPR")
    lines = [title] + ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)
