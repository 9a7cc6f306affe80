"""The experiment of one dataset and run, and every stage that makes it.

`load_experiment(run)` reads the constants of every per-dataset script once (quick-reduced for a
quick run), checks them against the data, and returns them as one Experiment that every stage is
given. `stages(experiment)` lists the stages in order; each declares the files it writes and reads,
the settings it depends on and the data fingerprint (toolkit/stages.py), so one rule decides what is
up to date. main.py runs them all; a per-dataset script runs its own (`stage_script`) once the
stages it builds on are up to date.
"""
import hashlib
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from data_partitioning import PartitionSettings, write_partition
from data_preprocessing import load_dataset
from data_sources.dataset import Dataset
from defend import p2_stage
from defend.p2_protection import P2Settings, P2SweepSettings
from FL_model_generation import fl_stage
from FL_model_generation.models import build_model, check_fits
from FL_model_generation.training import FLSettings
from menif_attack import gradient_attack_stage
from menif_attack.whitebox_attack import WhiteboxSettings
from other_attack_and_defend import (advreg, dp_fedavg, dp_sgd, dp_tuning, hamp, memguard, reference_attacks,
                                     relaxloss, server_attacks, shadow_attacks)
from other_attack_and_defend.advreg import AdvRegSettings
from other_attack_and_defend.defense_suite import (DEFENSES, BaselineDefenseSettings, Competitors, defended_targets,
                                                   defense_of)
from other_attack_and_defend.dp_fedavg import DPFedAvgSettings
from other_attack_and_defend.hamp import HampSettings
from other_attack_and_defend.memguard import MemGuardSettings
from other_attack_and_defend.relaxloss import RelaxLossSettings
from other_attack_and_defend.metric_attacks import METRICS
from other_attack_and_defend.reference_attacks import P2_AWARE, ReferenceSettings
from other_attack_and_defend.shadow_attacks import MLLeaksSettings, ShokriSettings
from other_attack_and_defend.targets import Target, base_targets
from toolkit import cli
from toolkit import stages as runner
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.settings import SettingError, check_no_unread_constants, load, script_path
from toolkit.stages import Stage

log = logging.getLogger("pipeline")

SUPPORTED = ("adult", "purchase100", "location", "mnist", "femnist", "cifar10")
ATTACKS = ("gradient", "shokri", "ml_leaks", *METRICS, "gap", "lira", "rmia")
REFERENCE_ATTACKS = (*METRICS, "gap", "lira", "rmia")
# settings group -> (per-dataset script, settings class read from it)
SCRIPTS = {
    "partition": ("FL_model_generation.FL_model_for_{}", PartitionSettings),
    "fl": ("FL_model_generation.FL_model_for_{}", FLSettings),
    "p2": ("defend.defend_{}", P2Settings),
    "p2_sweep": ("defend.defend_{}", P2SweepSettings),
    "gradient": ("menif_attack.membership_attack_{}", WhiteboxSettings),
    "shokri": ("other_attack_and_defend.shokri_attack_{}", ShokriSettings),
    "ml_leaks": ("other_attack_and_defend.ML_leaks_attack_{}", MLLeaksSettings),
    "reference": ("other_attack_and_defend.reference_attacks_{}", ReferenceSettings),
    "baselines": ("other_attack_and_defend.baseline_defenses_{}", BaselineDefenseSettings),
    "hamp": ("other_attack_and_defend.baseline_defenses_{}", HampSettings),
    "memguard": ("other_attack_and_defend.baseline_defenses_{}", MemGuardSettings),
    "relaxloss": ("other_attack_and_defend.baseline_defenses_{}", RelaxLossSettings),
    "advreg": ("other_attack_and_defend.baseline_defenses_{}", AdvRegSettings),
    "dp_fedavg": ("other_attack_and_defend.baseline_defenses_{}", DPFedAvgSettings),
}
# the competitor defenses' groups: their stages run from baseline_defenses_<dataset>.py (group "baselines")
COMPETITORS = ("hamp", "memguard", "relaxloss", "advreg", "dp_fedavg")


