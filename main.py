"""P2-Protection end to end: data, partition, FedAvg, the P2 round, the baseline defenses, every attack,
one summary per run, and the results over seeds.

    python main.py                                  # Adult, seed 0, every stage
    python main.py --dataset location --seed 0 1 2  # three seeds: mean and std
    python main.py --dataset all --quick            # a smoke run of every dataset whose raw files are present
    python main.py --engine flower                  # FedAvg and the P2 round on a local Flower federation

Stages talk through files (model/<dataset>/<run>/, results/<dataset>/<run>/). A stage reruns exactly when
something it is made from changed (its constants, the data, a file it reads: toolkit/stages.py); --force
reruns everything. The constants are those at the top of the per-dataset stage scripts. After full runs,
results/<dataset>/{metrics.csv, summary.json, tradeoff.png} and the table of results/README.md are rebuilt
from every seed made with the current constants and data.
"""
import argparse
import logging
import time

from data_preprocessing import raw_data_provenance, raw_files_present
from flower_federation.engine import ENGINES, FlowerEngine, engine_from
from other_attack_and_defend.targets import target_utility
from pipeline import ATTACKS, DEFENSES, SUPPORTED, attack_names, load_experiment, stages, sweep_points, targets, trained_defenses
from reporting import aggregate, diagnostics, frontier, metrics_table, overview, p2_sweep, summary
from reporting.plots import write_plots
from toolkit import cli
from toolkit import stages as runner
from other_attack_and_defend import server_attacks
from toolkit.checkpoints import clean_orphans, load_json, save_json
from toolkit.errors import P2Error
from toolkit.paths import data_root
from toolkit.run import Run

log = logging.getLogger("main")


def run_experiment(run: Run, attacks: tuple[str, ...], force: bool, threads: int,
                   sweep: bool = False, engine=None, defenses: tuple[str, ...] = DEFENSES) -> tuple[dict, dict]:
    """Every stage of one run that is not up to date (with `sweep`, P2's strength sweep too), then its summary
    and figures. `engine`: a FlowerEngine runs FedAvg and the P2 round on a Flower federation (None: in this
    process); `defenses`: the defenses compared with P2. Returns (summary, what the run was made from)."""
    experiment = load_experiment(run, defenses=defenses)
    for folder in (run.model_dir, run.results_dir):
        clean_orphans(folder)
    everything = stages(experiment, attacks, sweep=sweep, engine=engine)
    try:
        runner.run(everything, force=force, threads=threads)
    finally:
        if engine is not None:
            engine.close()
    timings = {stage.name: runner.recorded_seconds(stage) for stage in everything}
    made_from = {"settings": experiment.constants(), "data_fingerprint": experiment.data.fingerprint,
                 "raw_data": raw_data_provenance(run.dataset, run.data_dir)}
    released = targets(experiment)
    checks = diagnostics.all_diagnostics(run, released, experiment.p2, {"p2"})
    for name, values in checks.items():
        log.info("%s", diagnostics.describe(name, values))
    server = load_json(server_attacks.output_path(run)) if server_attacks.output_path(run).is_file() else None
    server = server_attacks.with_defenses(run, server, trained_defenses(experiment))
    result = summary.collect(run, made_from, released, attack_names(experiment, attacks),
                             {name: seconds for name, seconds in timings.items() if seconds is not None}, threads,
                             diagnostics=checks, server_attacks=server,
                             engine=engine.name if engine is not None else "inprocess")
    unchanged = summary.same_results(run.results_dir / "summary.json", result)
    summary.save(run.results_dir / "summary.json", result)
    if run.quick:
        metrics_table.save(metrics_table.long_form(result), run.results_dir / "metrics.csv")
    if not unchanged:  # the figures of the same numbers are already there
        write_plots(run, result)
        diagnostics.write_plot(result, run.results_dir / "plots" / "diagnostics.png")
    if sweep:
        write_sweep(experiment, attack_names(experiment, attacks), made_from)
    return result, made_from


def write_sweep(experiment, attacks: list[str], made_from: dict) -> None:
    """results/<dataset>/<run>/p2_sweep.json: every sweep setting's utility, strongest attack and labels kept."""
    run = experiment.run
    points = sweep_points(experiment)
    models = [target for _, target in points]
    utility = {target.name: target_utility(run, target) for target in models}
    checks = diagnostics.all_diagnostics(run, models, experiment.p2, set())
    entries = p2_sweep.run_entries(run, points, attacks, utility, checks)
    for entry in entries:
        log.info("P2 sweep EPS=%g ROUNDS=%d: test accuracy %.4f, strongest AUC %.4f (%s), TPR@1%%FPR %.4f, members' "
                 "labels kept %.4f", entry["eps"], entry["rounds"], entry["test_acc"], entry["strongest_auc"],
                 entry["strongest_auc_attack"], entry["strongest_tpr_at_1pct_fpr"], entry["labels_kept"])
    save_json(run.results_dir / "p2_sweep.json", {"dataset": run.dataset, "seed": run.seed,
                                                 "preset": "quick" if run.quick else "full", **made_from,
                                                 "points": entries})


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
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS, metavar="ATTACK",
                        help=f"attacks to run (default: all): {' '.join(ATTACKS)}")
    parser.add_argument("--defenses", nargs="+", default=list(DEFENSES), choices=(*DEFENSES, "none"), metavar="DEFENSE",
                        help=f"defenses to compare P2 with (default: all; none: FL and P2 only): {' '.join(DEFENSES)}")
    parser.add_argument("--force", action="store_true", help="rerun every stage even if its output is up to date")
    parser.add_argument("--sweep", action="store_true",
                        help="also run P2's strength sweep (SWEEP_EPS x SWEEP_ROUNDS in defend/defend_<dataset>.py)")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $P2_DATA_DIR or dataset/)")
    parser.add_argument("--engine", default=None, choices=ENGINES,
                        help="where FedAvg and the P2 round run: inprocess (default, or $P2_ENGINE), or flower: a "
                             "Flower federation on this machine (flower_federation/; README.md)")
    FlowerEngine.add_arguments(parser)
    cli.add_threads(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)

    def run_all(_):
        threads = cli.apply_threads(args.threads, args.device)
        started = time.perf_counter()
        for dataset in datasets_to_run(args.dataset, args.data_dir):
            results = []
            for seed in args.seed:
                engine = engine_from(args.engine, min_clients=args.min_clients, reply_timeout=args.reply_timeout,
                                     threads=threads)
                result, made_from = run_experiment(Run(dataset, seed, args.quick, args.data_dir), tuple(args.attacks),
                                                   args.force, threads, sweep=args.sweep, engine=engine,
                                                   defenses=tuple(name for name in args.defenses if name != "none"))
                results.append(result)
            if args.quick:
                for result in results:
                    print(summary.format_table(result))
                continue
            combined = aggregate.refresh_dataset(dataset, made_from)
            if args.sweep:
                p2_sweep.refresh(dataset, made_from)
            overview.refresh()
            frontier.refresh()
            print(summary.format_table(combined))
        log.info("total wall time %.1f s (%d threads)", time.perf_counter() - started, threads)

    cli.main_guard(run_all)


if __name__ == "__main__":
    main()
