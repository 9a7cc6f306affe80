"""The results of a run: model utility and attack metrics in summary.json, and the printed table."""
import numpy as np

from toolkit import paths
from toolkit.checkpoints import load_arrays, save_json
from toolkit.run import Run

TABLE_METRICS = ("auc", "tpr_at_1pct_fpr")


def model_utility(run: Run, target: str) -> dict:
    """Accuracy of a target model on the members (train) and on the test set."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset
    from FL_model_generation.fl_stage import load_model
    from FL_model_generation.models import accuracy

    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    model, _ = load_model(run.target_model_path(target), run)
    return {"train_acc": accuracy(model, *tensors(dataset, partition.members)),
            "test_acc": accuracy(model, *tensors(dataset, partition.test))}


def attack_metrics(run: Run, attack: str, target: str) -> dict:
    from menif_attack.scoring import membership_metrics

    arrays, meta = load_arrays(run.score_path(attack, target))
    return membership_metrics(arrays["scores"], arrays["is_member"], meta["threshold"])


def collect(run: Run, settings: dict, models: tuple[str, ...], attacks: tuple[str, ...]) -> dict:
    return {"dataset": run.dataset, "seed": run.seed, "preset": "quick" if run.quick else "full",
            "settings": settings,
            "models": {target: model_utility(run, target) for target in models},
            "attacks": {attack: {target: attack_metrics(run, attack, target) for target in models}
                        for attack in attacks}}


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
                "preset": results[0]["preset"], "settings": results[0]["settings"], "std": {}}
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
    """Rows: models; columns: train and test accuracy, then each attack's AUC and TPR at 1% FPR."""
    attacks = list(summary["attacks"])
    header = ["model", "train acc", "test acc"] + [f"{a} {m}" for a in attacks
                                                   for m in ("AUC", "TPR@1%FPR")]
    rows = [header]
    for target in summary["models"]:
        row = [target, _cell(summary, "models", target, "train_acc"), _cell(summary, "models", target, "test_acc")]
        row += [_cell(summary, "attacks", attack, target, metric) for attack in attacks for metric in TABLE_METRICS]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    seeds = summary["seed"] if isinstance(summary["seed"], list) else [summary["seed"]]
    title = f"{summary['dataset']} ({summary['preset']} preset, seeds {seeds})"
    lines = [title] + ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)
