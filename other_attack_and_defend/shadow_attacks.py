"""Shadow-model attacks: Shokri et al. 2017 and ML-Leaks (Salem et al. 2019).

Shadow models have the target's architecture (from the FL stage script) and are trained on rows of
the shadow pool only (docs/NOTES.md section 5): half of each shadow's rows are its "in"
(trained on), the other half its "out". TRAINING = "central" trains them as the original code did
(one optimiser, the attack script's SHADOW_* constants); TRAINING = "fl" trains them like the target
instead (the FL stage's FedAvg recipe, the "in" rows split over as many clients as the target had),
which matters when the target's confidence differs from what the central recipe produces. The
shadows' score vectors go through the target's release (the defense mechanism is public), then the
sorted top-k entries train small attack MLPs.

- Shokri: one attack MLP per shadow model (or, with PER_CLASS, one per shadow and class, as in the
  paper); each votes with its own threshold (chosen on its shadow's in/out rows); the score is the
  fraction of votes for "member" and the decision is the majority (threshold 0.5).
- ML-Leaks: one shadow model, one attack MLP; the score is its member probability, the threshold
  the one with the best balanced accuracy on the shadow's in/out rows.

Shadow models are trained once per run and cached in model/<dataset>/<run>/shadow/<attack>/,
shared by every target; the attack MLPs depend on the target's release and are trained per target.
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
from FL_model_generation.models import accuracy, build_model, load_state
from FL_model_generation.training import FLSettings
from defend.p2_protection import P2Settings, protect_federations
from other_attack_and_defend.attack_common import (check_optimizer, check_positive, evaluation_rows, fit_attack_mlps,
                                                   release_generator, released, save_scores, top_k_sorted,
                                                   train_classifiers)
from other_attack_and_defend.reference_attacks import P2_AWARE
from other_attack_and_defend.targets import Target
from toolkit.checkpoints import load_arrays, save_arrays, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import derive_seed, numpy_rng, torch_generator
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)


TRAININGS = ("central", "fl")


@dataclass(frozen=True)
class ShokriSettings(Settings):
    """Shokri et al.'s attack, from other_attack_and_defend/shokri_attack_<dataset>.py. SHADOW_SIZE rows per
    shadow model: the first half trained on, the second half held out."""
    num_shadows: int
    shadow_size: int
    training: str
    p2_aware: bool
    shadow_optimizer: str
    shadow_lr: float
    shadow_epochs: int
    shadow_batch_size: int
    top_k: int
    per_class: bool
    attack_hidden: int
    attack_optimizer: str
    attack_lr: float
    attack_epochs: int
    attack_batch_size: int

    QUICK: ClassVar[dict] = {"NUM_SHADOWS": 3, "SHADOW_SIZE": 400}

    def check(self) -> None:
        check_positive(self, ("num_shadows", "shadow_lr", "shadow_epochs", "shadow_batch_size", "top_k",
                              "attack_hidden", "attack_lr", "attack_epochs", "attack_batch_size"))
        require(self.shadow_size >= 2, "SHADOW_SIZE", self.shadow_size, "must be at least 2 (half in, half out)")
        require(self.training in TRAININGS, "TRAINING", self.training, f"must be one of {TRAININGS}")
        check_optimizer(self, "shadow_optimizer")
        check_optimizer(self, "attack_optimizer")

    def shadow_recipe(self) -> dict:
        """The constants the cached shadow models depend on (the attack MLPs' do not retrain them)."""
        return {name: value for name, value in self.constants().items()
                if name in ("NUM_SHADOWS", "SHADOW_SIZE", "TRAINING") or name.startswith("SHADOW_")}

    def attack_constants(self) -> dict:
        """The constants an attack's scores depend on beyond its shadow models (P2_AWARE only adds attacks)."""
        return {name: value for name, value in self.constants().items() if name != "P2_AWARE"}


@dataclass(frozen=True)
class MLLeaksSettings(Settings):
    """ML-Leaks, from other_attack_and_defend/ML_leaks_attack_<dataset>.py: one shadow model trained on
    SHADOW_IN rows, SHADOW_OUT more held out."""
    shadow_in: int
    shadow_out: int
    training: str
    p2_aware: bool
    shadow_optimizer: str
    shadow_lr: float
    shadow_epochs: int
    shadow_batch_size: int
    top_k: int
    attack_hidden: int
    attack_optimizer: str
    attack_lr: float
    attack_epochs: int
    attack_batch_size: int

    QUICK: ClassVar[dict] = {"SHADOW_IN": 300, "SHADOW_OUT": 300}

    def check(self) -> None:
        check_positive(self, ("shadow_in", "shadow_out", "shadow_lr", "shadow_epochs", "shadow_batch_size", "top_k",
                              "attack_hidden", "attack_lr", "attack_epochs", "attack_batch_size"))
        require(self.training in TRAININGS, "TRAINING", self.training, f"must be one of {TRAININGS}")
        check_optimizer(self, "shadow_optimizer")
        check_optimizer(self, "attack_optimizer")

    def shadow_recipe(self) -> dict:
        return {name: value for name, value in self.constants().items()
                if name == "TRAINING" or name.startswith("SHADOW_")}

    def attack_constants(self) -> dict:
        """The constants an attack's scores depend on beyond its shadow model (P2_AWARE only adds attacks)."""
        return {name: value for name, value in self.constants().items() if name != "P2_AWARE"}


# ---------------------------------------------------------------- which rows the shadows use

def _where(script: str, dataset: str | None) -> str:
    """Where the constant to change lives, for the error messages."""
    return f"other_attack_and_defend/{script}_{dataset}.py" if dataset else f"the {script}_<dataset>.py script"


def shokri_shadow_rows(pool: np.ndarray, settings: ShokriSettings, seed: int, dataset: str | None = None) -> np.ndarray:
    """(num_shadows, shadow_size) rows of the shadow pool: per shadow, first half in, second half out.
    Each shadow draws its rows independently (shadows may share rows, as in Shokri et al.)."""
    if settings.shadow_size > len(pool):
        raise P2Error(f"Shokri SHADOW_SIZE={settings.shadow_size} exceeds the {len(pool)} rows of the shadow pool; "
                      f"lower SHADOW_SIZE in {_where('shokri_attack', dataset)} or enlarge the pool in "
                      f"data_partitioning.py")
    return np.stack([numpy_rng(seed, "shokri", "shadow", s).choice(pool, settings.shadow_size, replace=False)
                     for s in range(settings.num_shadows)])


def ml_leaks_shadow_rows(pool: np.ndarray, settings: MLLeaksSettings, seed: int,
                         dataset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (in, out) rows of the shadow pool for the one ML-Leaks shadow model."""
    need = settings.shadow_in + settings.shadow_out
    if need > len(pool):
        raise P2Error(f"ML-Leaks SHADOW_IN + SHADOW_OUT = {need} exceeds the {len(pool)} rows of the shadow pool; "
                      f"lower SHADOW_IN / SHADOW_OUT in {_where('ML_leaks_attack', dataset)} or enlarge the pool "
                      f"in data_partitioning.py")
    chosen = numpy_rng(seed, "ml_leaks", "shadow").choice(pool, need, replace=False)
    return chosen[:settings.shadow_in], chosen[settings.shadow_in:]


# ---------------------------------------------------------------- cached shadow models

def shadow_dir(run: Run, attack: str):
    return run.model_dir / "shadow" / attack


def rows_path(run: Run, attack: str):
    return shadow_dir(run, attack) / "rows.npz"


def shadow_path(run: Run, attack: str, index: int, variant: str = ""):
    """Shadow model `index` of `attack`; variant "p2aware": the same model after the P2 round."""
    return shadow_dir(run, attack) / variant / f"shadow{index:03d}.pt"


def shadow_paths(run: Run, attack: str, settings, variant: str = "") -> list:
    """Every file the shadow-model stage of `attack` writes: the rows file, then one checkpoint per shadow
    (for the P2-aware variant, the checkpoints only)."""
    count = settings.num_shadows if attack == "shokri" else 1
    models = [shadow_path(run, attack, index, variant) for index in range(count)]
    return models if variant else [rows_path(run, attack)] + models


def _meta(run: Run, attack: str, fl: FLSettings) -> dict:
    return {"attack": attack, "dataset": run.dataset, "seed": run.seed, "quick": run.quick,
            "architecture": fl.architecture}


def train_shadows(run: Run, attack: str, settings, fl: FLSettings, datasets: list[tuple[torch.Tensor, torch.Tensor]],
                  clients: int) -> list[torch.nn.Module]:
    """Shadow models on their "in" rows, all at once: centrally with the attack's SHADOW_* recipe, or like the
    target (FedAvg with its recipe, the rows dealt over as many clients as it had)."""
    if settings.training == "central":
        return train_classifiers(fl.architecture, datasets, settings.shadow_optimizer, settings.shadow_lr,
                                 settings.shadow_epochs, settings.shadow_batch_size, run.seed,
                                 [(attack, "shadow", index) for index in range(len(datasets))])
    federations = [[(features[part], labels[part]) for part in torch.arange(len(labels)).tensor_split(clients)]
                   for features, labels in datasets]
    states = train_federations(federations, fl, [derive_seed(run.seed, attack, "shadow", index)
                                                 for index in range(len(datasets))], description=f"{attack} shadows")
    return [load_state(build_model(fl.architecture), state, f"{attack} shadow {index}").eval()
            for index, state in enumerate(states)]


def _train_shadows(run: Run, attack: str, settings, fl: FLSettings, splits: list[tuple[np.ndarray, np.ndarray]],
                   partition, dataset) -> None:
    meta = _meta(run, attack, fl)
    datasets = [tensors(dataset, rows_in) for rows_in, _ in splits]
    models = train_shadows(run, attack, settings, fl, datasets, len(partition.clients))
    for index, ((rows_in, rows_out), model, (features, labels)) in enumerate(zip(splits, models, datasets)):
        out_features, out_labels = tensors(dataset, rows_out)
        accuracies = {"train_acc": accuracy(model, features, labels),
                      "out_acc": accuracy(model, out_features, out_labels)}
        log.info("%s shadow %d: train accuracy %.4f, held-out accuracy %.4f", attack, index,
                 accuracies["train_acc"], accuracies["out_acc"])
        save_checkpoint(shadow_path(run, attack, index), model.state_dict(),
                        {**meta, "role": f"{attack}_shadow{index}", "round": 0,
                         "index": index, "accuracy": accuracies})


def prepare_shokri(run: Run, settings: ShokriSettings, fl: FLSettings) -> None:
    """Train and cache the Shokri shadow models of this run."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    rows = shokri_shadow_rows(partition.shadow_pool, settings, run.seed, run.dataset)
    half = settings.shadow_size // 2
    _train_shadows(run, "shokri", settings, fl, [(r[:half], r[half:]) for r in rows], partition, dataset)
    save_arrays(rows_path(run, "shokri"), _meta(run, "shokri", fl), rows=rows, half=np.array(half))


def prepare_ml_leaks(run: Run, settings: MLLeaksSettings, fl: FLSettings) -> None:
    """Train and cache the ML-Leaks shadow model of this run."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    rows_in, rows_out = ml_leaks_shadow_rows(partition.shadow_pool, settings, run.seed, run.dataset)
    _train_shadows(run, "ml_leaks", settings, fl, [(rows_in, rows_out)], partition, dataset)
    save_arrays(rows_path(run, "ml_leaks"), _meta(run, "ml_leaks", fl), rows_in=rows_in, rows_out=rows_out)


def make_p2_aware_shadows(run: Run, attack: str, fl: FLSettings, p2: P2Settings) -> None:
    """Run the target's P2 round on the attack's shadow models, each one's training rows dealt over as many
    clients as the target had."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    splits, shadows = _load_shadow_splits(run, attack)
    federations = []
    for rows_in, _ in splits:
        features, labels = tensors(dataset, rows_in)
        federations.append([(features[part], labels[part])
                            for part in torch.arange(len(labels)).tensor_split(len(partition.clients))])
    states = protect_federations(fl.architecture, [model.state_dict() for model in shadows], federations, p2,
                                 lambda f, round_index, client: torch_generator(run.seed, attack, "shadow", f, "p2",
                                                                                round_index, client))
    for index, state in enumerate(states):
        save_checkpoint(shadow_path(run, attack, index, P2_AWARE), state,
                        {**_meta(run, attack, fl), "role": f"p2-aware {attack}_shadow{index}", "round": p2.rounds,
                         "index": index})


def _load_shadow_splits(run: Run, attack: str, variant: str = ""):
    arrays, _ = load_arrays(rows_path(run, attack), expect={"attack": attack, "seed": run.seed, "quick": run.quick})
    if attack == "shokri":
        half = int(arrays["half"])
        splits = [(r[:half], r[half:]) for r in arrays["rows"]]
    else:
        splits = [(arrays["rows_in"], arrays["rows_out"])]
    models = [load_model(shadow_path(run, attack, index, variant), run)[0] for index in range(len(splits))]
    return splits, models


def _shadow_inputs(run: Run, attack: str, target: Target, dataset, splits, models, top_k: int):
    """Per shadow: (sorted top-k of released posteriors, membership, true labels) over its in + out rows."""
    result = []
    for index, ((rows_in, rows_out), model) in enumerate(zip(splits, models)):
        rows = np.concatenate([rows_in, rows_out])
        features, labels = tensors(dataset, rows)
        posteriors = released(target, model, features, release_generator(run, attack, target, "shadow", index))
        result.append((top_k_sorted(posteriors, top_k), torch.arange(len(rows)) < len(rows_in), labels))
    return result


# ---------------------------------------------------------------- the attacks

def shokri_fit(shadow_inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], num_classes: int,
               settings: ShokriSettings, generator: torch.Generator):
    """Attack models from each shadow's (inputs, is_member, labels); one per shadow, or per shadow
    and class. Returns (models, thresholds, valid), models indexed shadow-major."""
    inputs = torch.stack([x for x, _, _ in shadow_inputs])                # (S, n, k)
    members = torch.stack([m for _, m, _ in shadow_inputs])
    labels = torch.stack([y for _, _, y in shadow_inputs])
    classes = num_classes if settings.per_class else 1
    if settings.per_class:
        weights = (labels.unsqueeze(1) == torch.arange(classes).view(1, -1, 1)).float().flatten(0, 1)
    else:
        weights = torch.ones(members.shape)
    inputs = inputs.repeat_interleave(classes, 0)
    members = members.repeat_interleave(classes, 0)
    models, thresholds = fit_attack_mlps(inputs, members, weights, settings.attack_hidden, settings.attack_optimizer,
                                         settings.attack_lr, settings.attack_epochs, settings.attack_batch_size,
                                         generator)
    present = weights > 0
    valid = ((members & present).sum(1) >= 1) & ((~members & present).sum(1) >= 1)
    return models, thresholds, valid


def shokri_scores(models, thresholds: torch.Tensor, valid: torch.Tensor, posteriors: torch.Tensor,
                  labels: torch.Tensor, settings: ShokriSettings, num_classes: int) -> np.ndarray:
    """Fraction of (valid) attack models voting "member"; 0.5 where none applies."""
    votes = models.member_probability(top_k_sorted(posteriors, settings.top_k)) >= thresholds.unsqueeze(1)  # (M, n)
    usable = valid.unsqueeze(1).expand_as(votes)
    if settings.per_class:
        shadows = len(votes) // num_classes
        pick = labels.view(1, 1, -1).expand(shadows, 1, -1)
        votes = votes.view(shadows, num_classes, -1).gather(1, pick).squeeze(1)
        usable = usable.reshape(shadows, num_classes, -1).gather(1, pick).squeeze(1)
    counted = usable.sum(0).double()
    fraction = (votes & usable).sum(0).double() / counted.clamp_min(1)
    return torch.where(counted > 0, fraction, torch.full_like(fraction, 0.5)).numpy()


def shokri_attack(run: Run, settings: ShokriSettings, target: Target, variant: str = "") -> dict:
    """Shokri et al.'s attack on `target`, with the plain shadow models or their P2-aware variant."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    splits, shadows = _load_shadow_splits(run, "shokri", variant)
    inputs = _shadow_inputs(run, "shokri", target, dataset, splits, shadows, settings.top_k)
    models, thresholds, valid = shokri_fit(inputs, dataset.num_classes, settings,
                                           torch_generator(run.seed, "shokri", "attack", target.name))
    model, _ = load_model(target.checkpoint, run)
    rows, is_member = evaluation_rows(partition)
    features, labels = tensors(dataset, rows)
    posteriors = target.posteriors(model, features, release_generator(run, "shokri", target, "target"))
    scores = shokri_scores(models, thresholds, valid, posteriors, labels, settings, dataset.num_classes)
    return save_scores(run, "_".join(filter(None, ("shokri", variant))), target, settings.attack_constants(), scores,
                       is_member, rows, threshold=0.5,
                       details={"attack_models": int(valid.sum()), "decision": "majority vote"})


def ml_leaks_fit(inputs: torch.Tensor, is_member: torch.Tensor, settings: MLLeaksSettings, generator: torch.Generator):
    """One attack MLP on (n, k) inputs; returns it and the threshold chosen on these same shadow rows."""
    models, thresholds = fit_attack_mlps(inputs.unsqueeze(0), is_member.unsqueeze(0), torch.ones(1, len(inputs)),
                                         settings.attack_hidden, settings.attack_optimizer, settings.attack_lr,
                                         settings.attack_epochs, settings.attack_batch_size, generator)
    return models, float(thresholds[0])


def ml_leaks_scores(models, posteriors: torch.Tensor, settings: MLLeaksSettings) -> np.ndarray:
    return models.member_probability(top_k_sorted(posteriors, settings.top_k))[0].double().numpy()


def ml_leaks_attack(run: Run, settings: MLLeaksSettings, target: Target, variant: str = "") -> dict:
    """ML-Leaks on `target`, with the plain shadow model or its P2-aware variant."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    splits, shadows = _load_shadow_splits(run, "ml_leaks", variant)
    (inputs, members, _), = _shadow_inputs(run, "ml_leaks", target, dataset, splits, shadows, settings.top_k)
    models, threshold = ml_leaks_fit(inputs, members, settings,
                                     torch_generator(run.seed, "ml_leaks", "attack", target.name))
    model, _ = load_model(target.checkpoint, run)
    rows, is_member = evaluation_rows(partition)
    features, _ = tensors(dataset, rows)
    posteriors = target.posteriors(model, features, release_generator(run, "ml_leaks", target, "target"))
    scores = ml_leaks_scores(models, posteriors, settings)
    return save_scores(run, "_".join(filter(None, ("ml_leaks", variant))), target, settings.attack_constants(), scores,
                       is_member, rows, threshold=threshold,
                       details={"threshold_from": "shadow in/out rows"})