@dataclass(frozen=True)
class Experiment:
    """Everything one run is made from: its identity, its data, and every stage's settings."""
    run: Run
    data: Dataset
    partition: PartitionSettings
    fl: FLSettings
    p2: P2Settings
    p2_sweep: P2SweepSettings
    gradient: WhiteboxSettings
    shokri: ShokriSettings
    ml_leaks: MLLeaksSettings
    reference: ReferenceSettings
    baselines: BaselineDefenseSettings
    hamp: HampSettings
    memguard: MemGuardSettings
    relaxloss: RelaxLossSettings
    advreg: AdvRegSettings
    dp_fedavg: DPFedAvgSettings
    defenses: tuple[str, ...]   # which of DEFENSES this run trains and attacks (main.py --defenses)

    @property
    def competitors(self) -> Competitors:
        return Competitors(**{group: getattr(self, group) for group in COMPETITORS})

    def constants(self) -> dict:
        """{group: {CONSTANT: value}}: what summary.json records as the run's settings."""
        return {group: getattr(self, group).constants() for group in SCRIPTS}

    def script(self, group: str) -> str:
        return script_path(SCRIPTS[group][0].format(self.run.dataset))


def load_settings(run: Run) -> dict:
    """{group: settings} of every stage, from the per-dataset scripts (quick-reduced for a quick run)."""
    if run.dataset not in SUPPORTED:
        raise P2Error(f"unknown dataset {run.dataset!r}; choose one of {', '.join(SUPPORTED)}")
    settings = {}
    for group, (pattern, settings_class) in SCRIPTS.items():
        loaded = load(settings_class, pattern.format(run.dataset))
        settings[group] = loaded.quick() if run.quick else loaded
    for pattern in {pattern for pattern, _ in SCRIPTS.values()}:
        check_no_unread_constants(pattern.format(run.dataset),
                                  [cls for other, cls in SCRIPTS.values() if other == pattern])
    return settings


def load_experiment(run: Run, data: Dataset | None = None, defenses: tuple[str, ...] = DEFENSES) -> Experiment:
    """Every stage's settings from the per-dataset scripts, checked against the data. `data` replaces the
    dataset (a Flower client holds only its own rows: flower_federation/partitions.py); `defenses` are the
    defenses to compare P2 with (every one of DEFENSES by default)."""
    unknown = sorted(set(defenses) - set(DEFENSES))
    if unknown:
        raise P2Error(f"unknown defense(s) {unknown}; choose from {', '.join(DEFENSES)}")
    settings = load_settings(run)
    experiment = Experiment(run=run, data=data if data is not None else load_dataset(run.dataset, run.data_dir),
                            defenses=tuple(defenses), **settings)
    _check_against_data(experiment)
    return experiment


def changed_constants(experiment: Experiment) -> dict:
    """{group: {CONSTANT: value}} where `experiment` differs from its per-dataset scripts (tests reduce
    settings through the settings objects; a Flower run is told these, and nothing else, on top of the
    scripts)."""
    scripts = load_settings(experiment.run)
    changed = {}
    for group in SCRIPTS:
        ours, theirs = getattr(experiment, group).constants(), scripts[group].constants()
        differing = {name: value for name, value in ours.items() if value != theirs[name]}
        if differing:
            changed[group] = json.loads(json.dumps(differing))
    return changed


def with_constants(experiment: Experiment, changes: dict) -> Experiment:
    """`experiment` with {group: {CONSTANT: value}} replaced (each value checked by its settings class)."""
    groups = {}
    for group, constants in changes.items():
        if group not in SCRIPTS:
            raise P2Error(f"unknown settings group {group!r}; the groups are {', '.join(SCRIPTS)}")
        settings = getattr(experiment, group)
        unknown = sorted(set(constants) - settings.constant_names())
        if unknown:
            raise P2Error(f"{group} settings have no constant(s) {unknown}")
        try:
            groups[group] = replace(settings, **{name.lower(): value for name, value in constants.items()})
        except SettingError as error:
            raise error.in_script(experiment.script(group)) from None
    return replace(experiment, **groups)


