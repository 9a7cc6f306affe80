"""P2-Protection end to end: data, partition, FedAvg, the P2 round, attacks, one results table.

Stages talk through files (model/<dataset>/<run>/, results/<dataset>/<run>/); a stage whose output
exists and was made with the current constants is skipped unless --force; once a stage reruns, every
later stage reruns. The constants are those of the per-dataset stage scripts, imported from them.
"""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import data_partitioning  # noqa: E402
from data_preprocessing import load_dataset, raw_data_provenance, raw_files_present  # noqa: E402
from defend import p2_stage  # noqa: E402
from FL_model_generation import fl_stage  # noqa: E402
from menif_attack import gradient_attack_stage  # noqa: E402
from other_attack_and_defend import attack_suite, defense_suite  # noqa: E402
from toolkit import cli, overview, summary  # noqa: E402
from toolkit.errors import P2Error  # noqa: E402
from toolkit.paths import data_root  # noqa: E402
from toolkit.run import Run  # noqa: E402

log = logging.getLogger("main")
SUPPORTED = ("adult", "purchase100", "location", "mnist", "femnist", "cifar10")
ALL_ATTACKS = ("gradient",) + attack_suite.ATTACKS


def stage_constants(dataset: str) -> dict:
    """The SETTINGS of each per-dataset stage script: the one place experiment constants live."""
    modules = {"fl": f"FL_model_generation.FL_model_for_{dataset}", "p2": f"defend.defend_{dataset}",
               "gradient": f"menif_attack.membership_attack_{dataset}",
               "defenses": f"other_attack_and_defend.baseline_defenses_{dataset}"}
    return {stage: importlib.import_module(module).SETTINGS for stage, module in modules.items()}


def pipeline(run: Run, settings: dict, attacks: list[str]) -> list[tuple[str, callable, callable]]:
    """(name, is_done, do) for every stage, in order."""
    stages = [
        ("partition", lambda: data_partitioning.is_done(run), lambda: data_partitioning.write_partition(run)),
        ("FedAvg", lambda: fl_stage.is_done(run, settings["fl"]), lambda: fl_stage.train_fl_model(run, settings["fl"])),
        ("P2 round", lambda: p2_stage.is_done(run, settings["p2"]), lambda: p2_stage.run_stage(run, settings["p2"])),
    ]
    stages += defense_suite.defense_stages(run)
    targets = defense_suite.all_targets(run)
    if "gradient" in attacks:
        stages += [(f"gradient attack on {target.name}",
                    lambda t=target: gradient_attack_stage.is_done(run, settings["gradient"], t),
                    lambda t=target: gradient_attack_stage.attack_target(run, settings["gradient"], t))
                   for target in targets if target.whitebox]
    others = [attack for attack in attacks if attack != "gradient"]
    if others:
        stages += attack_suite.attack_stages(run, targets, others)
    return stages


def run_experiment(run: Run, attacks: list[str], force: bool) -> dict:
    settings = stage_constants(run.dataset)
    settings.update(attack_suite.suite_settings(run.dataset, [a for a in attacks if a != "gradient"]))
    load_dataset(run.dataset, run.data_dir)
    rerun = force
    for name, is_done, do in pipeline(run, settings, attacks):
        if not rerun and is_done():
            log.info("%s: up to date, skipped", name)
            continue
        started = time.perf_counter()
        do()
        rerun = True
        log.info("%s: done in %.1f s", name, time.perf_counter() - started)
    result = summary.collect(run, {name: value.as_dict() for name, value in settings.items()},
                             defense_suite.all_targets(run), attacks, raw_data_provenance(run.dataset, run.data_dir))
    summary.save(run.results_dir / "summary.json", result)
    summary.write_figures(run, result)
    return result


def datasets_to_run(choice: str, data_dir) -> list[str]:
    """The chosen dataset; for "all", every supported dataset whose raw files are in the data dir."""
    if choice != "all":
        return [choice]
    present = [name for name in SUPPORTED if raw_files_present(name, data_dir)]
    for name in SUPPORTED:
        if name not in present:
            log.info("%s: raw files not in %s, skipped", name, data_root(data_dir) / name)
    if not present:
        raise P2Error(f"--dataset all: no raw files of any supported dataset ({', '.join(SUPPORTED)}) "
                      f"in {data_root(data_dir)}; see dataset/README.md or pass --data-dir")
    return present


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="adult", choices=(*SUPPORTED, "all"),
                        help="dataset, or all: every one whose raw files are present (default: adult)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="one or more seeds; several give mean and std (default: 0)")
    parser.add_argument("--quick", action="store_true", help="reduced preset for smoke runs (own output folders)")
    parser.add_argument("--attacks", nargs="+", default=list(ALL_ATTACKS), choices=ALL_ATTACKS, metavar="ATTACK",
                        help=f"attacks to run (default: all): {' '.join(ALL_ATTACKS)}")
    parser.add_argument("--force", action="store_true", help="rerun every stage even if its output is up to date")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $P2_DATA_DIR or dataset/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)
    started = time.perf_counter()
    for dataset in datasets_to_run(args.dataset, args.data_dir):
        results = [run_experiment(Run(dataset, seed, args.quick, args.data_dir), args.attacks, args.force)
                   for seed in args.seed]
        combined = summary.combine(results)
        if not args.quick:
            summary.save(summary.dataset_summary_path(dataset), combined)
            summary.write_tradeoff(combined)
            overview.refresh()
        print(summary.format_table(combined))
    log.info("total wall time %.1f s", time.perf_counter() - started)


if __name__ == "__main__":
    cli.main_guard(main)
