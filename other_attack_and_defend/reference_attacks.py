"""Reference-model attacks: offline LiRA (Carlini et al. 2022) and offline RMIA (Zarifzadeh et al.
2024), plus the metric attacks (Song & Mittal 2021) and the label-only gap attack, whose thresholds
come from the same reference models.

Reference models are trained like the target: same architecture and FedAvg recipe (the FL stage
script's SETTINGS, via FL_model_generation.fedavg.federated_training), each on a random half of the
shadow pool split over as many clients as the target had. Halves come in complementary pairs
(models 2m and 2m+1 split one permutation), so every pool row is "in" for half the models. They
are trained once per run, cached in model/<dataset>/<run>/reference/, and shared by every target
and by every attack here. No evaluation row is ever in the shadow pool, so for the evaluation
examples every reference model is an OUT model: the offline setting.

Thresholds (never from evaluation labels): each reference model in turn plays the target, the
others serve as its references, and its own in/out pool rows give the labels ("simulation"). The
threshold with the best balanced accuracy over all these simulated attacks is kept; RMIA's offline
coefficient a is tuned the same way when RMIA_A is None (as in the RMIA paper).
"""
import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from FL_model_generation.fedavg import train_federations
from FL_model_generation.fl_stage import load_model
from FL_model_generation.models import predict_logits
from FL_model_generation.training import FLSettings
from defend.p2_protection import P2Settings, protect_federations
from other_attack_and_defend.attack_common import evaluation_rows, release_generator, release_logits, save_scores
from other_attack_and_defend.metric_attacks import (GAP_THRESHOLD, METRICS, TINY, gap_signal, logit_confidence,
                                                    metric_signal, true_class_mass)
from other_attack_and_defend.targets import Target
from toolkit.checkpoints import load_arrays, save_arrays, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.scoring import choose_threshold, roc_auc_score
from toolkit.seeding import derive_seed, numpy_rng, torch_generator
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)

REFERENCE_ATTACKS = (*METRICS, "gap", "lira", "rmia")
A_GRID = tuple(np.round(np.arange(0.0, 1.0001, 0.1), 2))  # candidate RMIA offline coefficients
MIN_REFERENCE = 4  # two complementary pairs (see ReferenceSettings)
P2_AWARE = "p2aware"  # the variant of reference and shadow models that also ran the P2 round


@dataclass(frozen=True)
class ReferenceSettings(Settings):
    """The reference-model attacks, from other_attack_and_defend/reference_attacks_<dataset>.py. With P2_AWARE,
    the attacker also runs the P2 round (the target's P2 constants) on copies of its reference models and
    attacks P2 models with those too, as attacks named <attack>_p2aware."""
    num_reference: int
    p2_aware: bool
    lira_fixed_variance: bool
    rmia_a: float | None
    rmia_gamma: float
    rmia_population: int | None
    class_thresholds: bool

    QUICK: ClassVar[dict] = {"NUM_REFERENCE": MIN_REFERENCE}

    def check(self) -> None:
        require(self.num_reference >= MIN_REFERENCE, "NUM_REFERENCE", self.num_reference,
                f"must be at least {MIN_REFERENCE}: models come in complementary pairs, and when one model plays the "
                f"target (to choose thresholds), every pool row needs an OUT model outside its pair")
        require(self.rmia_a is None or 0 <= self.rmia_a <= 1, "RMIA_A", self.rmia_a,
                "must lie in [0, 1] (or be None to tune it)")
        require(self.rmia_gamma > 0, "RMIA_GAMMA", self.rmia_gamma, "must be positive")
        require(self.rmia_population is None or self.rmia_population >= 1, "RMIA_POPULATION", self.rmia_population,
                "must be positive (or None for the whole pool)")


def attack_settings(attack: str, settings: ReferenceSettings) -> dict:
    """The constants one attack's scores depend on (the reference models it reads are its input files)."""
    if attack == "gap":
        return {"RULE": "member iff correctly classified"}
    used = {"NUM_REFERENCE"}  # P2_AWARE only adds attacks
    if attack in ("confidence", "entropy", "modified_entropy"):
        used.add("CLASS_THRESHOLDS")
    if attack == "lira":
        used.add("LIRA_FIXED_VARIANCE")
    if attack == "rmia":
        used.update({"RMIA_A", "RMIA_GAMMA", "RMIA_POPULATION"})
    return {name: value for name, value in settings.constants().items() if name in used}


