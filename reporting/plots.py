"""Figures of a run's attacks, drawn from its score files (results/<dataset>/<run>/scores/):

- roc_<attack>.png: one ROC curve per model, linear axes (left) and log-log axes (right, where the
  low-FPR regime of Carlini et al. 2022 is visible), chance diagonal, legend with AUC and TPR at low FPR;
- roc_strongest.png: per model, its strongest attack (highest AUC, or TPR at 1% FPR) together;
- hist_<attack>.png: member vs non-member score histograms, one panel per model, with the attack's
  threshold (chosen without evaluation labels).

Written to results/<dataset>/<run>/plots/ with matplotlib's Agg canvas (no display, no pyplot state).

    python reporting/plots.py --dataset adult --seed 0 [--quick]    # from that run's summary.json
"""
import logging
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from toolkit.checkpoints import load_arrays, save_figure
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.scoring import LOW_FPRS, tpr_at_fpr

log = logging.getLogger(__name__)

CRITERIA = ("auc", "tpr_at_1pct_fpr")
DISCRETE_LEVELS = 25     # scores with at most this many distinct values get one bar per value
HISTOGRAM_BINS = 40
CLIP_PERCENTILES = (0.5, 99.5)


def plots_dir(run: Run) -> Path:
    return run.results_dir / "plots"


def load_scores(run: Run, attack: str, target: str) -> tuple[dict, dict] | None:
    """(arrays, meta) of one score file, or None (with a warning) when it is missing or unreadable."""
    try:
        return load_arrays(run.score_path(attack, target))
    except P2Error as error:
        log.warning("plots: %s on %s left out (%s)", attack, target, error)
        return None


class Curve:
    """ROC of one attack on one model."""

    def __init__(self, scores: np.ndarray, is_member: np.ndarray):
        is_member = np.asarray(is_member, dtype=bool)
        self.fpr, self.tpr, _ = roc_curve(is_member, scores)
        self.auc = float(roc_auc_score(is_member, scores))
        self.low = {name: tpr_at_fpr(self.fpr, self.tpr, limit) for name, limit in LOW_FPRS.items()}
        self.members, self.nonmembers = int(is_member.sum()), int((~is_member).sum())


def _colours(models: list[str]) -> dict:
    """One colour per model, the same in every figure."""
    from matplotlib import colormaps
    palette = colormaps["tab10"].colors
    return {model: palette[i % len(palette)] for i, model in enumerate(models)}


def _roc_figure(title: str, curves: list[tuple[str, Curve, tuple]]) -> Figure:
    """Linear and log-log ROC panels for (label, curve, colour) triples."""
    figure = Figure(figsize=(12, 5.4))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.86, wspace=0.18)
    FigureCanvasAgg(figure)
    linear, logarithmic = figure.subplots(1, 2)
    floor = 0.5 / max(max(c.nonmembers for _, c, _ in curves), max(c.members for _, c, _ in curves), 1)
    for label, curve, colour in curves:
        linear.plot(curve.fpr, curve.tpr, color=colour, lw=1.6, label=f"{label}  (AUC {curve.auc:.3f})")
        # steps, not lines, between ROC points: the TPR read at an FPR is the one the metrics report
        logarithmic.plot(np.clip(curve.fpr, floor, 1), np.clip(curve.tpr, floor, 1), color=colour, lw=1.6,
                         drawstyle="steps-post",
                         label=f"{label}  (TPR {curve.low['tpr_at_1pct_fpr']:.3f} @1%, "
                               f"{curve.low['tpr_at_0.1pct_fpr']:.3f} @0.1% FPR)")
    linear.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    linear.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title="ROC, linear axes")
    logarithmic.plot([floor, 1], [floor, 1], color="grey", ls="--", lw=1, label="chance")
    for fpr in LOW_FPRS.values():
        if fpr > floor:
            logarithmic.axvline(fpr, color="lightgrey", ls=":", lw=1)
    logarithmic.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), aspect="equal",
                    title="ROC, log-log axes (low-FPR regime)")
    for axes in (linear, logarithmic):
        axes.set_xlabel("false positive rate (non-members flagged)")
        axes.set_ylabel("true positive rate (members found)")
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize=8, framealpha=0.9)
    figure.suptitle(title)
    return figure


