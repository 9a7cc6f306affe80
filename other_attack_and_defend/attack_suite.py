"""The black-box attack suite as pipeline stages: shared preparation (shadow and reference models,
trained once per run and cached), then every attack against every target.

    stages = attack_stages(run, targets, selected=["lira", "rmia"])
    for name, is_done, do in stages: ...

Experiment constants live in the per-dataset scripts and are read when the stages are built:
other_attack_and_defend/shokri_attack_<dataset>.py, ML_leaks_attack_<dataset>.py and
reference_attacks_<dataset>.py (SETTINGS each); the target architecture and FL recipe come from
FL_model_generation/FL_model_for_<dataset>.py (SETTINGS, quick-reduced in quick runs).
"""
import importlib
import logging
import time
from collections.abc import Callable

from FL_model_generation.fl_stage import effective_settings as effective_fl_settings
from other_attack_and_defend import reference_attacks, shadow_attacks
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.targets import Target

log = logging.getLogger(__name__)

ATTACKS = ("shokri", "ml_leaks", "loss", "confidence", "entropy", "modified_entropy", "gap", "lira", "rmia")
SCRIPTS = {"shokri": "other_attack_and_defend.shokri_attack_{}",
           "ml_leaks": "other_attack_and_defend.ML_leaks_attack_{}",
           "reference": "other_attack_and_defend.reference_attacks_{}",
           "fl": "FL_model_generation.FL_model_for_{}"}
NEEDS_REFERENCES = ("loss", "confidence", "entropy", "modified_entropy", "lira", "rmia")

Stage = tuple[str, Callable[[], bool], Callable[[], None]]


def settings_group(attack: str) -> str:
    """Which script's SETTINGS an attack reads: "shokri", "ml_leaks" or "reference"."""
    return attack if attack in ("shokri", "ml_leaks") else "reference"


def check_selection(selected: list[str] | None) -> list[str]:
    """The selected attacks in suite order (all when None)."""
    if selected is None:
        return list(ATTACKS)
    unknown = sorted(set(selected) - set(ATTACKS))
    if unknown:
        raise P2Error(f"unknown attack(s) {unknown}; choose from {', '.join(ATTACKS)}")
    return [attack for attack in ATTACKS if attack in selected]


def suite_settings(dataset: str, attacks: list[str]) -> dict:
    """SETTINGS of the scripts these attacks need, plus the FL recipe, keyed "shokri", "ml_leaks",
    "reference", "fl"."""
    groups = {settings_group(attack) for attack in attacks} | {"fl"}
    return {group: script_settings(group, dataset) for group in sorted(groups)}


def script_settings(group: str, dataset: str):
    """SETTINGS of one per-dataset script: the one place its constants live."""
    module = SCRIPTS[group].format(dataset)
    try:
        return importlib.import_module(module).SETTINGS
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        raise P2Error(f"no {module.replace('.', '/')}.py for dataset {dataset!r}: add one (copy the adult "
                      f"script) or leave its attacks out") from None


def build_stages(run: Run, targets: list[Target], selected: list[str] | None, settings: dict) -> list[Stage]:
    """(name, is_done, do) per stage for these settings (as suite_settings returns them)."""
    attacks = check_selection(selected)
    fl = effective_fl_settings(run, settings["fl"])
    stages: list[Stage] = []
    for attack in ("shokri", "ml_leaks"):
        if attack in attacks:
            stages.append((f"{attack} shadow models",
                           lambda a=attack: shadow_attacks.shadows_ready(run, a, settings[a], fl),
                           lambda a=attack: _prepare_shadows(run, a, settings[a], fl)))
    cache: dict = {}
    if any(attack in NEEDS_REFERENCES for attack in attacks):
        reference = settings["reference"]

        def prepare():
            cache.clear()
            reference_attacks.prepare_references(run, reference, fl)

        stages.append(("reference models", lambda: reference_attacks.references_ready(run, reference, fl), prepare))

    def data() -> reference_attacks.ReferenceData:
        if "data" not in cache:
            cache["data"] = reference_attacks.ReferenceData(run, settings["reference"], fl)
        return cache["data"]

    for attack in attacks:
        for target in targets:
            stages.append((f"{attack} attack on {target.name}", _is_done(run, attack, target, settings, fl),
                           _do(run, attack, target, settings, fl, data)))
    return stages


def attack_stages(run: Run, targets: list[Target], selected: list[str] | None = None) -> list[Stage]:
    """The suite's stages, in order, with the constants of the per-dataset scripts."""
    return build_stages(run, targets, selected, suite_settings(run.dataset, check_selection(selected)))


def _prepare_shadows(run: Run, attack: str, settings, fl) -> None:
    if attack == "shokri":
        shadow_attacks.prepare_shokri(run, settings, fl)
    else:
        shadow_attacks.prepare_ml_leaks(run, settings, fl)


def _is_done(run: Run, attack: str, target: Target, settings: dict, fl) -> Callable[[], bool]:
    if attack in ("shokri", "ml_leaks"):
        return lambda: shadow_attacks.attack_is_done(run, attack, settings[attack], target)
    return lambda: reference_attacks.attack_is_done(run, attack, settings["reference"], fl, target)


def _do(run: Run, attack: str, target: Target, settings: dict, fl, data) -> Callable[[], None]:
    if attack == "shokri":
        return lambda: shadow_attacks.shokri_attack(run, settings["shokri"], fl, target)
    if attack == "ml_leaks":
        return lambda: shadow_attacks.ml_leaks_attack(run, settings["ml_leaks"], fl, target)
    if attack == "gap":
        return lambda: reference_attacks.gap_attack(run, target)
    if attack == "lira":
        return lambda: reference_attacks.lira_attack(data(), target)
    if attack == "rmia":
        return lambda: reference_attacks.rmia_attack(data(), target)
    return lambda: reference_attacks.metric_attack(data(), attack, target)


def run_stages(stages: list[Stage], force: bool = False) -> dict[str, float]:
    """Run every stage that is not up to date (all with force); return the seconds each took."""
    timings = {}
    for name, is_done, do in stages:
        if not force and is_done():
            log.info("%s: up to date, skipped", name)
            continue
        started = time.perf_counter()
        do()
        timings[name] = time.perf_counter() - started
        log.info("%s: done in %.1f s", name, timings[name])
    return timings


def script_main(dataset: str, settings: dict, attacks: tuple[str, ...], description: str, argv=None) -> None:
    """Command line of a per-dataset attack script: its attacks against the FL and P2 models."""
    from toolkit import cli
    from toolkit.targets import base_targets

    parser = cli.parser(description, dataset=dataset)
    parser.add_argument("--target", default="all", help="model to attack: fl, p2 or all (default)")
    if len(attacks) > 1:
        parser.add_argument("--attack", nargs="+", choices=attacks, default=list(attacks),
                            help=f"attacks to run (default: all of {', '.join(attacks)})")
    parser.add_argument("--force", action="store_true", help="rerun even what is up to date")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)

    def main(_):
        run = cli.run_from_args(args)
        targets = base_targets(run)
        if args.target != "all":
            targets = [t for t in targets if t.name == args.target]
            if not targets:
                raise P2Error(f"--target {args.target!r}: choose from {[t.name for t in base_targets(run)]} or all")
        chosen = getattr(args, "attack", list(attacks))
        full = {"fl": script_settings("fl", dataset), **settings}  # the FL recipe, plus this script's SETTINGS
        run_stages(build_stages(run, targets, chosen, full), args.force)

    cli.main_guard(main)