# ---------------------------------------------------------------- LiRA and RMIA: the math

def lira_offline(target_signal: np.ndarray, reference_signal: np.ndarray, out_mask: np.ndarray,
                 fixed_variance: bool, min_std: float = 1e-6) -> np.ndarray:
    """Offline LiRA test statistic per example: (phi - mu_out) / sigma_out.

    phi is the target's logit-scaled confidence, mu_out and sigma_out the mean and standard deviation
    of the OUT reference models' (N, K) signals where out_mask is set. Carlini et al.'s one-sided
    score is Lambda = Phi(statistic) = 1 - Pr[Z > phi], Z ~ N(mu_out, sigma_out^2): a monotone map,
    so the statistic is stored (it keeps its resolution far in the tail). sigma_out is per example
    (ddof 1) or, with fixed_variance, pooled over all examples with at least two OUT signals. Rows
    without an OUT signal (or, per-example, without two) get NaN.
    """
    out = out_mask.astype(np.float64)
    counts = out.sum(1)
    mean = (reference_signal * out).sum(1) / np.maximum(counts, 1)
    squares = (((reference_signal - mean[:, None]) ** 2) * out).sum(1)
    if fixed_variance:
        usable = counts >= 2
        pooled = squares[usable].sum() / max((counts[usable] - 1).sum(), 1)
        std = np.full(len(counts), max(np.sqrt(pooled), min_std))
        defined = counts >= 1
    else:
        std = np.maximum(np.sqrt(squares / np.maximum(counts - 1, 1)), min_std)
        defined = counts >= 2
    return np.where(defined, (target_signal - mean) / std, np.nan)


def offline_marginal(reference_probability: np.ndarray, out_mask: np.ndarray, a: float) -> np.ndarray:
    """RMIA's offline Pr(x) = ((1 + a) mean_OUT Pr(x | theta_ref) + (1 - a)) / 2; NaN without OUT models.
    Floored at TINY: with a = 1 a release that zeroes the true class (top-k) would otherwise give 0."""
    out = out_mask.astype(np.float64)
    counts = out.sum(1)
    mean_out = (reference_probability * out).sum(1) / np.maximum(counts, 1)
    return np.where(counts >= 1, np.maximum(((1 + a) * mean_out + (1 - a)) / 2, TINY), np.nan)


def rmia_offline(target_x: np.ndarray, reference_x: np.ndarray, out_x: np.ndarray, target_z: np.ndarray,
                 reference_z: np.ndarray, out_z: np.ndarray, a: float, gamma: float = 1.0) -> np.ndarray:
    """RMIA score per x: the fraction of population samples z with
    (Pr(x|theta) / Pr(x)) / (Pr(z|theta) / Pr(z)) > gamma, both marginals from OUT reference models
    with the offline approximation. Pr(.|theta) is the probability of the true label. Population
    samples without any OUT reference model are left out; x without one gets NaN."""
    ratio_x = target_x / offline_marginal(reference_x, out_x, a)
    ratio_z = target_z / offline_marginal(reference_z, out_z, a)
    ratio_z = np.sort(ratio_z[np.isfinite(ratio_z)])
    if len(ratio_z) == 0:
        raise P2Error("RMIA has no population sample with an OUT reference model; use more reference models")
    # ratio_x / ratio_z > gamma  <=>  ratio_z < ratio_x / gamma  (every ratio is positive)
    below = np.searchsorted(ratio_z, np.where(np.isfinite(ratio_x), ratio_x / gamma, 0.0), side="left")
    return np.where(np.isfinite(ratio_x), below / len(ratio_z), np.nan)


def simulate(reference_signal: np.ndarray, in_mask: np.ndarray, attack) -> tuple[np.ndarray, np.ndarray]:
    """Each reference model k in turn as the target of `attack(k, others)`, which returns one score
    per pool row (NaN where undefined); returns the pooled finite scores and their membership in k."""
    scores, members = [], []
    for k in range(len(in_mask)):
        others = np.array([j for j in range(len(in_mask)) if j != k])
        result = attack(k, others)
        keep = np.isfinite(result)
        scores.append(result[keep])
        members.append(in_mask[k][keep])
    return np.concatenate(scores), np.concatenate(members)


