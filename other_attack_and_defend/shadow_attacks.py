"""Shadow-model attacks: Shokri et al. 2017 and ML-Leaks (Salem et al. 2019).

Shadow models have the target's architecture (from the FL stage script) and are trained on rows of
the shadow pool only (P2_REFERENCE.md section 5.5): half of each shadow's rows are its "in"
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
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from FL_model_generation.fedavg import federated_training
from FL_model_generation.fl_stage import load_model
from FL_model_generation.models import accuracy, build_model, load_state
from FL_model_generation.training import FLSettings
from other_attack_and_defend.attack_common import (check_optimizer, check_positive, evaluation_rows, fit_attack_mlps,
                                                   release_generator, released, rows_fingerprint, save_scores,
                                                   scores_up_to_date, top_k_sorted, train_classifier)
from toolkit.checkpoints import load_arrays, load_checkpoint, save_arrays, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import derive_seed, numpy_rng, torch_generator
from toolkit.targets import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShokriSettings:
    num_shadows: int = 9
    shadow_size: int = 2000          # rows per shadow model: the first half trained on, the second half held out
    training: str = "central"        # "central": the constants below; "fl": the target's FedAvg recipe
    optimizer: str = "adam"
    lr: float = 0.005
    epochs: int = 8
    batch_size: int = 128
    top_k: int = 2                   # sorted top-k posteriors fed to the attack models
    per_class: bool = False          # one attack model per shadow and class (Shokri et al.'s design)
    attack_hidden: int = 5
    attack_optimizer: str = "adam"
    attack_lr: float = 0.01
    attack_epochs: int = 60
    attack_batch_size: int = 128

    def __post_init__(self):
        check_positive(self, ("num_shadows", "shadow_size", "lr", "epochs", "batch_size", "top_k", "attack_hidden",
                              "attack_lr", "attack_epochs", "attack_batch_size"), "Shokri")
        if self.shadow_size < 2:
            raise P2Error(f"Shokri SHADOW_SIZE={self.shadow_size} must be at least 2 (half in, half out)")
        check_training(self.training, "Shokri")
        check_optimizer(self.optimizer, "Shokri SHADOW_OPTIMIZER")
        check_optimizer(self.attack_optimizer, "Shokri ATTACK_OPTIMIZER")

    def quick(self) -> "ShokriSettings":
        return replace(self, num_shadows=min(self.num_shadows, 3), shadow_size=min(self.shadow_size, 400))

    def as_dict(self) -> dict:
        return asdict(self)

    def shadow_recipe(self) -> dict:
        """The settings the cached shadow models depend on (the attack MLPs' do not retrain them)."""
        return {name: getattr(self, name) for name in ("num_shadows", "shadow_size", "training", "optimizer", "lr",
                                                       "epochs", "batch_size")}


@dataclass(frozen=True)
class MLLeaksSettings:
    in_size: int = 3000              # shadow training rows
    out_size: int = 3000             # shadow held-out rows
    training: str = "central"        # "central": the constants below; "fl": the target's FedAvg recipe
    optimizer: str = "adam"
    lr: float = 0.005
    epochs: int = 7
    batch_size: int = 100
    top_k: int = 2
    attack_hidden: int = 5
    attack_optimizer: str = "adam"
    attack_lr: float = 0.01
    attack_epochs: int = 30
    attack_batch_size: int = 100

    def __post_init__(self):
        check_positive(self, ("in_size", "out_size", "lr", "epochs", "batch_size", "top_k", "attack_hidden",
                              "attack_lr", "attack_epochs", "attack_batch_size"), "ML-Leaks")
        check_training(self.training, "ML-Leaks")
        check_optimizer(self.optimizer, "ML-Leaks SHADOW_OPTIMIZER")
        check_optimizer(self.attack_optimizer, "ML-Leaks ATTACK_OPTIMIZER")

    def quick(self) -> "MLLeaksSettings":
        return replace(self, in_size=min(self.in_size, 300), out_size=min(self.out_size, 300))

    def as_dict(self) -> dict:
        return asdict(self)

    def shadow_recipe(self) -> dict:
        return {name: getattr(self, name) for name in ("in_size", "out_size", "training", "optimizer", "lr", "epochs",
                                                       "batch_size")}


TRAININGS = ("central", "fl")


def check_training(value: str, what: str) -> None:
    if value not in TRAININGS:
        raise P2Error(f"{what} TRAINING={value!r} must be one of {TRAININGS}")


def effective(run: Run, settings):
    return settings.quick() if run.quick else settings


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
    need = settings.in_size + settings.out_size
    if need > len(pool):
        raise P2Error(f"ML-Leaks IN_SIZE + OUT_SIZE = {need} exceeds the {len(pool)} rows of the shadow pool; "
                      f"lower SHADOW_IN / SHADOW_OUT in {_where('ML_leaks_attack', dataset)} or enlarge the pool "
                      f"in data_partitioning.py")
    chosen = numpy_rng(seed, "ml_leaks", "shadow").choice(pool, need, replace=False)
    return chosen[:settings.in_size], chosen[settings.in_size:]


# ---------------------------------------------------------------- cached shadow models

def shadow_dir(run: Run, attack: str):
    return run.model_dir / "shadow" / attack


def rows_path(run: Run, attack: str):
    return shadow_dir(run, attack) / "rows.npz"


def shadow_path(run: Run, attack: str, index: int):
    return shadow_dir(run, attack) / f"shadow{index:03d}.pt"


def _prep_meta(run: Run, attack: str, settings, fl: FLSettings, pool: np.ndarray) -> dict:
    """What cached shadow models depend on: their recipe (with the FL recipe when trained like the
    target), the target architecture and the shadow pool."""
    recipe = settings.shadow_recipe()
    if settings.training == "fl":
        recipe["fl"] = fl.as_dict()
    return {"attack": attack, "dataset": run.dataset, "seed": run.seed, "quick": run.quick,
            "recipe": recipe, "architecture": fl.architecture, "pool": rows_fingerprint(pool)}


def train_shadow(run: Run, attack: str, settings, fl: FLSettings, features: torch.Tensor, labels: torch.Tensor,
                 clients: int, index: int) -> torch.nn.Module:
    """One shadow model on its "in" rows: centrally with the attack's constants, or like the target."""
    if settings.training == "central":
        return train_classifier(fl.architecture, features, labels, settings.optimizer, settings.lr, settings.epochs,
                                settings.batch_size, run.seed, attack, "shadow", index)
    parts = torch.arange(len(labels)).tensor_split(clients)
    state = federated_training([(features[part], labels[part]) for part in parts], fl,
                               derive_seed(run.seed, attack, "shadow", index), description=f"{attack} shadow {index}")
    return load_state(build_model(fl.architecture), state, f"{attack} shadow {index}").eval()


def _train_shadows(run: Run, attack: str, settings, fl: FLSettings, splits: list[tuple[np.ndarray, np.ndarray]],
                   partition, dataset) -> None:
    meta = _prep_meta(run, attack, settings, fl, partition.shadow_pool)
    for index, (rows_in, rows_out) in enumerate(tqdm(splits, desc=f"{attack} shadows", unit="model", leave=False)):
        features, labels = tensors(dataset, rows_in)
        model = train_shadow(run, attack, settings, fl, features, labels, len(partition.clients), index)
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
    settings = effective(run, settings)
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    rows = shokri_shadow_rows(partition.shadow_pool, settings, run.seed, run.dataset)
    half = settings.shadow_size // 2
    _train_shadows(run, "shokri", settings, fl, [(r[:half], r[half:]) for r in rows], partition, dataset)
    save_arrays(rows_path(run, "shokri"), _prep_meta(run, "shokri", settings, fl, partition.shadow_pool),
                rows=rows, half=np.array(half))


def prepare_ml_leaks(run: Run, settings: MLLeaksSettings, fl: FLSettings) -> None:
    settings = effective(run, settings)
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    rows_in, rows_out = ml_leaks_shadow_rows(partition.shadow_pool, settings, run.seed, run.dataset)
    _train_shadows(run, "ml_leaks", settings, fl, [(rows_in, rows_out)], partition, dataset)
    save_arrays(rows_path(run, "ml_leaks"), _prep_meta(run, "ml_leaks", settings, fl, partition.shadow_pool),
                rows_in=rows_in, rows_out=rows_out)


def _shadow_count(attack: str, settings) -> int:
    return settings.num_shadows if attack == "shokri" else 1


def shadows_ready(run: Run, attack: str, settings, fl: FLSettings) -> bool:
    """True when the cached shadow models match the settings, the architecture and the current pool."""
    settings = effective(run, settings)
    try:
        partition = load_partition(run)
        expect = _prep_meta(run, attack, settings, fl, partition.shadow_pool)
        load_arrays(rows_path(run, attack), expect=expect)
        for index in range(_shadow_count(attack, settings)):
            load_checkpoint(shadow_path(run, attack, index), expect=expect)
    except P2Error:
        return False
    return True


def _load_shadow_splits(run: Run, attack: str, settings, fl: FLSettings, pool: np.ndarray):
    arrays, _ = load_arrays(rows_path(run, attack), expect=_prep_meta(run, attack, settings, fl, pool))
    if attack == "shokri":
        half = int(arrays["half"])
        splits = [(r[:half], r[half:]) for r in arrays["rows"]]
    else:
        splits = [(arrays["rows_in"], arrays["rows_out"])]
    models = [load_model(shadow_path(run, attack, index), run)[0] for index in range(len(splits))]
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


def shokri_attack(run: Run, settings: ShokriSettings, fl: FLSettings, target: Target) -> dict:
    settings = effective(run, settings)
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    splits, shadows = _load_shadow_splits(run, "shokri", settings, fl, partition.shadow_pool)
    inputs = _shadow_inputs(run, "shokri", target, dataset, splits, shadows, settings.top_k)
    models, thresholds, valid = shokri_fit(inputs, dataset.num_classes, settings,
                                           torch_generator(run.seed, "shokri", "attack", target.name))
    model, _ = load_model(target.checkpoint, run)
    rows, is_member = evaluation_rows(partition)
    features, labels = tensors(dataset, rows)
    posteriors = target.posteriors(model, features, release_generator(run, "shokri", target, "target"))
    scores = shokri_scores(models, thresholds, valid, posteriors, labels, settings, dataset.num_classes)
    return save_scores(run, "shokri", target, settings.as_dict(), scores, is_member, rows, threshold=0.5,
                       details={"attack_models": int(valid.sum()), "decision": "majority vote"})


def ml_leaks_fit(inputs: torch.Tensor, is_member: torch.Tensor, settings: MLLeaksSettings, generator: torch.Generator):
    """One attack MLP on (n, k) inputs; returns it and the threshold chosen on these same shadow rows."""
    models, thresholds = fit_attack_mlps(inputs.unsqueeze(0), is_member.unsqueeze(0), torch.ones(1, len(inputs)),
                                         settings.attack_hidden, settings.attack_optimizer, settings.attack_lr,
                                         settings.attack_epochs, settings.attack_batch_size, generator)
    return models, float(thresholds[0])


def ml_leaks_scores(models, posteriors: torch.Tensor, settings: MLLeaksSettings) -> np.ndarray:
    return models.member_probability(top_k_sorted(posteriors, settings.top_k))[0].double().numpy()


def ml_leaks_attack(run: Run, settings: MLLeaksSettings, fl: FLSettings, target: Target) -> dict:
    settings = effective(run, settings)
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    splits, shadows = _load_shadow_splits(run, "ml_leaks", settings, fl, partition.shadow_pool)
    (inputs, members, _), = _shadow_inputs(run, "ml_leaks", target, dataset, splits, shadows, settings.top_k)
    models, threshold = ml_leaks_fit(inputs, members, settings,
                                     torch_generator(run.seed, "ml_leaks", "attack", target.name))
    model, _ = load_model(target.checkpoint, run)
    rows, is_member = evaluation_rows(partition)
    features, _ = tensors(dataset, rows)
    posteriors = target.posteriors(model, features, release_generator(run, "ml_leaks", target, "target"))
    scores = ml_leaks_scores(models, posteriors, settings)
    return save_scores(run, "ml_leaks", target, settings.as_dict(), scores, is_member, rows, threshold=threshold,
                       details={"threshold_from": "shadow in/out rows"})


def attack_is_done(run: Run, attack: str, settings, target: Target) -> bool:
    settings = effective(run, settings)
    inputs = [rows_path(run, attack)] + [shadow_path(run, attack, i) for i in range(_shadow_count(attack, settings))]
    return scores_up_to_date(run, attack, target, settings.as_dict(), inputs)
