"""What every black-box attack of the suite shares: the evaluation rows, the attacker's view of a
target (released score vectors, the same release applied to the attacker's own models), training
of shadow classifiers, small attack MLPs trained all at once, and the score files.

Score files: results/<dataset>/<run>/scores/<attack>__<target>.npz with one score per evaluation
example (higher = member) and a threshold chosen without the evaluation labels, read by
reporting.summary.attack_metrics like the gradient attack's.
"""
import logging
import math

import numpy as np
import torch
from torch import nn

from FL_model_generation.fedavg import stacks_well
from FL_model_generation.models import build_model, load_state, predict_logits
from FL_model_generation.stacked_training import Recipe, train_stacked
from toolkit.scoring import choose_threshold, membership_metrics
from toolkit.checkpoints import load_arrays, save_arrays
from toolkit.settings import require
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator
from other_attack_and_defend.targets import Target

log = logging.getLogger(__name__)

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def check_optimizer(settings, field: str) -> None:
    value = getattr(settings, field)
    require(value in OPTIMIZERS, field.upper(), value, f"must be one of {sorted(OPTIMIZERS)}")


def check_positive(settings, fields: tuple[str, ...]) -> None:
    for field in fields:
        require(getattr(settings, field) > 0, field.upper(), getattr(settings, field), "must be positive")


# ---------------------------------------------------------------- evaluation rows and the target

def evaluation_rows(partition) -> tuple[np.ndarray, np.ndarray]:
    """rows = concat(eval_members, eval_nonmembers) and the matching membership flags."""
    rows = np.concatenate([partition.eval_members, partition.eval_nonmembers])
    return rows, np.arange(len(rows)) < len(partition.eval_members)


def defense_description(target: Target) -> dict | None:
    """The defense's parameters as the target describes them (None for a plain release); recorded
    under "defense" like the gradient attack does, so scores made under another release are stale."""
    return target.describe()


def release_generator(run: Run, attack: str, target: Target, *names) -> torch.Generator:
    """Randomness for a release that asks for it, per attack, target and queried model."""
    return torch_generator(run.seed, "release", attack, target.name, *names)