def simulated_lira(pool_signal: np.ndarray, in_mask: np.ndarray, fixed_variance: bool):
    """pool_signal (K, P): each reference's logit confidence on the pool; in_mask (K, P)."""
    return simulate(pool_signal, in_mask, lambda k, others: lira_offline(
        pool_signal[k], pool_signal[others].T, ~in_mask[others].T, fixed_variance))


def simulated_rmia(pool_probability: np.ndarray, in_mask: np.ndarray, population: np.ndarray, a: float,
                   gamma: float):
    """pool_probability (K, P); population: indices into the pool usable as z. A simulated target's
    population is restricted to its OUT rows, as the real target's population is."""
    def attack(k, others):
        z = population[~in_mask[k][population]]
        return rmia_offline(pool_probability[k], pool_probability[others].T, ~in_mask[others].T,
                            pool_probability[k][z], pool_probability[others][:, z].T, ~in_mask[others][:, z].T,
                            a, gamma)
    return simulate(pool_probability, in_mask, attack)


def tune_rmia_a(pool_probability: np.ndarray, in_mask: np.ndarray, population: np.ndarray,
                gamma: float) -> tuple[float, dict]:
    """The a of A_GRID with the highest simulated AUC (ties: the smallest)."""
    aucs = {}
    for a in A_GRID:
        scores, members = simulated_rmia(pool_probability, in_mask, population, a, gamma)
        aucs[float(a)] = float(roc_auc_score(members, scores)) if members.any() and (~members).any() else 0.5
    best = max(aucs, key=lambda a: (aucs[a], -a))
    return best, aucs


# ---------------------------------------------------------------- metric thresholds

def metric_thresholds(signal: np.ndarray, members: np.ndarray, labels: np.ndarray, num_classes: int,
                      per_class: bool) -> np.ndarray:
    """Thresholds per class (C,) from reference data; without per_class (or for a class missing
    members or non-members there) the global one."""
    overall = choose_threshold(signal, members)
    thresholds = np.full(num_classes, overall)
    if per_class:
        for c in range(num_classes):  # one ROC per class, not per example
            chosen = labels == c
            if members[chosen].any() and (~members[chosen]).any():
                thresholds[c] = choose_threshold(signal[chosen], members[chosen])
    return thresholds


