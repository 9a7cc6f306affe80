"""Try P2 settings on a trained FL model in minutes, without the attacks.

Each tried setting's P2 round runs in memory from the run's FL model (nothing is written to model/), and the
released model, the average of the clients' P2 models, is measured on the evaluation rows: test accuracy,
labels kept against the FL model, mean top probability, and the loss attack's AUC and TPR at 1% FPR
(members against non-members: a signal no attacker has to fit). The first row is the constants of
defend/defend_<dataset>.py as they are: the pipeline's P2 model, read from model/ when that stage is up to
date, else made in memory with the P2 stage's batch orders (the same model up to float rounding, which 200
epochs can amplify: docs/NOTES.md §7.11). Each --try changes some of those constants. EPS near 0 is the
control that fine-tunes toward the FL model's own outputs: what P2 does beyond it is the poisoned targets'
doing (docs/NOTES.md §7.11).
The full attack battery on a setting is `main.py --sweep`.

Writes results/<dataset>/seed<k>/p2_try_settings.json (quick_seed<k>/ with --quick).

    python defend/p2_try_settings.py --dataset cifar10 --try EPS=0.001 --try "LR=3e-5 EPOCHS=50"
"""
import ast
import logging
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from data_partitioning import load_partition, tensors
from defend.p2_protection import P2Settings, protect_federations
from FL_model_generation.fl_stage import load_model
from FL_model_generation.models import build_model, load_state, predict_logits
from other_attack_and_defend.metric_attacks import metric_signal
from pipeline import Experiment, load_experiment, stages
from reporting.diagnostics import evaluation_data, side_diagnostics
from toolkit import cli
from toolkit import stages as runner
from toolkit.checkpoints import save_json
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.scoring import threshold_free_metrics
from toolkit.settings import SettingError
from toolkit.seeding import torch_generator

log = logging.getLogger(__name__)