def _histogram_bins(values: np.ndarray) -> np.ndarray:
    levels = np.unique(values)
    if len(levels) <= DISCRETE_LEVELS:  # one bar per value (e.g. the gap attack's 0/1, vote fractions)
        if len(levels) == 1:
            return np.array([levels[0] - 0.5, levels[0] + 0.5])
        middles = (levels[1:] + levels[:-1]) / 2
        return np.concatenate([[levels[0] - (middles[0] - levels[0])], middles,
                               [levels[-1] + (levels[-1] - middles[-1])]])
    low, high = np.percentile(values, CLIP_PERCENTILES)
    if not high > low:
        low, high = values.min(), values.max()
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


def _histogram_figure(title: str, panels: list[tuple[str, np.ndarray, np.ndarray, float]]) -> Figure:
    """Member vs non-member score histograms, one panel per (model, scores, is_member, threshold)."""
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.88, wspace=0.3, hspace=0.55)
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax, (model, scores, is_member, threshold) in zip(axes, panels):
        bins = _histogram_bins(scores)
        clipped = np.clip(scores, bins[0], bins[-1])
        for mask, label, colour in ((is_member, "members", "tab:red"), (~is_member, "non-members", "tab:blue")):
            ax.hist(clipped[mask], bins=bins, weights=np.full(mask.sum(), 1 / max(mask.sum(), 1)), alpha=0.5,
                    color=colour, label=f"{label} ({mask.sum()})")
        if bins[0] <= threshold <= bins[-1]:
            ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
        note = "" if len(np.unique(scores)) <= DISCRETE_LEVELS else "\n(tails clipped to the 0.5-99.5th percentiles)"
        ax.set(title=model, ylabel="fraction of examples", xlabel=f"membership score (higher = member){note}")
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(title)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    return save_figure(figure, path)


def strongest_attacks(summary: dict, criterion: str = "auc") -> dict:
    """Per model, the attack with the highest `criterion` in the summary ({model: attack})."""
    if criterion not in CRITERIA:
        raise P2Error(f"plots: criterion {criterion!r} must be one of {CRITERIA}")
    best = {}
    for model in summary["models"]:
        candidates = {attack: results[model][criterion] for attack, results in summary["attacks"].items()
                      if model in results and criterion in results[model]}
        if candidates:
            best[model] = max(candidates, key=candidates.get)
    return best


def write_plots(run: Run, summary: dict, criterion: str = "auc") -> list[Path]:
    """Every figure of this run's attacks on the models of `summary` (as reporting.summary.collect
    makes it); returns the files written. Missing score files are left out with a warning. Quick runs
    (smoke tests) draw the ROC curves only, not the score histograms."""
    models = list(summary["models"])
    colours = _colours(models)
    folder = plots_dir(run)
    title = f"{run.dataset}, {run.name}"
    written, loaded = [], {}
    for attack, results in summary["attacks"].items():
        for model in models:
            if model in results:
                content = load_scores(run, attack, model)
                if content is not None:
                    loaded[attack, model] = content
        present = [model for model in models if (attack, model) in loaded]
        if not present:
            continue
        curves = [(model, Curve(loaded[attack, model][0]["scores"], loaded[attack, model][0]["is_member"]),
                   colours[model]) for model in present]
        written.append(_save(_roc_figure(f"{attack} attack: {title}", curves), folder / f"roc_{attack}.png"))
        panels = [(model, loaded[attack, model][0]["scores"], loaded[attack, model][0]["is_member"].astype(bool),
                   float(loaded[attack, model][1]["threshold"])) for model in present]
        if not run.quick:
            written.append(_save(_histogram_figure(f"{attack} attack scores: {title}", panels),
                                 folder / f"hist_{attack}.png"))
    strongest = [(model, attack) for model, attack in strongest_attacks(summary, criterion).items()
                 if (attack, model) in loaded]
    if strongest:
        curves = [(f"{model}: {attack}", Curve(loaded[attack, model][0]["scores"],
                                               loaded[attack, model][0]["is_member"]), colours[model])
                  for model, attack in strongest]
        name = "AUC" if criterion == "auc" else "TPR at 1% FPR"
        written.append(_save(_roc_figure(f"strongest attack per model (by {name}): {title}", curves),
                             folder / "roc_strongest.png"))
    log.info("%d figures written to %s", len(written), folder)
    return written


def main(argv=None) -> None:
    from toolkit import cli
    from toolkit.checkpoints import load_json

    parser = cli.parser(__doc__)
    parser.add_argument("--criterion", choices=CRITERIA, default="auc",
                        help="how the strongest attack per model is chosen (default: auc)")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)
    run = cli.run_from_args(args)
    for path in write_plots(run, load_json(run.results_dir / "summary.json"), args.criterion):
        print(path)


if __name__ == "__main__":
    from toolkit.cli import main_guard
    main_guard(main)