def released(target: Target, model: nn.Module, features: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Score vectors of one of the attacker's own models, released as the target releases its own.

    The query rows are deliberately not passed on: a defense that keys its noise by the queried row
    would otherwise give the attacker's simulation the defender's very noise realisation."""
    return release_logits(target, predict_logits(model, features), generator)


def release_logits(target: Target, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The target's release mechanism applied to logits of the attacker's own models (see `released`)."""
    return target.release(logits, generator)


def top_k_sorted(posteriors: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest entries of each score vector, in decreasing order (the attack models' input)."""
    k = min(k, posteriors.shape[1])
    return posteriors.float().sort(1, descending=True).values[:, :k]


# ---------------------------------------------------------------- shadow classifiers

def train_classifier(architecture: dict, features: torch.Tensor, labels: torch.Tensor, optimizer: str, lr: float,
                     epochs: int, batch_size: int, seed: int, *names) -> nn.Module:
    """Centralised mini-batch training of one shadow model; init and batches derive from (seed, names)."""
    return train_classifiers(architecture, [(features, labels)], optimizer, lr, epochs, batch_size, seed, [names])[0]


def train_classifiers(architecture: dict, datasets: list[tuple[torch.Tensor, torch.Tensor]], optimizer: str,
                      lr: float, epochs: int, batch_size: int, seed: int, names: list[tuple]) -> list[nn.Module]:
    """Several shadow models trained at once (stacked where that is faster, fedavg.stacks_well), model i
    initialised and shuffled from (seed, *names[i])."""
    starts = []
    for model_names in names:
        seed_torch(seed, *model_names, "init")
        starts.append(build_model(architecture).state_dict())
    generators = [torch_generator(seed, *model_names, "batches") for model_names in names]
    recipe = Recipe(optimizer, lr=lr, epochs=epochs, batch_size=batch_size)
    if stacks_well(architecture):
        states = train_stacked(build_model(architecture), starts, [x for x, _ in datasets], [y for _, y in datasets],
                               recipe, generators)
    else:
        states = [train_stacked(build_model(architecture), [start], [x], [y], recipe, [generator])[0]
                  for start, (x, y), generator in zip(starts, datasets, generators)]
    return [load_state(build_model(architecture), state, "a shadow model").eval() for state in states]


# ---------------------------------------------------------------- attack MLPs, many at once

class AttackMLPs(nn.Module):
    """M independent MLPs k-hidden-2 (ReLU) evaluated in one batched pass; inputs are standardised
    with each model's own training mean and standard deviation."""

    def __init__(self, count: int, inputs: int, hidden: int, mean: torch.Tensor, std: torch.Tensor,
                 generator: torch.Generator):
        super().__init__()

        def uniform(*shape, fan_in):
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * bound)

        self.w1, self.b1 = uniform(count, inputs, hidden, fan_in=inputs), uniform(count, 1, hidden, fan_in=inputs)
        self.w2, self.b2 = uniform(count, hidden, 2, fan_in=hidden), uniform(count, 1, 2, fan_in=hidden)
        self.register_buffer("mean", mean.unsqueeze(1))
        self.register_buffer("std", std.unsqueeze(1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(M, n, k) or (n, k) shared by all models -> logits (M, n, 2)."""
        if inputs.dim() == 2:
            inputs = inputs.unsqueeze(0).expand(len(self.w1), -1, -1)
        hidden = torch.relu(((inputs - self.mean) / self.std) @ self.w1 + self.b1)
        return hidden @ self.w2 + self.b2

    @torch.no_grad()
    def member_probability(self, inputs: torch.Tensor) -> torch.Tensor:
        return self(inputs).softmax(2)[..., 1]


def fit_attack_mlps(inputs: torch.Tensor, is_member: torch.Tensor, weights: torch.Tensor, hidden: int,
                    optimizer: str, lr: float, epochs: int, batch_size: int,
                    generator: torch.Generator) -> tuple[AttackMLPs, torch.Tensor]:
    """Train M attack MLPs, model m on the examples with weights[m] > 0 of inputs[m] (M, n, k).

    Mini-batches are drawn per model; a model with fewer examples gets proportionally smaller
    batches, so every model makes the same number of steps (ceil(largest set / batch_size) per
    epoch) and none is moved by another's padding. Returns the models and, per model, the
    decision threshold with the best balanced accuracy on its own training examples.
    """
    count, size, _ = inputs.shape
    weights = weights.float()
    totals = weights.sum(1, keepdim=True)
    mean = (inputs * weights.unsqueeze(2)).sum(1) / totals.clamp_min(1)
    spread = (((inputs - mean.unsqueeze(1)) ** 2) * weights.unsqueeze(2)).sum(1) / totals.clamp_min(1)
    model = AttackMLPs(count, inputs.shape[2], hidden, mean, spread.sqrt().clamp_min(1e-6), generator)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    targets = is_member.long()
    present = weights > 0
    counts = present.sum(1, keepdim=True)                                  # (M, 1)
    batches = max(1, math.ceil(counts.max().item() / batch_size))
    # batch b of model m = its shuffled examples ceil(b n_m / B) .. ceil((b + 1) n_m / B) - 1
    bounds = (torch.arange(batches + 1) * counts + batches - 1) // batches  # (M, batches + 1)
    width = int((bounds[:, 1:] - bounds[:, :-1]).max())
    offsets = torch.arange(width)
    model.train()
    for _ in range(epochs):
        keys = torch.rand(count, size, generator=generator).masked_fill(~present, 2.0)
        order = keys.argsort(1)                                            # present examples first, shuffled
        for batch in range(batches):
            slots = bounds[:, batch:batch + 1] + offsets                   # (M, width)
            used = slots < bounds[:, batch + 1:batch + 2]
            rows = order.gather(1, slots.clamp_max(size - 1))
            chosen = weights.gather(1, rows) * used
            batch_inputs = inputs.gather(1, rows.unsqueeze(2).expand(-1, -1, inputs.shape[2]))
            losses = nn.functional.cross_entropy(model(batch_inputs).reshape(-1, 2),
                                                 targets.gather(1, rows).reshape(-1), reduction="none")
            loss = ((losses.view(count, width) * chosen).sum(1) / chosen.sum(1).clamp_min(1)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    probabilities = model.member_probability(inputs)
    thresholds = torch.full((count,), 0.5)
    for m in range(count):  # one ROC per attack model (at most shadows x classes), not per example
        mask = present[m]
        if is_member[m][mask].any() and (~is_member[m][mask]).any():
            thresholds[m] = choose_threshold(probabilities[m][mask].numpy(), is_member[m][mask].numpy())
    return model, thresholds


# ---------------------------------------------------------------- score files

def score_meta(run: Run, attack: str, target: Target, settings: dict, threshold: float, details: dict) -> dict:
    meta = {"attack": attack, "target": target.name, "dataset": run.dataset, "seed": run.seed, "quick": run.quick,
            "settings": settings, "threshold": float(threshold), "details": details}
    if defense_description(target) is not None:
        meta["defense"] = defense_description(target)
    return meta


def save_scores(run: Run, attack: str, target: Target, settings: dict, scores: np.ndarray, is_member: np.ndarray,
                rows: np.ndarray, threshold: float, details: dict | None = None) -> dict:
    """Write the score file and return the metrics (logged, not stored: the summary recomputes them)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(rows),) or not np.isfinite(scores).all():
        raise ValueError(f"{attack} on {target.name}: expected {len(rows)} finite scores, got {scores.shape}")
    meta = score_meta(run, attack, target, settings, threshold, details or {})
    save_arrays(run.score_path(attack, target.name), meta, scores=scores, is_member=np.asarray(is_member, dtype=bool),
                rows=np.asarray(rows, dtype=np.int64))
    metrics = membership_metrics(scores, is_member, threshold)
    log.info("%s attack on %s: AUC %.4f, balanced accuracy %.4f, TPR@1%%FPR %.4f", attack, target.name,
             metrics["auc"], metrics["balanced_acc"], metrics["tpr_at_1pct_fpr"])
    return metrics