def parse_try(text: str) -> dict:
    """'EPS=0.05 LR=3e-5' -> {'EPS': 0.05, 'LR': 3e-05}: space-separated CONSTANT=value pairs, each value a
    Python literal as in defend/defend_<dataset>.py (TRAINABLE=('fc3',))."""
    changes = {}
    for pair in text.split():
        name, equals, value = pair.partition("=")
        try:
            if not equals or not name.isupper():
                raise ValueError
            changes[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise P2Error(f"--try {text!r}: {pair!r} is not CONSTANT=value with a Python literal value "
                          f"(for example EPS=0.05 or TRAINABLE=('fc3',))") from None
    if not changes:
        raise P2Error(f"--try {text!r} names no constant; for example --try EPS=0.05")
    return changes


def changed(settings: P2Settings, changes: dict) -> P2Settings:
    """`settings` with {CONSTANT: value} replaced, each checked; errors name the --try, not the script."""
    unknown = sorted(set(changes) - settings.constant_names())
    if unknown:
        raise P2Error(f"--try: P2 has no constant(s) {unknown}; its constants are {sorted(settings.constant_names())}")
    try:
        return replace(settings, **{name.lower(): value for name, value in changes.items()})
    except SettingError as error:
        raise P2Error(f"--try {error}") from None


def check_upstream(experiment: Experiment) -> bool:
    """Refuse a stale or missing partition or FL model, as the P2 stage itself would, naming the command
    that remakes it. Returns whether the pipeline's P2 model is up to date (then it is read, not remade)."""
    everything = stages(experiment)
    p2_stages = [stage for stage in everything if stage.group == "p2"]
    runner.check_upstream(everything, p2_stages)
    return all(runner.staleness(stage) is None for stage in p2_stages)


def batch_order(seed: int, rounds: int):
    """The P2 stage's minibatch generators (defend/p2_stage.py), so the first setting is the pipeline's model."""
    def generator(federation: int, round_index: int, client: int) -> torch.Generator:
        if rounds == 1:
            return torch_generator(seed, "p2", client)
        return torch_generator(seed, "p2", client, "round", round_index)
    return generator


def evaluation_rows(experiment: Experiment, fl_model: torch.nn.Module) -> tuple[dict, dict]:
    """({side: (features, labels)} for the evaluation members and non-members and the test rows,
    {side: the FL model's labels})."""
    rows = {**evaluation_data(experiment.run), "test": tensors(experiment.data, load_partition(experiment.run).test)}
    return rows, {side: predict_logits(fl_model, features).argmax(1) for side, (features, _) in rows.items()}


def measure(model: torch.nn.Module, rows: dict, fl_labels: dict) -> dict:
    """The released model on the evaluation rows and the test rows."""
    posteriors = {side: predict_logits(model, features).softmax(1) for side, (features, _) in rows.items()}
    result = {"test_acc": float((posteriors["test"].argmax(1) == rows["test"][1]).double().mean())}
    for side in ("members", "nonmembers"):
        result[side] = side_diagnostics(posteriors[side], rows[side][1], fl_labels[side])
    signals = [metric_signal(posteriors[side], rows[side][1], "loss") for side in ("members", "nonmembers")]
    is_member = [True] * len(signals[0]) + [False] * len(signals[1])
    loss_attack = threshold_free_metrics(np.concatenate(signals), np.array(is_member))
    result["loss_attack"] = {key: loss_attack[key] for key in ("auc", "tpr_at_1pct_fpr")}
    return result


def try_settings(experiment: Experiment, tries: list[dict]) -> dict:
    """Measure the pipeline's P2 model (the script's constants) and, run in memory, the P2 round of each of
    `tries` ({CONSTANT: value}), beside the FL model."""
    run = experiment.run
    p2_made = check_upstream(experiment)
    settings = [experiment.p2] + [changed(experiment.p2, changes) for changes in tries]
    for candidate in settings:
        if candidate.start != "global":
            raise P2Error(f"START = {candidate.start!r}: p2_try_settings.py starts every client from the final "
                          f"global model (START = 'global'); for the original code's variant set START in "
                          f"{experiment.script('p2')} and run main.py")
    fl_model, meta = load_model(run.fl_final_path, run)
    rows, fl_labels = evaluation_rows(experiment, fl_model)
    federation = [tensors(experiment.data, client) for client in load_partition(run).clients]
    result = {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "threads": torch.get_num_threads(),
              "data_fingerprint": experiment.data.fingerprint, "fl": measure(fl_model, rows, fl_labels), "settings": []}
    for changes, setting in tqdm(list(zip([{}] + tries, settings)), desc=f"P2 settings on {run.dataset}",
                                 unit="setting"):
        if not changes and p2_made:
            released, _ = load_model(run.p2_global_path, run)
        else:
            [state] = protect_federations(meta["architecture"], [fl_model.state_dict()], [federation], setting,
                                          batch_order(run.seed, setting.rounds))
            released = load_state(build_model(meta["architecture"]), state, "a tried P2 setting")
        entry = {"changes": changes, "constants": setting.constants(), "read_from_model_dir": not changes and p2_made,
                 **measure(released, rows, fl_labels)}
        log.info("%s", describe(changes, entry))
        result["settings"].append(entry)
    return result


def setting_name(changes: dict) -> str:
    return " ".join(f"{key}={value!r}" for key, value in changes.items()) or "script constants"


def describe(changes: dict, entry: dict) -> str:
    return (f"{setting_name(changes)}: test accuracy {entry['test_acc']:.4f}, labels kept {entry['members']['labels_kept']:.4f} / "
            f"{entry['nonmembers']['labels_kept']:.4f}, top probability {entry['members']['top_prob']:.3f} / "
            f"{entry['nonmembers']['top_prob']:.3f} (members / non-members), loss attack AUC "
            f"{entry['loss_attack']['auc']:.4f}")


def table(result: dict) -> str:
    """The result as a Markdown table, the FL model first."""
    lines = ["| setting | test acc | labels kept (members / non) | top prob (members / non) | loss AUC | "
             "loss TPR@1% |", "|---|---|---|---|---|---|"]
    named = [("FL model", result["fl"])] + [(setting_name(entry["changes"]), entry) for entry in result["settings"]]
    for name, entry in named:
        lines.append(f"| {name} | {entry['test_acc']:.4f} | {entry['members']['labels_kept']:.4f} / "
                     f"{entry['nonmembers']['labels_kept']:.4f} | {entry['members']['top_prob']:.3f} / "
                     f"{entry['nonmembers']['top_prob']:.3f} | {entry['loss_attack']['auc']:.4f} | "
                     f"{entry['loss_attack']['tpr_at_1pct_fpr']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="'CONSTANT=value ...'",
                        help="a P2 setting to try: constants of defend/defend_<dataset>.py to change (repeatable)")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)

    def run_main(_):
        cli.apply_threads(args.threads, args.device)
        run: Run = cli.run_from_args(args)
        tries = [parse_try(text) for text in args.tries]
        result = try_settings(load_experiment(run, defenses=()), tries)
        path = run.results_dir / "p2_try_settings.json"
        save_json(path, result)
        print(table(result))
        print(f"written to {path}")

    cli.main_guard(run_main)


if __name__ == "__main__":
    main()
