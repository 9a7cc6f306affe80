"""The defenses P2 is compared with, and the targets they give the attacks.

Baselines (BaselineDefenseSettings):
- output noise (the original's "DP-scheme", NOT differential privacy): Gaussian noise of
  sigma = 1 / OUTPUT_NOISE_EPS on the FL model's released logits and per-example gradients;
- top-k release of the FL model's probabilities (k in TOP_K; no white-box view);
- DP-SGD inside every client (example-level DP), one model per target eps in DP_TARGET_EPS, its recipe tuned
  per eps on a validation split of the clients' data (dp_tuning.py).
Competitors, each in its own module with its paper, the algorithm as implemented and every departure:
- HAMP (hamp.py): high-entropy soft labels and an entropy reward in every client, plus its output modification;
- MemGuard (memguard.py): label-keeping adversarial noise on every released score vector of the FL model;
- RelaxLoss (relaxloss.py) in every client's update;
- AdvReg (advreg.py): min-max training against an inference model in every client's update;
- DP-FedAvg with client-level DP (dp_fedavg.py), one model per client-level target eps.
Every constant lives in other_attack_and_defend/baseline_defenses_<dataset>.py, read by one settings class per
defense (pipeline.SCRIPTS); the FL recipe is the undefended model's (FL_model_generation/FL_model_for_<dataset>.py).
Output noise, top-k and MemGuard are views of the undefended model (model/<dataset>/<run>/fl/final.pt); the
others are trained models under model/<dataset>/<run>/<name>/final.pt.

Model names (keys of summary.json): output_noise, top<k>, dp_eps<E>, hamp, memguard, relaxloss, advreg,
dp_fedavg_eps<E>; a defense with extra strengths adds hamp_g<gamma>, memguard_b<budget>, relaxloss_a<alpha>,
advreg_l<lambda> (`family` maps a name back to its defense and strength, for the trade-off plot).
"""
import re
from dataclasses import dataclass, replace
from typing import ClassVar

from FL_model_generation.training import FLSettings
from other_attack_and_defend import advreg, dp_fedavg, dp_sgd, dp_tuning, hamp, memguard, relaxloss
from other_attack_and_defend.advreg import AdvRegSettings
from other_attack_and_defend.dp_fedavg import DPFedAvgSettings
from other_attack_and_defend.hamp import HampSettings, HampTarget
from other_attack_and_defend.memguard import MemGuardSettings, MemGuardTarget
from other_attack_and_defend.relaxloss import RelaxLossSettings
from other_attack_and_defend.release_defenses import OutputNoiseTarget, TopKTarget
from other_attack_and_defend.targets import Target
from toolkit.run import Run
from toolkit.settings import Settings, require


def _ends(values: tuple) -> tuple:
    """The smallest and the largest value (still a line on the trade-off plot)."""
    ends = sorted(values)
    return tuple(dict.fromkeys([ends[0], ends[-1]])) if ends else ()


def _first(values: tuple) -> tuple:
    return tuple(values[:1])