def shifted_scores(signal: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """signal - threshold of the example's class: a single score whose threshold is 0."""
    return signal - thresholds[labels]


# ---------------------------------------------------------------- cached reference models

def reference_dir(run: Run):
    return run.model_dir / "reference"


def membership_path(run: Run):
    return reference_dir(run) / "membership.npz"


def reference_path(run: Run, index: int, variant: str = ""):
    """Reference model `index`; variant "p2aware": the same model after the P2 round."""
    return reference_dir(run) / variant / f"reference{index:03d}.pt"


def reference_membership(pool: np.ndarray, num_reference: int, seed: int) -> np.ndarray:
    """(K, P) bool: model k trains on pool[in_mask[k]]. Models 2m and 2m+1 split one random
    permutation into complementary halves (an odd last model takes a half of its own)."""
    in_mask = np.zeros((num_reference, len(pool)), dtype=bool)
    half = len(pool) // 2
    for k in range(num_reference):
        order = numpy_rng(seed, "reference", "halves", k // 2).permutation(len(pool))
        in_mask[k, order[:half] if k % 2 == 0 else order[half:2 * half]] = True
    return in_mask


def write_membership(run: Run, settings: ReferenceSettings) -> None:
    """membership.npz: the shadow pool and which of its rows each of the K reference models trains on."""
    partition = load_partition(run)
    pool = partition.shadow_pool
    if len(pool) // 2 < len(partition.clients):
        raise P2Error(f"the shadow pool has {len(pool)} rows: too few for reference models over "
                      f"{len(partition.clients)} clients")
    save_arrays(membership_path(run), {"dataset": run.dataset, "seed": run.seed, "quick": run.quick,
                                       "num_reference": settings.num_reference},
                pool=pool, in_mask=reference_membership(pool, settings.num_reference, run.seed))


def reference_training_sets(run: Run, indices: list[int]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """For each reference model k, its pool half dealt over as many clients as the target has. Model k's
    rows depend on (seed, k) only, not on K: raising NUM_REFERENCE trains only the new models."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    pool = partition.shadow_pool
    in_mask = reference_membership(pool, max(indices) + 1, run.seed)
    result = []
    for k in indices:
        rows = pool[in_mask[k]]
        rows = rows[numpy_rng(run.seed, "reference", "clients", k).permutation(len(rows))]
        result.append([tensors(dataset, part) for part in np.array_split(rows, len(partition.clients))])
    return result


def train_reference_models(run: Run, fl: FLSettings, indices: list[int]) -> None:
    """Train reference models `indices` like the target (FedAvg with its recipe), all at once, and save each."""
    federations = reference_training_sets(run, indices)
    states = train_federations(federations, fl, [derive_seed(run.seed, "reference", k) for k in indices],
                               description=f"{len(indices)} reference models")
    for k, clients, state in zip(indices, federations, states):
        save_checkpoint(reference_path(run, k), state, {"dataset": run.dataset, "seed": run.seed, "quick": run.quick,
                                                         "architecture": fl.architecture, "round": fl.rounds,
                                                         "role": f"reference{k}", "index": k})
        log.info("reference model %d trained on %d pool rows", k, sum(len(labels) for _, labels in clients))


def make_p2_aware_references(run: Run, fl: FLSettings, p2: P2Settings, indices: list[int]) -> None:
    """Run the target's P2 round on reference models `indices`, with the clients each was trained with."""
    starts = [load_model(reference_path(run, k), run)[0].state_dict() for k in indices]
    states = protect_federations(fl.architecture, starts, reference_training_sets(run, indices), p2,
                                 lambda f, round_index, client: torch_generator(run.seed, "reference", indices[f],
                                                                                "p2", round_index, client))
    for k, state in zip(indices, states):
        save_checkpoint(reference_path(run, k, P2_AWARE), state, {
            "dataset": run.dataset, "seed": run.seed, "quick": run.quick, "architecture": fl.architecture,
            "round": fl.rounds + p2.rounds, "role": f"p2-aware reference{k}", "index": k})


class ReferenceData:
    """What the reference attacks read, loaded once and shared by every target: evaluation and pool
    rows, and every reference model's logits on both."""

    def __init__(self, run: Run, settings: ReferenceSettings, variant: str = ""):
        self.run, self.settings, self.variant = run, settings, variant
        self.dataset = load_dataset(run.dataset, run.data_dir)
        partition = load_partition(run)
        arrays, _ = load_arrays(membership_path(run), expect={"seed": run.seed, "quick": run.quick,
                                                               "num_reference": settings.num_reference})
        self.pool, self.in_mask = arrays["pool"], arrays["in_mask"]
        self.rows, self.is_member = evaluation_rows(partition)
        self.eval_features, self.eval_labels = tensors(self.dataset, self.rows)
        self.pool_features, self.pool_labels = tensors(self.dataset, self.pool)
        models = [load_model(reference_path(run, k, variant), run)[0] for k in range(self.settings.num_reference)]
        self.eval_logits = [predict_logits(m, self.eval_features) for m in models]
        self.pool_logits = [predict_logits(m, self.pool_features) for m in models]
        self.population = np.arange(len(self.pool))
        if self.settings.rmia_population is not None and self.settings.rmia_population < len(self.pool):
            self.population = np.sort(numpy_rng(run.seed, "rmia", "population").choice(
                len(self.pool), self.settings.rmia_population, replace=False))

    def name(self, attack: str) -> str:
        """The attack's name in score files and summaries: <attack>_p2aware for the P2-aware references."""
        return f"{attack}_{self.variant}" if self.variant else attack

    def released_references(self, attack: str, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """(K, N, C) and (K, P, C): the reference models' outputs under the target's release."""
        def release(logits, k, rows):
            return release_logits(target, logits, release_generator(self.run, attack, target, "reference", k, rows))

        evaluation = [release(logits, k, "eval") for k, logits in enumerate(self.eval_logits)]
        pool = [release(logits, k, "pool") for k, logits in enumerate(self.pool_logits)]
        return torch.stack(evaluation).double().numpy(), torch.stack(pool).double().numpy()

    def target_outputs(self, attack: str, target: Target, with_pool: bool = False):
        model, _ = load_model(target.checkpoint, self.run)
        evaluation = target.posteriors(model, self.eval_features, release_generator(self.run, attack, target, "eval"))
        pool = None
        if with_pool:
            pool = target.posteriors(model, self.pool_features, release_generator(self.run, attack, target, "pool"))
        return evaluation, pool


def _per_model(function, outputs: np.ndarray, labels: torch.Tensor) -> np.ndarray:
    """function(posteriors, labels) for each reference model: (K, rows)."""
    return np.stack([function(o, labels) for o in outputs])


# ---------------------------------------------------------------- the attacks

def metric_attack(data: ReferenceData, metric: str, target: Target) -> dict:
    _, pool = data.released_references(metric, target)
    pool_signal = _per_model(lambda p, y: metric_signal(p, y, metric), pool, data.pool_labels)
    per_class = data.settings.class_thresholds and metric != "loss"
    labels = data.pool_labels.numpy()
    thresholds = metric_thresholds(pool_signal.ravel(), data.in_mask.ravel(), np.tile(labels, len(pool_signal)),
                                   data.dataset.num_classes, per_class)
    posteriors, _ = data.target_outputs(metric, target)
    signal = metric_signal(posteriors, data.eval_labels, metric)
    if per_class:
        scores, threshold = shifted_scores(signal, data.eval_labels.numpy(), thresholds), 0.0
    else:
        scores, threshold = signal, float(thresholds[0])
    return save_scores(data.run, data.name(metric), target, attack_settings(metric, data.settings), scores,
                       data.is_member, data.rows, threshold,
                       details={"class_thresholds": thresholds.tolist() if per_class else None,
                                "threshold_from": "reference models' pool rows"})


def gap_attack(run: Run, target: Target) -> dict:
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    rows, is_member = evaluation_rows(partition)
    features, labels = tensors(dataset, rows)
    model, _ = load_model(target.checkpoint, run)
    posteriors = target.posteriors(model, features, release_generator(run, "gap", target, "eval"))
    return save_scores(run, "gap", target, attack_settings("gap", None), gap_signal(posteriors, labels),
                       is_member, rows, GAP_THRESHOLD, details={"threshold_from": "the rule itself"})


def lira_attack(data: ReferenceData, target: Target) -> dict:
    evaluation, pool = data.released_references("lira", target)
    fixed = data.settings.lira_fixed_variance
    pool_signal = _per_model(logit_confidence, pool, data.pool_labels)
    simulated, members = simulated_lira(pool_signal, data.in_mask, fixed)
    threshold = choose_threshold(simulated, members)
    posteriors, _ = data.target_outputs("lira", target)
    reference_signal = _per_model(logit_confidence, evaluation, data.eval_labels).T     # (N, K), all OUT
    scores = lira_offline(logit_confidence(posteriors, data.eval_labels), reference_signal,
                          np.ones_like(reference_signal, dtype=bool), fixed)
    return save_scores(data.run, data.name("lira"), target, attack_settings("lira", data.settings), scores,
                       data.is_member, data.rows, threshold,
                       details={"score": "(phi - mu_out) / sigma_out; Lambda = Phi(score)",
                                "simulated_auc": float(roc_auc_score(members, simulated)),
                                "threshold_from": "reference models playing the target"})


def rmia_attack(data: ReferenceData, target: Target) -> dict:
    evaluation, pool = data.released_references("rmia", target)
    pool_probability = _per_model(lambda p, y: true_class_mass(p, y)[0], pool, data.pool_labels)
    gamma = data.settings.rmia_gamma
    if data.settings.rmia_a is None:
        a, aucs = tune_rmia_a(pool_probability, data.in_mask, data.population, gamma)
    else:
        a, aucs = data.settings.rmia_a, {}
    simulated, members = simulated_rmia(pool_probability, data.in_mask, data.population, a, gamma)
    threshold = choose_threshold(simulated, members)
    posteriors, pool_posteriors = data.target_outputs("rmia", target, with_pool=True)
    reference_x = _per_model(lambda p, y: true_class_mass(p, y)[0], evaluation, data.eval_labels).T
    z = data.population
    scores = rmia_offline(true_class_mass(posteriors, data.eval_labels)[0], reference_x,
                          np.ones_like(reference_x, dtype=bool),
                          true_class_mass(pool_posteriors, data.pool_labels)[0][z], pool_probability[:, z].T,
                          ~data.in_mask[:, z].T, a, gamma)
    log.info("RMIA on %s: offline a = %.2f (%s)", target.name, a, "tuned" if aucs else "fixed")
    return save_scores(data.run, data.name("rmia"), target, attack_settings("rmia", data.settings), scores,
                       data.is_member, data.rows, threshold,
                       details={"a": float(a), "a_tuning_auc": aucs, "population": int(len(z)),
                                "simulated_auc": float(roc_auc_score(members, simulated)),
                                "threshold_from": "reference models playing the target"})