def settings_digest(experiment: Experiment, groups: tuple[str, ...] = ("partition", "fl", "p2")) -> str:
    """A short digest of the constants of `groups`: the Flower server and every client compare theirs."""
    text = json.dumps({group: getattr(experiment, group).constants() for group in groups}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_against_data(experiment: Experiment) -> None:
    """Constants that must fit the data or the model: named, with their script, when they do not."""
    data, dataset = experiment.data, experiment.run.dataset
    checks = [("fl", lambda: check_fits(experiment.fl.architecture, data.features.shape[1:], data.num_classes,
                                         dataset)),
              ("baselines", lambda: experiment.baselines.check_classes(data.num_classes))]
    for group, check in checks:
        try:
            check()
        except SettingError as error:
            raise error.in_script(experiment.script(group)) from None
    parameters = list(dict(build_model(experiment.fl.architecture).named_parameters()))
    p2, gradient = experiment.p2, experiment.gradient
    for group, constant, names, matches in (
            ("p2", "POISON_WEIGHT", [p2.poison_weight], lambda name: name in parameters),
            ("p2", "TRAINABLE", list(p2.trainable), lambda prefix: any(p.startswith(prefix) for p in parameters)),
            ("gradient", "LAYERS", list(gradient.layers), lambda name: name in parameters)):
        unknown = [name for name in names if not matches(name)]
        if unknown:
            value = getattr(getattr(experiment, group), constant.lower())
            raise P2Error(f"{constant} = {value!r} in {experiment.script(group)}: {unknown} match no parameter "
                          f"of the model; its parameters are {parameters}")


def targets(experiment: Experiment) -> list[Target]:
    """Every model the attacks run against: the FL model, the P2 model, then every chosen baseline and competitor."""
    chosen = [target for target in defended_targets(experiment.run, experiment.baselines, experiment.competitors)
              if defense_of(target.name) in experiment.defenses]
    return base_targets(experiment.run) + chosen


def command(experiment: Experiment, script: str, extra: str = "") -> str:
    """How a user runs one script of this run by itself."""
    run = experiment.run
    flags = f" --seed {run.seed}" + (" --quick" if run.quick else "") + (f" --data-dir {run.data_dir}"
                                                                           if run.data_dir else "")
    return f"python {script}{flags}{extra}"


def stages(experiment: Experiment, attacks: tuple[str, ...] = ATTACKS, sweep: bool = False,
           engine=None) -> list[Stage]:
    """Every stage of the run, in order; with `sweep`, also every setting of the P2 sweep and every attack on it.
    `engine` (flower_federation.engine.FlowerEngine) runs FedAvg and the P2 round on a Flower federation
    instead of in this process; every other stage is the same."""
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        raise P2Error(f"unknown attack(s) {unknown}; choose from {', '.join(ATTACKS)}")
    run, exp = experiment.run, experiment
    clients = exp.partition.clients

    def stage(name, group, outputs, inputs, settings, action=None, script=None, **extra) -> Stage:
        return Stage(name=name, outputs=tuple(outputs), inputs=tuple(inputs),
                     settings={"seed": run.seed, "quick": run.quick, **settings}, data=exp.data.fingerprint,
                     action=action, command=command(exp, script or exp.script(group)), group=group, **extra)

    result = [
        stage("partition", "partition", [run.partition_path], [], {"partition": exp.partition.constants()},
              lambda: write_partition(run, exp.partition),
              script=f"data_partitioning.py --dataset {run.dataset}"),
    ]
    if engine is None:
        result.append(stage("FedAvg", "fl", fl_stage.output_paths(run, exp.fl, clients), [run.partition_path],
                            {"fl": exp.fl.constants()}, lambda: fl_stage.train_fl_model(run, exp.fl)))
        result += p2_stages(exp, stage, exp.p2)
    else:
        result += flower_stages(exp, stage, engine)
    if sweep:
        for settings, target in sweep_points(exp):
            if target.name != "p2":
                result += p2_stages(exp, stage, settings, folder=str(target.checkpoint.parent.relative_to(run.model_dir)),
                                    label=f"P2 {target.name}")
    if "dp_sgd" in exp.defenses:
        result += dp_sgd_stages(exp, stage)
    result += competitor_stages(exp, stage)
    all_targets = targets(exp) + ([target for _, target in sweep_points(exp) if target.name != "p2"] if sweep else [])
    if "gradient" in attacks:
        result += [stage(f"gradient attack on {target.name}", "gradient", [run.score_path("gradient", target.name)],
                         [target.checkpoint, *target.inputs, run.partition_path],
                         {"gradient": exp.gradient.constants(), "defense": target.describe()},
                         lambda t=target: gradient_attack_stage.attack_target(run, exp.gradient, t),
                         target=target.name)
                   for target in all_targets if target.whitebox]
    result += _shadow_stages(exp, attacks, all_targets, stage)
    result += _reference_stages(exp, attacks, all_targets, stage)
    return result


def dp_sgd_stages(exp: Experiment, stage) -> list[Stage]:
    """Per target eps: every candidate of the DP-SGD search (cached one by one), the search's record, then the
    model with the chosen recipe (other_attack_and_defend/dp_tuning.py)."""
    run, result, clients = exp.run, [], exp.partition.clients
    for search in exp.baselines.dp_searches():
        eps = f"{search.target_eps:g}"
        candidates = search.grid()
        paths = [dp_tuning.candidate_path(run, search.target_eps, candidate) for candidate in candidates]
        result += [stage(f"DP-SGD eps={eps} candidate {candidate.name}", "baselines", [path], [run.partition_path],
                         {"fl": exp.fl.constants(), "dp_search": search.split_constants(),
                          "candidate": candidate.as_dict()},
                         lambda search=search, candidate=candidate: dp_tuning.evaluate_candidate(run, exp.fl, search,
                                                                                                 candidate))
                   for candidate, path in zip(candidates, paths)]
        result.append(stage(f"DP-SGD eps={eps} search", "baselines", [dp_tuning.search_path(run, search.target_eps)],
                            paths, {"fl": exp.fl.constants(), "dp_search": search.split_constants(),
                                    "grid": [candidate.as_dict() for candidate in candidates]},
                            lambda search=search: dp_tuning.write_search(run, exp.fl, search)))
        result.append(stage(f"DP-SGD eps={eps}", "baselines",
                            [dp_sgd.model_path(run, search.target_eps),
                             *server_attacks.last_round_paths(run, dp_tuning.model_name(search.target_eps), clients)],
                            [run.partition_path, dp_tuning.search_path(run, search.target_eps)],
                            {"fl": exp.fl.constants(), "dp": {"target_eps": search.target_eps,
                                                              "delta_factor": search.delta_factor}},
                            lambda search=search: dp_tuning.train_tuned(run, exp.fl, search)))
    return result


def competitor_stages(exp: Experiment, stage) -> list[Stage]:
    """HAMP, MemGuard's defender classifier, RelaxLoss, AdvReg and DP-FedAvg: one stage per trained model (per
    strength), each made from the FL recipe (with COMPETITOR_LOCAL_EPOCHS), its own constants and the partition
    (MemGuard: the FL model)."""
    run, fl = exp.run, exp.baselines.competitor_recipe(exp.fl)

    def made(path, name):  # a trained model and what the server received in its last round
        return [path, *server_attacks.last_round_paths(run, name, exp.partition.clients)]

    chosen = exp.defenses
    result = [stage(f"HAMP {point.name}", "baselines", made(hamp.model_path(run, point.name), point.name),
                    [run.partition_path],
                    {"fl": fl.constants(), "hamp": point.constants()},
                    lambda point=point: hamp.train_hamp(run, fl, point))
              for point in exp.hamp.points() if "hamp" in chosen]
    if "memguard" in chosen:
        result.append(stage("MemGuard defender classifier", "baselines", [memguard.classifier_path(run)],
                            [run.fl_final_path, run.partition_path], {"memguard": exp.memguard.classifier_constants()},
                            lambda: memguard.write_classifier(run, exp.memguard)))
    result += [stage(f"RelaxLoss {point.name}", "baselines", made(relaxloss.model_path(run, point.name), point.name),
                     [run.partition_path], {"fl": fl.constants(), "relaxloss": point.constants()},
                     lambda point=point: relaxloss.train_relaxloss(run, fl, point))
               for point in exp.relaxloss.points() if "relaxloss" in chosen]
    result += [stage(f"AdvReg {point.name}", "baselines", made(advreg.model_path(run, point.name), point.name),
                     [run.partition_path],
                     {"fl": fl.constants(), "advreg": point.constants()},
                     lambda point=point: advreg.train_advreg(run, fl, point))
               for point in exp.advreg.points() if "advreg" in chosen]
    result += [stage(f"DP-FedAvg eps={point.target_eps:g}", "baselines",
                     made(dp_fedavg.model_path(run, point.target_eps), point.name), [run.partition_path],
                     {"fl": fl.constants(), "dp_fedavg": point.constants()},
                     lambda point=point: dp_fedavg.train_dp_fedavg(run, fl, point))
               for point in exp.dp_fedavg.points() if "dp_fedavg" in chosen]
    return result


def trained_defenses(exp: Experiment) -> list[str]:
    """The chosen defenses whose training changes what the FL server receives (the server attacks them too)."""
    names = ([dp_tuning.model_name(search.target_eps) for search in exp.baselines.dp_searches()]
             + [point.name for point in (*exp.hamp.points(), *exp.relaxloss.points(), *exp.advreg.points(),
                                         *exp.dp_fedavg.points())])
    return [name for name in names if defense_of(name) in exp.defenses]


def p2_stages(exp: Experiment, stage, settings: P2Settings, folder: str = "p2", label: str = "P2") -> list[Stage]:
    """Each client's soft targets, then per round each client's fine-tuning and the average (defend/p2_stage.py).
    A sweep gives each setting its own folder and label."""
    run, clients, fl_rounds = exp.run, exp.partition.clients, exp.fl.rounds
    files = p2_stage.P2Files(run, settings.rounds, folder)
    constants = settings.constants()
    made_targets = {name: constants[name] for name in ("EPS", "LABEL_MARGIN", "POISON_WEIGHT", "START")}
    tuning = {name: value for name, value in constants.items() if name not in made_targets}
    result = [stage(f"{label} targets of client {client}", "p2", [files.targets(client)],
                    [p2_stage.starting_checkpoint(run, settings, fl_rounds, client), run.partition_path],
                    {"p2": made_targets, "client": client}, batch=f"{label} targets",
                    batch_action=lambda group: p2_stage.write_targets(files, settings, fl_rounds,
                                                                      [s.settings["client"] for s in group]))
              for client in range(clients)]
    for round_index in range(1, settings.rounds + 1):
        prefix = label if settings.rounds == 1 else f"{label} round {round_index}"
        result += [stage(f"{prefix} client {client}", "p2", [files.client(round_index, client)],
                         [p2_stage.round_start(files, settings, fl_rounds, round_index, client), files.targets(client),
                          run.partition_path],
                         {"p2": tuning, "client": client, "round": round_index}, batch=f"{prefix} clients",
                         batch_action=lambda group, r=round_index: p2_stage.protect_round(
                             files, settings, fl_rounds, r, [s.settings["client"] for s in group]))
                   for client in range(clients)]
        result.append(stage(f"{prefix} aggregation", "p2", [files.global_model(round_index)],
                            [files.client(round_index, client) for client in range(clients)],
                            {"p2": tuning, "round": round_index},
                            lambda r=round_index: p2_stage.aggregate(files, r, clients),
                            script=f"defend/p2_aggregator.py --dataset {run.dataset}"))
    return result


def flower_stages(exp: Experiment, stage, engine) -> list[Stage]:
    """FedAvg and the P2 round on a Flower federation (flower_federation/): the same files as the in-process
    stages, minus the soft targets, which stay on the clients; so one stage makes every P2 round. Their
    settings are the in-process stages' plus "engine": the two engines agree to float tolerance, not bit for
    bit, so a model made by one engine is never taken as up to date for the other (and the in-process
    stages' settings, without the key, are unchanged: their existing outputs stay up to date)."""
    run, clients = exp.run, exp.partition.clients
    files = p2_stage.P2Files(run, exp.p2.rounds)
    fl_outputs = fl_stage.output_paths(run, exp.fl, clients)
    p2_outputs = p2_stage.output_paths(files, clients)
    starts = list(dict.fromkeys(p2_stage.starting_checkpoint(run, exp.p2, exp.fl.rounds, client)
                                for client in range(clients)))
    script = f"-m flower_federation.local_federation --dataset {run.dataset}"
    return [
        stage("FedAvg (Flower)", "fl", fl_outputs, [run.partition_path],
              {"fl": exp.fl.constants(), "engine": engine.name},
              lambda: engine.run_stage(exp, "fedavg", fl_outputs), script=script),
        stage("P2 round (Flower)", "p2", p2_outputs, [*starts, run.partition_path],
              {"p2": exp.p2.constants(), "engine": engine.name},
              lambda: engine.run_stage(exp, "p2", p2_outputs), script=script),
    ]


def _shadow_stages(exp: Experiment, attacks, all_targets: list[Target], stage) -> list[Stage]:
    run, result = exp.run, []
    for attack, prepare, attack_one in (("shokri", shadow_attacks.prepare_shokri, shadow_attacks.shokri_attack),
                                        ("ml_leaks", shadow_attacks.prepare_ml_leaks, shadow_attacks.ml_leaks_attack)):
        if attack not in attacks:
            continue
        settings = getattr(exp, attack)
        shadows = shadow_attacks.shadow_paths(run, attack, settings)
        recipe = {attack: settings.shadow_recipe(), "architecture": exp.fl.architecture}
        if settings.training == "fl":
            recipe["fl"] = exp.fl.constants()
        result.append(stage(f"{attack} shadow models", attack, shadows, [run.partition_path], recipe,
                            lambda settings=settings, prepare=prepare: prepare(run, settings, exp.fl)))
        result += [stage(f"{attack} attack on {target.name}", attack, [run.score_path(attack, target.name)],
                         [target.checkpoint, *target.inputs, run.partition_path, *shadows],
                         {attack: settings.attack_constants(), "defense": target.describe()},
                         lambda t=target, settings=settings, attack_one=attack_one: attack_one(run, settings, t),
                         target=target.name)
                   for target in all_targets]
        if settings.p2_aware:
            aware = shadow_attacks.shadow_paths(run, attack, settings, P2_AWARE)
            result.append(stage(f"P2-aware {attack} shadow models", attack, aware, [run.partition_path, *shadows],
                                {"p2": exp.p2.constants()},
                                lambda attack=attack: shadow_attacks.make_p2_aware_shadows(run, attack, exp.fl, exp.p2)))
            result += [stage(f"{attack}_{P2_AWARE} attack on {target.name}", attack,
                             [run.score_path(f"{attack}_{P2_AWARE}", target.name)],
                             [target.checkpoint, *target.inputs, run.partition_path, shadows[0], *aware],
                             {attack: settings.attack_constants(), "defense": target.describe()},
                             lambda t=target, settings=settings, attack_one=attack_one: attack_one(run, settings, t,
                                                                                                   P2_AWARE),
                             target=target.name)
                       for target in all_targets if is_p2_target(target)]
    return result


def _reference_stages(exp: Experiment, attacks, all_targets: list[Target], stage) -> list[Stage]:
    run, settings = exp.run, exp.reference
    chosen = [attack for attack in REFERENCE_ATTACKS if attack in attacks]
    if not chosen:
        return []
    files = [reference_attacks.membership_path(run)] + [reference_attacks.reference_path(run, k)
                                                          for k in range(settings.num_reference)]
    result = []
    if any(attack != "gap" for attack in chosen):
        result.append(stage("reference membership", "reference", files[:1], [run.partition_path],
                            {"NUM_REFERENCE": settings.num_reference},
                            lambda: reference_attacks.write_membership(run, settings)))
        result += [stage(f"reference model {k}", "reference", [reference_attacks.reference_path(run, k)],
                         [run.partition_path], {"fl": exp.fl.constants(), "index": k}, batch="reference models",
                         batch_action=lambda group: reference_attacks.train_reference_models(
                             run, exp.fl, [s.settings["index"] for s in group]))
                   for k in range(settings.num_reference)]
    if any(attack != "gap" for attack in chosen):
        files_p2 = p2_stage.P2Files(run, exp.p2.rounds)
        result.append(stage("server attacks", "reference", [server_attacks.output_path(run)],
                            [run.partition_path, *server_attacks.input_files(run, files_p2, exp.p2.start, exp.fl.rounds,
                                                                            exp.partition.clients,
                                                                            settings.num_reference)],
                            {"attacks": list(server_attacks.ATTACKS)},
                            lambda: server_attacks.write(run, files_p2, exp.p2, exp.fl.rounds, settings.num_reference)))
        references = [reference_attacks.reference_path(run, k) for k in range(settings.num_reference)]
        result += [stage(f"server attacks on {name}", "reference", [server_attacks.defense_output_path(run, name)],
                         [run.partition_path, *server_attacks.last_round_paths(run, name, exp.partition.clients),
                          *references], {"attacks": list(server_attacks.DEFENSE_ATTACKS)},
                         lambda name=name: server_attacks.write_defense(run, name, settings.num_reference))
                   for name in trained_defenses(exp)]
    if settings.p2_aware and any(attack != "gap" for attack in chosen):
        aware = [reference_attacks.reference_path(run, k, P2_AWARE) for k in range(settings.num_reference)]
        result += [stage(f"P2-aware reference model {k}", "reference", [aware[k]],
                         [reference_attacks.reference_path(run, k), run.partition_path],
                         {"p2": exp.p2.constants(), "index": k}, batch="P2-aware reference models",
                         batch_action=lambda group: reference_attacks.make_p2_aware_references(
                             run, exp.fl, exp.p2, [s.settings["index"] for s in group]))
                   for k in range(settings.num_reference)]
    shared: dict = {}

    def data(variant: str) -> reference_attacks.ReferenceData:
        if variant not in shared:
            shared[variant] = reference_attacks.ReferenceData(run, settings, variant)
        return shared[variant]

    actions = {"gap": lambda t, v: reference_attacks.gap_attack(run, t),
               "lira": lambda t, v: reference_attacks.lira_attack(data(v), t),
               "rmia": lambda t, v: reference_attacks.rmia_attack(data(v), t)}
    variants = [""] + ([P2_AWARE] if settings.p2_aware else [])
    for variant in variants:
        for attack in chosen:
            if variant and attack == "gap":
                continue  # label-only: no reference model to make aware
            action = actions.get(attack, lambda t, v, attack=attack: reference_attacks.metric_attack(data(v), attack, t))
            models = [reference_attacks.membership_path(run)] + [reference_attacks.reference_path(run, k, variant)
                                                                 for k in range(settings.num_reference)]
            inputs = [run.partition_path] + ([] if attack == "gap" else models)
            name = f"{attack}_{variant}" if variant else attack
            result += [stage(f"{name} attack on {target.name}", "reference", [run.score_path(name, target.name)],
                             [target.checkpoint, *target.inputs, *inputs],
                             {attack: reference_attacks.attack_settings(attack, settings),
                              "defense": target.describe()},
                             lambda t=target, action=action, v=variant: action(t, v), target=target.name)
                       for target in all_targets if not variant or is_p2_target(target)]
    return result


def is_p2_target(target: Target) -> bool:
    """The model P2-aware attacks run against (not the sweep's settings: each would need its own
    P2-aware reference and shadow models)."""
    return target.name == "p2"


def sweep_points(experiment: Experiment) -> list[tuple[P2Settings, Target]]:
    """(P2 settings, target) for every point of the P2 sweep; the point equal to the run's own P2 constants is
    the P2 model itself."""
    points = []
    for settings in experiment.p2_sweep.grid(experiment.p2):
        if settings == experiment.p2:
            points.append((settings, Target("p2", experiment.run.p2_global_path)))
            continue
        name = f"p2_eps{settings.eps:g}_r{settings.rounds}"
        files = p2_stage.P2Files(experiment.run, settings.rounds, f"p2_sweep/{name}")
        points.append((settings, Target(name, files.final)))
    return points


def attack_names(experiment: Experiment, attacks: tuple[str, ...] = ATTACKS) -> list[str]:
    """Every attack whose scores a run has: the chosen ones, then the P2-aware variants that are switched on."""
    aware = [f"{attack}_{P2_AWARE}" for attack in attacks
             if (attack in ("shokri", "ml_leaks") and getattr(experiment, attack).p2_aware)
             or (attack in REFERENCE_ATTACKS and attack != "gap" and experiment.reference.p2_aware)]
    return [attack for attack in ATTACKS if attack in attacks] + aware


# ---------------------------------------------------------------- the per-dataset scripts' command line

PREFIXES = {"fl": "FL_model_for_", "p2": "defend_", "gradient": "membership_attack_", "shokri": "shokri_attack_",
            "ml_leaks": "ML_leaks_attack_", "reference": "reference_attacks_", "baselines": "baseline_defenses_"}


def stage_script(group: str, script_file: str | None = None, only: str | None = None, argv=None) -> None:
    """The command line of a stage script: run the stages of `group` (for the dataset the script's file
    name ends in, or --dataset; `only`: the one stage of that name) once every stage they read from is
    up to date."""
    main_module = sys.modules.get("__main__")
    dataset = Path(script_file).stem.removeprefix(PREFIXES[group]) if script_file else None
    parser = cli.parser(getattr(main_module, "__doc__", None), dataset=dataset)
    if group == "p2" and only is None:
        parser.add_argument("--client", default="all",
                            help="client index to protect, or 'all' to protect every client and aggregate (default)")
    if group in ("gradient", "shokri", "ml_leaks", "reference"):
        parser.add_argument("--target", default="fl,p2",
                            help="models to attack, comma-separated (default: fl,p2; 'all': every model)")
    if group == "reference":
        parser.add_argument("--attack", nargs="+", choices=REFERENCE_ATTACKS, default=list(REFERENCE_ATTACKS),
                            help=f"attacks to run (default: all of {', '.join(REFERENCE_ATTACKS)})")
    parser.add_argument("--force", action="store_true", help="rerun this script's stages even if up to date")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)

    def main(_):
        cli.apply_threads(args.threads, args.device)
        experiment = load_experiment(cli.run_from_args(args))
        everything = stages(experiment)
        chosen = [stage for stage in everything
                  if (stage.name == only if only else _selected(stage, group, args, experiment))]
        runner.check_upstream(everything, chosen)
        runner.run(chosen, force=args.force)

    cli.main_guard(main)


def _selected(stage: Stage, group: str, args, experiment: Experiment) -> bool:
    if stage.group != group:
        return False
    if group == "p2" and args.client != "all":
        if not args.client.isdigit() or int(args.client) >= experiment.partition.clients:
            raise P2Error(f"--client {args.client!r} must be 'all' or a client index 0..{experiment.partition.clients - 1}")
        if experiment.p2.rounds > 1:
            raise P2Error(f"--client {args.client}: with ROUNDS = {experiment.p2.rounds} in {experiment.script('p2')} "
                          f"every round needs every client; run --client all")
        return stage.name in (f"P2 targets of client {int(args.client)}", f"P2 client {int(args.client)}")
    if stage.target is not None and args.target != "all":
        wanted = args.target.split(",")
        known = [target.name for target in targets(experiment)]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise P2Error(f"--target {args.target}: {unknown} unknown; the models are {', '.join(known)} (or all)")
        if stage.target not in wanted:
            return False
    if group == "reference" and stage.target is not None:
        return stage.name.split(" attack on ")[0] in args.attack
    return True
