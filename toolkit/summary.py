"""The results of a run: model utility and attack metrics in summary.json, and the printed table."""
import numpy as np

from toolkit import paths
from toolkit.checkpoints import load_arrays, save_json
from toolkit.run import Run

TABLE_METRICS = ("auc", "tpr_at_1pct_fpr")


def attack_metrics(run: Run, attack: str, target: str) -> dict | None:
    """Metrics of one attack on one target, or None where the attack does not apply (no score file)."""
    from menif_attack.scoring import membership_metrics

    path = run.score_path(attack, target)
    if not path.is_file():
        return None
    arrays, meta = load_arrays(path)
    return membership_metrics(arrays["scores"], arrays["is_member"], meta["threshold"])


def collect(run: Run, settings: dict, targets: list, attacks: list[str], raw_data: str) -> dict:
    """The summary of one run: utility of every target model, and every attack's metrics against it.
    `raw_data` says whether the raw files were the official release (data_preprocessing.raw_data_provenance)."""
    from toolkit.targets import target_utility

    results = {}
    for attack in attacks:
        per_target = {target.name: attack_metrics(run, attack, target.name) for target in targets}
        results[attack] = {name: metrics for name, metrics in per_target.items() if metrics is not None}
    return {"dataset": run.dataset, "seed": run.seed, "preset": "quick" if run.quick else "full",
            "raw_data": raw_data, "settings": settings,
            "models": {target.name: target_utility(run, target) for target in targets},
            "attacks": results}


def write_figures(run: Run, result: dict) -> None:
    from toolkit.plots import write_plots

    write_plots(run, result)


def write_tradeoff(combined: dict) -> None:
    from toolkit.tradeoff_plot import write_tradeoff_plot

    write_tradeoff_plot(combined, paths.results_root() / combined["dataset"] / "tradeoff.png")


def save(path, summary: dict) -> None:
    save_json(path, summary)


def dataset_summary_path(dataset: str):
    return paths.results_root() / dataset / "summary.json"


def _leaves(tree: dict, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _set(tree: dict, keys: tuple, value) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def combine(results: list[dict]) -> dict:
    """One summary for several seeds: metric values become means, with their std under "std"."""
    if len(results) == 1:
        return results[0]
    combined = {"dataset": results[0]["dataset"], "seed": [r["seed"] for r in results],
                "preset": results[0]["preset"], "raw_data": results[0]["raw_data"],
                "settings": results[0]["settings"], "std": {}}
    for section in ("models", "attacks"):
        for keys, _ in _leaves(results[0][section]):
            values = []
            for result in results:
                node = result[section]
                for key in keys:
                    node = node[key]
                values.append(node)
            _set(combined.setdefault(section, {}), keys, float(np.mean(values)))
            _set(combined["std"].setdefault(section, {}), keys, float(np.std(values)))
    return combined


def _cell(summary: dict, section: str, *keys: str) -> str:
    value, spread = summary[section], summary.get("std", {}).get(section)
    for key in keys:
        value = value[key]
        spread = spread[key] if spread else None
    return f"{value:.3f}" + (f"±{spread:.3f}" if spread is not None else "")


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
    seeds = summary["seed"] if isinstance(summary["seed"], list) else [summary["seed"]]
    title = (f"{summary['dataset']} ({summary['preset']} preset, seeds {seeds}, raw data: "
             f"{summary['raw_data']}); attack cells: AUC / TPR at 1% FPR")
    lines = [title] + ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)
