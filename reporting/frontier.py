"""The privacy-utility frontier of every defense, per dataset, as a table of results/README.md.

For each accuracy budget (at most 1 and at most 5 points of test accuracy lost against the FL model), it
names the defense whose strongest attack has the lowest TPR at 1% FPR among the models within the budget,
and where P2 stands: its best setting within the budget (the P2 model and every point of the P2 sweep).
"Strongest attack" is the largest TPR at 1% FPR over every attack run against the model (the same upper
envelope as the overview table). Read from results/<dataset>/summary.json and p2_sweep.json.

    python reporting/frontier.py        # rewrite the frontier table in results/README.md
"""
import argparse
import logging
from pathlib import Path

from reporting.overview import summaries, with_table
from reporting.tradeoff_plot import strongest
from toolkit import paths
from toolkit.checkpoints import load_json, save_text

log = logging.getLogger(__name__)

BUDGETS = (0.01, 0.05)  # test accuracy the defense may cost, against the FL model
METRIC = "tpr_at_1pct_fpr"
BEGIN = "<!-- begin frontier: written by reporting/frontier.py; edits inside are lost -->"
END = "<!-- end frontier -->"


def candidates(summary: dict, sweep: dict | None) -> list[dict]:
    """(model, test accuracy, strongest TPR at 1% FPR, attack) of every released model, the sweep's included."""
    found = []
    for model, utility in summary["models"].items():
        best = strongest(summary, model, METRIC)
        if best is not None and "test_acc" in utility:
            found.append({"model": model, "test_acc": utility["test_acc"], "tpr": best[0], "attack": best[2]})
    for point in (sweep or {}).get("points", []):
        if point["model"] != "p2":
            found.append({"model": f"p2 (EPS={point['eps']:g}, ROUNDS={point['rounds']})",
                          "test_acc": point["test_acc"], "tpr": point["strongest_tpr_at_1pct_fpr"], "attack": ""})
    return found


def rows(summary: dict, sweep: dict | None) -> list[str]:
    """One markdown row per accuracy budget of one dataset."""
    fl = summary["models"]["fl"]["test_acc"]
    found = candidates(summary, sweep)
    result = []
    for budget in BUDGETS:
        within = [c for c in found if c["test_acc"] >= fl - budget and c["model"] != "fl"]
        best = min(within, key=lambda c: c["tpr"], default=None)
        p2 = min((c for c in within if c["model"].startswith("p2")), key=lambda c: c["tpr"], default=None)
        describe = (lambda c: f"{c['model']}: {c['tpr']:.3f} at test acc {c['test_acc']:.3f}" if c else "none")
        points = round(budget * 100)
        result.append(f"| {summary['dataset']} | at most {points} point{'' if points == 1 else 's'} | {describe(best)} | "
                      f"{describe(p2)} | "
                      f"{strongest(summary, 'fl', METRIC)[0]:.3f} at {fl:.3f} |")
    return result


def table(results_root: Path) -> str:
    lines = ["| dataset | accuracy budget | most private defense within it (strongest TPR at 1% FPR) "
             "| P2's best setting within it | FL model |", "|---|---|---|---|---|"]
    for summary in summaries(results_root):
        sweep_path = results_root / summary["dataset"] / "p2_sweep.json"
        lines += rows(summary, load_json(sweep_path) if sweep_path.is_file() else None)
    return "\n".join(lines)


def refresh(results_root: Path | None = None) -> Path:
    root = results_root or paths.results_root()
    readme = root / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    save_text(readme, with_table(text, table(root), BEGIN, END))
    log.info("frontier table written to %s", readme)
    return readme


def main(argv=None) -> None:
    from toolkit import cli

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default=None, help="results folder (default: $P2_RESULTS_DIR or results/)")
    args = parser.parse_args(argv)
    cli.setup_logging(False)
    cli.main_guard(lambda _: refresh(Path(args.results_dir).resolve() if args.results_dir else None))


if __name__ == "__main__":
    main()