@dataclass(frozen=True)
class BaselineDefenseSettings(Settings):
    """From other_attack_and_defend/baseline_defenses_<dataset>.py. OUTPUT_NOISE_EPS: noise sigma = 1 / eps,
    a scale, not a privacy budget; TOP_K: one top-k release per k; DP_TARGET_EPS: one DP-SGD model per target
    eps, delta = 1 / (DP_DELTA_FACTOR x client size); DP_VALIDATION_FRACTION of each client's rows held out to
    choose each eps's recipe among DP_TUNE_LR x DP_TUNE_MAX_GRAD_NORM x DP_TUNE_LOCAL_EPOCHS x DP_TUNE_MOMENTUM,
    each candidate trained for DP_TUNE_ROUNDS rounds (None: all of the FL recipe's) (dp_tuning.py).
    COMPETITOR_LOCAL_EPOCHS: local epochs per round of the trained competitors (HAMP, RelaxLoss, AdvReg,
    DP-FedAvg); None: the FL recipe's."""
    output_noise_eps: float
    top_k: tuple[int, ...]
    dp_target_eps: tuple[float, ...]
    dp_delta_factor: float
    dp_validation_fraction: float
    dp_tune_lr: tuple[float, ...]
    dp_tune_max_grad_norm: tuple[float, ...]
    dp_tune_local_epochs: tuple[int, ...]
    dp_tune_momentum: tuple[float, ...]
    dp_tune_rounds: int | None
    competitor_local_epochs: int | None

    QUICK: ClassVar[dict] = {"DP_TARGET_EPS": _ends, "DP_TUNE_LR": _first, "DP_TUNE_MAX_GRAD_NORM": _first,
                             "DP_TUNE_LOCAL_EPOCHS": lambda values: (min(values),) if values else (),
                             "DP_TUNE_MOMENTUM": lambda values: tuple(sorted(values)[:2]), "DP_TUNE_ROUNDS": 1}

    def check(self) -> None:
        require(self.output_noise_eps > 0, "OUTPUT_NOISE_EPS", self.output_noise_eps, "must be positive (sigma = 1 / eps)")
        require(all(k >= 1 for k in self.top_k) and len(set(self.top_k)) == len(self.top_k), "TOP_K", self.top_k,
                "must list distinct k >= 1")
        require(len(set(self.dp_target_eps)) == len(self.dp_target_eps), "DP_TARGET_EPS", self.dp_target_eps,
                "lists an eps twice")
        require(all(eps > 0 for eps in self.dp_target_eps), "DP_TARGET_EPS", self.dp_target_eps,
                "must list positive values")
        require(self.dp_delta_factor > 1, "DP_DELTA_FACTOR", self.dp_delta_factor,
                "must exceed 1 so that delta < 1 / client size")
        require(0 < self.dp_validation_fraction < 1, "DP_VALIDATION_FRACTION", self.dp_validation_fraction,
                "must lie in (0, 1)")
        for name, minimum in (("dp_tune_lr", 0), ("dp_tune_max_grad_norm", 0), ("dp_tune_local_epochs", 0)):
            values = getattr(self, name)
            require(values and all(value > minimum for value in values) and len(set(values)) == len(values),
                    name.upper(), values, "must list distinct positive values")
        require(self.dp_tune_momentum and all(0 <= m < 1 for m in self.dp_tune_momentum)
                and len(set(self.dp_tune_momentum)) == len(self.dp_tune_momentum), "DP_TUNE_MOMENTUM",
                self.dp_tune_momentum, "must list distinct values in [0, 1)")
        require(self.competitor_local_epochs is None or self.competitor_local_epochs >= 1, "COMPETITOR_LOCAL_EPOCHS",
                self.competitor_local_epochs, "must be at least 1 (or None: the FL recipe's LOCAL_EPOCHS)")
        require(self.dp_tune_rounds is None or self.dp_tune_rounds >= 1, "DP_TUNE_ROUNDS", self.dp_tune_rounds,
                "must be at least 1 (or None: every round of the FL recipe)")

    @property
    def output_noise_sigma(self) -> float:
        return 1.0 / self.output_noise_eps

    def competitor_recipe(self, fl: FLSettings) -> FLSettings:
        """The FL recipe of the trained competitors: the undefended model's, with COMPETITOR_LOCAL_EPOCHS local epochs
        per round where set (never more than the FL recipe's)."""
        if self.competitor_local_epochs is None:
            return fl
        return replace(fl, local_epochs=min(fl.local_epochs, self.competitor_local_epochs))

    def dp_searches(self) -> list[dp_tuning.Search]:
        """One DP-SGD search (and model) per target eps, ascending."""
        return [dp_tuning.Search(target_eps=float(eps), delta_factor=self.dp_delta_factor,
                                 validation_fraction=self.dp_validation_fraction, lrs=self.dp_tune_lr,
                                 max_grad_norms=self.dp_tune_max_grad_norm, local_epochs=self.dp_tune_local_epochs,
                                 momenta=self.dp_tune_momentum, rounds=self.dp_tune_rounds)
                for eps in sorted(self.dp_target_eps)]

    def check_classes(self, num_classes: int) -> None:
        too_large = [k for k in self.top_k if k >= num_classes]
        require(not too_large, "TOP_K", self.top_k,
                f"a top-k release with k >= {num_classes} classes releases everything; drop {too_large}")


