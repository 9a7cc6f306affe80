"""The privacy-utility trade-off of every model in a summary: test accuracy against the strongest
attack's AUC (left) and against the strongest attack's TPR at 1% FPR (right).

"Strongest" is taken per model and per metric: the largest value over every attack run against that
model (attacks that skip a model, e.g. the white-box attack on a top-k release, do not count for it).
One point per model; the models of one defense with a strength setting (DP-SGD's and DP-FedAvg's eps,
HAMP's gamma, MemGuard's budget, RelaxLoss' alpha, AdvReg's lambda: defense_suite.family) are one line in
order of strength, each defense in its own colour and marker, each point labelled with its strength; error
bars where the summary holds a std over seeds. Up and to the left is better.
"""
import math
from pathlib import Path

from other_attack_and_defend.defense_suite import family
from toolkit.checkpoints import save_figure

PANELS = (("auc", "AUC of the strongest attack", 0.5), ("tpr_at_1pct_fpr", "TPR at 1% FPR of the strongest attack", 0.01))
STYLE = {"fl": ("no defense", "black", "o"), "p2": ("P2", "tab:red", "*"),
         "output_noise": ("output noise (not DP)", "tab:blue", "s")}
# defenses drawn as a line over their strengths: (legend label, colour, marker, how a point's strength reads)
FAMILY_STYLE = {"dp_sgd": ("DP-SGD (example-level, tuned)", "tab:purple", "o", "ε={:g}"),
                "dp_fedavg": ("DP-FedAvg (client-level)", "tab:brown", "v", "ε={:g}"),
                "hamp": ("HAMP", "tab:orange", "D", "γ={:g}"),
                "memguard": ("MemGuard", "tab:cyan", "P", "L1≤{:g}"),
                "relaxloss": ("RelaxLoss", "tab:olive", "X", "α={:g}"),
                "advreg": ("AdvReg", "tab:pink", "h", "λ={:g}")}


def display_name(model: str) -> tuple[str, str, str]:
    """(label, colour, marker) of a model key of summary.json."""
    if model in STYLE:
        return STYLE[model]
    if model.startswith("top") and model[3:].isdigit():
        return f"top-{model[3:]} release", "tab:green" if model == "top1" else "tab:olive", "^"
    return model, "tab:gray", "D"


def dp_eps(model: str) -> float | None:
    if not model.startswith("dp_eps"):
        return None
    try:
        return float(model[len("dp_eps"):])
    except ValueError:
        return None


def mean_and_std(summary: dict, section: str, *keys: str) -> tuple[float, float]:
    """(mean, std) of one leaf; std 0 when the summary has none (one seed)."""
    value, spread = summary.get(section, {}), summary.get("std", {}).get(section, {})
    for key in keys:
        value = value[key]
        spread = spread.get(key, {}) if isinstance(spread, dict) else {}
    return float(value), float(spread) if isinstance(spread, (int, float)) else 0.0


def strongest(summary: dict, model: str, metric: str) -> tuple[float, float, str] | None:
    """(value, std, attack) of the attack with the largest `metric` against `model`, None if none ran."""
    found = []
    for attack, per_model in summary.get("attacks", {}).items():
        if model in per_model and metric in per_model[model] and not math.isnan(per_model[model][metric]):
            found.append((*mean_and_std(summary, "attacks", attack, model, metric), attack))
    return max(found) if found else None


def tradeoff_points(summary: dict) -> list[dict]:
    """One row per model with a test accuracy: its utility and its strongest attack per metric."""
    points = []
    for model, utility in summary.get("models", {}).items():
        if "test_acc" not in utility:
            continue
        accuracy, accuracy_std = mean_and_std(summary, "models", model, "test_acc")
        found = family(model, summary.get("settings"))
        row = {"model": model, "test_acc": accuracy, "test_acc_std": accuracy_std, "eps": dp_eps(model),
               "family": found[0] if found else None, "strength": found[1] if found else None}
        for metric, _, _ in PANELS:
            row[metric] = strongest(summary, model, metric)
        points.append(row)
    return points


def _pad_limits(axis, xs: list[float], ys: list[float]) -> None:
    """Axis limits that show every marker whole: 8% of the span (at least 0.01) on each side."""
    for values, setter in ((xs, axis.set_xlim), (ys, axis.set_ylim)):
        if not values:
            continue
        low, high = min(values), max(values)
        margin = max(0.01, 0.08 * (high - low))
        setter(low - margin, high + margin)


def write_tradeoff_plot(summary: dict, path: Path) -> Path:
    """Draw the two panels for `summary` (one run or several seeds combined) into `path` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = tradeoff_points(summary)
    figure, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for axis, (metric, label, chance) in zip(axes, PANELS):
        for name, (legend, colour, marker, strength) in FAMILY_STYLE.items():
            rows = sorted((p for p in points if p["family"] == name and p[metric]),
                          key=lambda p: (p["strength"] is None, p["strength"] or 0.0))
            if not rows:
                continue
            axis.errorbar([p[metric][0] for p in rows], [p["test_acc"] for p in rows],
                          xerr=[p[metric][1] for p in rows], yerr=[p["test_acc_std"] for p in rows],
                          color=colour, marker=marker, linestyle="-", capsize=3, label=legend)
            for p in rows:
                if p["strength"] is not None:
                    axis.annotate(strength.format(p["strength"]), (p[metric][0], p["test_acc"]),
                                  textcoords="offset points", xytext=(6, -10), fontsize=8, color=colour)
        for p in points:
            if p["family"] is not None or not p[metric]:
                continue
            name, colour, marker = display_name(p["model"])
            axis.errorbar([p[metric][0]], [p["test_acc"]], xerr=[p[metric][1]], yerr=[p["test_acc_std"]],
                          color=colour, marker=marker, markersize=11 if marker == "*" else 7, linestyle="none",
                          capsize=3, label=name)
        axis.axvline(chance, color="gray", linestyle=":", linewidth=1, label="chance level")
        axis.set_xlabel(f"{label}  (lower = more private)")
        axis.set_ylabel("test accuracy of released labels  (higher = more useful)")
        axis.grid(alpha=0.3)
        _pad_limits(axis, [chance] + [v for p in points if p[metric] for v in (p[metric][0] - p[metric][1],
                                                                               p[metric][0] + p[metric][1])],
                    [v for p in points if p[metric] for v in (p["test_acc"] - p["test_acc_std"],
                                                              p["test_acc"] + p["test_acc_std"])])
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=9)
    skipped = [p["model"] for p in points if not any(p[m] for m, _, _ in PANELS)]
    seeds = summary.get("seed")
    seeds = seeds if isinstance(seeds, list) else [seeds]
    title = (f"{summary.get('dataset', '?')}: privacy-utility trade-off ({summary.get('preset', '?')} preset, "
             f"seeds {seeds})\nper model, the strongest of: {', '.join(sorted(summary.get('attacks', {})))}")
    if skipped:
        title += f"\nno attack result for: {', '.join(skipped)}"
    figure.suptitle(title, fontsize=10)
    path = Path(path)
    try:
        save_figure(figure, path)
    finally:
        plt.close(figure)
    return path
