"""P2's strength sweep as results: one entry per setting (EPS x ROUNDS) with the released model's test
accuracy, the strongest attack's AUC and TPR at 1% FPR, and the share of members' labels it keeps.

Per run: results/<dataset>/seed<k>/p2_sweep.json. Over seeds: results/<dataset>/p2_sweep.json (mean and std
per setting over the seeds that ran it, and each seed's values, so later runs can add seeds) and p2_sweep.png,
built like the other per-dataset results from every seed made with the current constants and data
(reporting/aggregate.py). A point is a setting (EPS, ROUNDS) of the current grid: a seed swept on another grid
with the same other constants adds the points the two grids share, so widening the grid keeps the seeds made.
"""
import logging

import numpy as np

from reporting.summary import attack_metrics, dataset_folder, made_like
from reporting.tradeoff_plot import PANELS, display_name, dp_eps, strongest
from toolkit.checkpoints import load_json, save_figure, save_json
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

VALUES = ("test_acc", "train_acc", "strongest_auc", "strongest_tpr_at_1pct_fpr", "labels_kept", "members_top_prob",
          "nonmembers_top_prob")


def run_entries(run, points, attacks: list[str], utility: dict, checks: dict) -> list[dict]:
    """One entry per sweep point of a run. `utility` and `checks` hold each target's utility and diagnostics."""
    entries = []
    for settings, target in points:
        metrics = {attack: attack_metrics(run, attack, target.name) for attack in attacks}
        summary = {"attacks": {attack: {target.name: values} for attack, values in metrics.items() if values}}
        by_auc, by_tpr = strongest(summary, target.name, "auc"), strongest(summary, target.name, "tpr_at_1pct_fpr")
        entries.append({"eps": settings.eps, "rounds": settings.rounds, "model": target.name,
                        "test_acc": utility[target.name]["test_acc"], "train_acc": utility[target.name]["train_acc"],
                        "strongest_auc": by_auc[0], "strongest_auc_attack": by_auc[2],
                        "strongest_tpr_at_1pct_fpr": by_tpr[0], "strongest_tpr_attack": by_tpr[2],
                        "labels_kept": checks[target.name]["members"]["labels_kept"],
                        "members_top_prob": checks[target.name]["members"]["top_prob"],
                        "nonmembers_top_prob": checks[target.name]["nonmembers"]["top_prob"]})
    return entries


def refresh(dataset: str, current: dict) -> dict | None:
    """Rewrite results/<dataset>/p2_sweep.{json,png} from every current seed (committed ones included)."""
    folder = dataset_folder(dataset)
    per_seed, stale = {}, set()
    combined_path = folder / "p2_sweep.json"
    if combined_path.is_file():
        combined = load_json(combined_path)
        if made_like(combined, current, ignoring=("p2_sweep",)):
            per_seed.update({int(seed): entries for seed, entries in combined["per_seed"].items()})
        else:
            stale.update(int(seed) for seed in combined.get("per_seed", {}))
    for path in sorted(folder.glob("seed*/p2_sweep.json")):
        try:
            result = load_json(path)
        except P2Error as error:
            log.warning("%s", error)
            continue
        if made_like(result, current, ignoring=("p2_sweep",)):
            per_seed[result["seed"]] = result["points"]
            stale.discard(result["seed"])
        elif result["seed"] not in per_seed:
            stale.add(result["seed"])
    stale -= set(per_seed)
    if stale:
        log.warning("results/%s/p2_sweep.json: seed(s) %s were made with other constants or data and are left out; "
                    "rerun them with: python defend/p2_sweep.py --dataset %s --seed %s", dataset,
                    ", ".join(map(str, sorted(stale))), dataset, " ".join(map(str, sorted(stale))))
    points = combined_points(per_seed, current["settings"]["p2_sweep"])
    if not points:
        return None
    seeds = sorted({seed for point in points for seed in point["seeds"]})
    result = {"dataset": dataset, "seeds": seeds, "settings": current["settings"],
              "data_fingerprint": current["data_fingerprint"], "raw_data": current["raw_data"], "points": points,
              "per_seed": {str(seed): per_seed[seed] for seed in seeds}}
    save_json(combined_path, result)
    baselines = load_json(folder / "summary.json") if (folder / "summary.json").is_file() else None
    write_plot(result, baselines, folder / "p2_sweep.png")
    return result


def combined_points(per_seed: dict[int, list[dict]], grid: dict) -> list[dict]:
    """Mean and std over seeds of every point of the grid (SWEEP_EPS x SWEEP_ROUNDS) that some seed ran, each
    with the seeds behind it."""
    points = []
    for eps in grid["SWEEP_EPS"]:
        for rounds in grid["SWEEP_ROUNDS"]:
            entries = {seed: entry for seed, seed_entries in sorted(per_seed.items()) for entry in seed_entries
                       if (entry["eps"], entry["rounds"]) == (eps, rounds)}
            if not entries:
                continue
            first = next(iter(entries.values()))
            point = {"eps": eps, "rounds": rounds, "model": first["model"], "seeds": sorted(entries)}
            for key in VALUES:
                values = [entry[key] for entry in entries.values()]
                point[key], point[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
            point["strongest_auc_attack"] = first["strongest_auc_attack"]
            points.append(point)
    return points


def write_plot(result: dict, baselines: dict | None, path) -> None:
    """Test accuracy against the strongest attack's AUC (left) and TPR at 1% FPR (right): one line per ROUNDS
    over EPS, and the FL, DP-SGD, output-noise and top-k models of the dataset's summary for comparison."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    rounds = sorted({point["rounds"] for point in result["points"]})
    colours = {r: c for r, c in zip(rounds, ("tab:red", "tab:orange", "tab:brown", "tab:pink", "tab:olive"))}
    for axis, (metric, label, chance) in zip(axes, PANELS):
        key = "strongest_auc" if metric == "auc" else "strongest_tpr_at_1pct_fpr"
        for r in rounds:
            line = sorted((p for p in result["points"] if p["rounds"] == r), key=lambda p: p["eps"])
            axis.errorbar([p[key] for p in line], [p["test_acc"] for p in line],
                          xerr=[p[f"{key}_std"] for p in line], yerr=[p["test_acc_std"] for p in line],
                          color=colours[r], marker="*", markersize=9, capsize=2, label=f"P2, ROUNDS={r}")
            for p in line:
                axis.annotate(f"{p['eps']:g}", (p[key], p["test_acc"]), textcoords="offset points", xytext=(4, 4),
                              fontsize=7, color=colours[r])
        for model in (baselines or {}).get("models", {}):
            if model == "p2" or model.startswith("p2_"):
                continue
            found = strongest(baselines, model, metric)
            if found is None:
                continue
            name, colour, marker = display_name(model)
            if dp_eps(model) is not None:
                name, colour, marker = f"DP-SGD ε={dp_eps(model):g}", "tab:purple", "o"
            accuracy = baselines["models"][model]["test_acc"]
            axis.errorbar([found[0]], [accuracy], xerr=[found[1]], color=colour, marker=marker, linestyle="none",
                          capsize=2, label=name)
        axis.axvline(chance, color="gray", linestyle=":", linewidth=1)
        axis.set_xlabel(f"{label}  (lower = more private)")
        axis.set_ylabel("test accuracy of the released model")
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    figure.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 6), fontsize=8)
    figure.suptitle(f"{result['dataset']}: P2's strength sweep (numbers: EPS), seeds {result['seeds']}", fontsize=10)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.24, top=0.9, wspace=0.22)
    save_figure(figure, path)