@dataclass(frozen=True)
class Competitors:
    """The settings of every competitor defense of one run (pipeline.Experiment holds them)."""
    hamp: HampSettings
    memguard: MemGuardSettings
    relaxloss: RelaxLossSettings
    advreg: AdvRegSettings
    dp_fedavg: DPFedAvgSettings


def defended_targets(run: Run, settings: BaselineDefenseSettings, competitors: Competitors | None = None) -> list[Target]:
    """Output noise, top-k per k, DP-SGD per target eps (ascending), then HAMP, MemGuard, RelaxLoss, AdvReg (each
    default strength first, then its extra strengths) and DP-FedAvg per client-level eps (ascending)."""
    targets: list[Target] = [OutputNoiseTarget("output_noise", run.fl_final_path, sigma=settings.output_noise_sigma,
                                               seed=run.seed)]
    targets += [TopKTarget(f"top{k}", run.fl_final_path, k=k) for k in settings.top_k]
    targets += [Target(dp_sgd.target_name(search.target_eps), dp_sgd.model_path(run, search.target_eps))
                for search in settings.dp_searches()]
    if competitors is None:
        return targets
    targets += [HampTarget(point.name, hamp.model_path(run, point.name), seed=run.seed)
                for point in competitors.hamp.points()]
    targets += [MemGuardTarget(name, run.fl_final_path, classifier=memguard.classifier_path(run), budget=budget,
                               max_iterations=competitors.memguard.memguard_max_iterations, seed=run.seed)
                for name, budget in competitors.memguard.budgets()]
    targets += [Target(point.name, relaxloss.model_path(run, point.name)) for point in competitors.relaxloss.points()]
    targets += [Target(point.name, advreg.model_path(run, point.name)) for point in competitors.advreg.points()]
    targets += [Target(point.name, dp_fedavg.model_path(run, point.target_eps)) for point in competitors.dp_fedavg.points()]
    return targets


# ---------------------------------------------------------------- names back to defenses (the trade-off plot)

DEFENSES = ("output_noise", "top_k", "dp_sgd", "hamp", "memguard", "relaxloss", "advreg", "dp_fedavg")


def defense_of(model: str) -> str | None:
    """The entry of DEFENSES a released model belongs to (main.py --defenses), None for fl, p2 and the sweep."""
    if model == "output_noise":
        return "output_noise"
    if re.fullmatch(r"top\d+", model):
        return "top_k"
    found = family(model)
    return found[0] if found else None


FAMILIES = {  # family: (prefix of the extra strengths' names, the constant holding the default strength)
    "hamp": ("hamp_g", ("hamp", "HAMP_GAMMA")),
    "memguard": ("memguard_b", ("memguard", "MEMGUARD_BUDGET")),
    "relaxloss": ("relaxloss_a", ("relaxloss", "RELAXLOSS_ALPHA")),
    "advreg": ("advreg_l", ("advreg", "ADVREG_LAMBDA")),
}


def family(model: str, settings: dict | None = None) -> tuple[str, float | None] | None:
    """(defense, strength) of a model name of summary.json, None for a model outside the families: dp_eps<E> ->
    ("dp_sgd", E), dp_fedavg_eps<E> -> ("dp_fedavg", E), hamp_g0.5 -> ("hamp", 0.5), hamp -> ("hamp", HAMP_GAMMA
    as `settings` (summary.json's "settings") records it, or None without them)."""
    for name, pattern in (("dp_fedavg", r"dp_fedavg_eps([0-9.e+-]+)"), ("dp_sgd", r"dp_eps([0-9.e+-]+)")):
        match = re.fullmatch(pattern, model)
        if match:
            try:
                return name, float(match.group(1))
            except ValueError:
                return None
    for name, (prefix, (group, constant)) in FAMILIES.items():
        if model == name:
            value = (settings or {}).get(group, {}).get(constant)
            return name, float(value) if isinstance(value, (int, float)) else None
        if model.startswith(prefix):
            try:
                return name, float(model[len(prefix):])
            except ValueError:
                return None
    return None
