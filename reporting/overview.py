"""The cross-dataset results table of results/README.md, made from every results/<dataset>/summary.json.

    python reporting/overview.py        # rewrite the table in results/README.md

One row per dataset and model: test accuracy, the strongest attack by AUC and by TPR at 1% FPR (the
largest value over every attack run against that model, so an upper envelope), and the white-box
gradient attack, the paper's own. Means ± std over the seeds of the summary. main.py refreshes the
table after every full run; the text of results/README.md outside the markers is left as written.
"""
import argparse
import logging
from pathlib import Path

from data_preprocessing import DATASETS
from reporting.tradeoff_plot import mean_and_std, tradeoff_points
from toolkit import paths
from toolkit.checkpoints import load_json, save_text
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

BEGIN = "<!-- begin overview: written by reporting/overview.py from results/*/summary.json; edits inside are lost -->"
END = "<!-- end overview -->"
OFFICIAL = "official (MD5 checked)"


def _number(value: float, std: float, seeds: int) -> str:
    return f"{value:.3f} ± {std:.3f}" if seeds > 1 else f"{value:.3f}"


def _attack(found: tuple[float, float, str] | None, seeds: int) -> str:
    if found is None:
        return "–"
    value, std, attack = found
    return f"{_number(value, std, seeds)} ({attack})"


def _gradient(summary: dict, model: str, seeds: int) -> str:
    if model not in summary["attacks"].get("gradient", {}):
        return "–"
    return " / ".join(_number(*mean_and_std(summary, "attacks", "gradient", model, metric), seeds)
                      for metric in ("auc", "tpr_at_1pct_fpr"))


REQUIRED = ("dataset", "seed", "preset", "raw_data", "models", "attacks")


def summaries(results_root: Path) -> list[dict]:
    """Every results/<dataset>/summary.json of a full run, in data_preprocessing's dataset order. One that
    lacks what the table needs is an error naming it, not a dataset silently missing from the table."""
    found = []
    for path in sorted(results_root.glob("*/summary.json")):
        summary = load_json(path)
        missing = [key for key in REQUIRED if key not in summary]
        if missing:
            raise P2Error(f"{path} lacks {', '.join(missing)}: rerun python main.py --dataset {path.parent.name} "
                          f"(or delete the file to leave the dataset out of the table)")
        found.append(summary)
    found = [summary for summary in found if summary.get("preset") == "full"]
    rank = {name: position for position, name in enumerate(DATASETS)}
    return sorted(found, key=lambda summary: (rank.get(summary["dataset"], len(rank)), summary["dataset"]))


def table(found: list[dict]) -> str:
    """The markdown table, with a note under it for every dataset whose raw data is not the official release."""
    lines = ["| dataset | seeds | model | test acc | strongest attack, AUC | strongest attack, TPR at 1% FPR "
             "| gradient attack, AUC / TPR at 1% FPR |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for summary in found:
        seeds = summary["seed"] if isinstance(summary["seed"], list) else [summary["seed"]]
        name = summary["dataset"]
        raw_data = summary.get("raw_data", "not recorded")
        if raw_data != OFFICIAL:
            notes.append(f"{name}*: raw data: {raw_data}.")
            name += "*"
        for point in tradeoff_points(summary):
            model = point["model"]
            lines.append(f"| {name} | {len(seeds)} | {model} | "
                         f"{_number(point['test_acc'], point['test_acc_std'], len(seeds))} | "
                         f"{_attack(point['auc'], len(seeds))} | {_attack(point['tpr_at_1pct_fpr'], len(seeds))} | "
                         f"{_gradient(summary, model, len(seeds))} |")
    return "\n".join(lines + ([""] + notes if notes else []))


def with_table(text: str, new_table: str, begin: str = BEGIN, end: str = END) -> str:
    """`text` with the part between the markers replaced (markers and table appended if absent)."""
    block = f"{begin}\n{new_table}\n{end}"
    if begin in text and end in text.split(begin, 1)[1]:
        before, rest = text.split(begin, 1)
        return before + block + rest.split(end, 1)[1]
    return (text.rstrip("\n") + "\n\n" if text.strip() else "# Results\n\n") + block + "\n"


def refresh(results_root: Path | None = None) -> Path:
    """Rewrite the table in <results>/README.md from the summaries there."""
    root = results_root or paths.results_root()
    readme = root / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    save_text(readme, with_table(text, table(summaries(root))))
    log.info("results table written to %s", readme)
    return readme


def main(argv=None) -> None:
    from toolkit import cli

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default=None, help="results folder (default: $P2_RESULTS_DIR or results/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.main_guard(lambda _: refresh(Path(args.results_dir).resolve() if args.results_dir else None))


if __name__ == "__main__":
    main()
