"""MemGuard (Jia, Salem, Backes, Zhang & Gong, "MemGuard: Defending against Black-Box Membership Inference
Attacks via Adversarial Examples", CCS 2019) on the released FL model. Official code: jinyuan-jia/MemGuard,
train_defense_model_defensemodel.py, defense_framework.py (phase I), evaluate_nn_attack.py (phase II)
(read at 34e1859; /work/notes/defenses.md §2).

MemGuard trains nothing in the model: it perturbs every released confidence vector.
1. The defender's attack classifier g (`DefenseClassifier`): the sorted (ascending) probability vector ->
   member probability, Dense 256-128-64 (ReLU) then 1 (sigmoid), Glorot-uniform weights and zero biases,
   binary cross-entropy, SGD (lr MEMGUARD_CLASSIFIER_LR, no momentum), MEMGUARD_CLASSIFIER_EPOCHS epochs of
   batch MEMGUARD_CLASSIFIER_BATCH_SIZE (official: 0.001, 400, 64). Its data are the FL model's score vectors:
   members = as many of each client's training rows as it has defense reference rows (seeded draw), label 1;
   non-members = every client's `defense_reference_client<NNN>` rows of partition.npz, label 0 (disjoint from
   members, test, evaluation, attacker and shadow rows: data_partitioning.py). The clients would send these
   score vectors (or the server would hold such rows): the defender's own data, never the evaluation rows.
   Saved as model/<dataset>/<run>/memguard/defense_classifier.pt.
2. Phase I, per query (`phase_one`): with z the query's logits sorted ascending (the label is the last entry)
   and s = softmax(z), normalised-gradient descent (step 0.1) on
   L(z') = c1 |h(z')| + c2 ReLU(max_{j != label} z'_j - z'_label) + c3 ||softmax(z') - s||_1,
   with h the pre-sigmoid output of g, until the label is kept AND g's output has crossed 0.5 (at most
   MEMGUARD_MAX_ITERATIONS = 300 iterations, the official value; the quick preset takes 20). c1 = 1,
   c2 = 10; c3 starts at 0.1 and is multiplied by 10 after every success (restarting from z) up to 1e5: the
   last success is kept (the smallest noise found). A query whose first attempt fails gets no noise, and one
   with |g(s) - 0.5| <= 1e-5 is left as it is.
3. Phase II (`phase_two`): with d = ||s' - s||_1, release s' with probability p = min(MEMGUARD_BUDGET / d, 1)
   when g(s') is closer to 0.5 than g(s), else s: the expected L1 distortion is at most the budget.
The released vector always keeps the query's label (phase I keeps it by construction; any vector whose argmax
moved all the same is replaced by s).

Departures, and why:
- The official phase II computes an attack's EXPECTED accuracy over the coin; here the coin is tossed (from the
  generator the caller passes) and the realised vector released: every attack of the suite sees one release.
- The attacker's own shadow and reference models are released through the same MemGuard, with the defender's
  classifier g (the toolkit's convention: the mechanism is public, the attacker simulates it; here it even has
  the defender's g, the strongest assumption).
- Phase I results are cached in memory per (classifier file, logits) within one process: the reference attacks
  release the same reference-model logits six times, and only phase II's coin differs between them.
- In FL the defender is the server releasing the global model; the member/non-member score vectors come from
  the clients (module docstring, 1.).
MemGuard has no white-box view (whitebox=False): it only changes released scores, and anyone with the weights
bypasses it. Models: "memguard" (MEMGUARD_BUDGET) and "memguard_b<budget>" (MEMGUARD_EXTRA_BUDGET).
"""
import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from FL_model_generation.models import predict_logits
from other_attack_and_defend.targets import Target
from toolkit.checkpoints import load_checkpoint, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import numpy_rng, seed_torch, torch_generator
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)

C1, C2, C3_START, C3_FACTOR, C3_LAST = 1.0, 10.0, 0.1, 10.0, 1e5
STEP, AT_HALF = 0.1, 1e-5
HIDDEN = (256, 128, 64)


@dataclass(frozen=True)
class MemGuardSettings(Settings):
    """MemGuard, from other_attack_and_defend/baseline_defenses_<dataset>.py: MEMGUARD_BUDGET (expected L1
    distortion of a released vector, in [0, 2]; the model "memguard"), MEMGUARD_EXTRA_BUDGET (one more release
    per value, "memguard_b<budget>"), MEMGUARD_MAX_ITERATIONS (phase I's iterations per c3), and the defender
    classifier's SGD recipe."""
    memguard_budget: float
    memguard_extra_budget: tuple[float, ...]
    memguard_max_iterations: int
    memguard_classifier_epochs: int
    memguard_classifier_lr: float
    memguard_classifier_batch_size: int

    QUICK: ClassVar[dict] = {"MEMGUARD_EXTRA_BUDGET": lambda values: (), "MEMGUARD_CLASSIFIER_EPOCHS": 20,
                             "MEMGUARD_MAX_ITERATIONS": 20}

    def check(self) -> None:
        for budget in (self.memguard_budget, *self.memguard_extra_budget):
            require(0 < budget <= 2, "MEMGUARD_BUDGET" if budget == self.memguard_budget else "MEMGUARD_EXTRA_BUDGET",
                    budget, "must lie in (0, 2]: an L1 distance between probability vectors")
        require(self.memguard_budget not in self.memguard_extra_budget
                and len(set(self.memguard_extra_budget)) == len(self.memguard_extra_budget),
                "MEMGUARD_EXTRA_BUDGET", self.memguard_extra_budget, "repeats a budget")
        for name in ("memguard_classifier_epochs", "memguard_classifier_batch_size", "memguard_max_iterations"):
            require(getattr(self, name) >= 1, name.upper(), getattr(self, name), "must be at least 1")
        require(self.memguard_classifier_lr > 0, "MEMGUARD_CLASSIFIER_LR", self.memguard_classifier_lr,
                "must be positive")

    def classifier_constants(self) -> dict:
        return {name: value for name, value in self.constants().items() if name.startswith("MEMGUARD_CLASSIFIER")}

    def budgets(self) -> list[tuple[str, float]]:
        """(model name, budget): the default release, then the extra ones."""
        return [("memguard" if budget == self.memguard_budget else f"memguard_b{budget:g}", budget)
                for budget in (self.memguard_budget, *self.memguard_extra_budget)]


# ---------------------------------------------------------------- the defender's classifier

class DefenseClassifier(nn.Module):
    """g: sorted probability vector (ascending) -> member probability; `logit` is its pre-sigmoid output h."""

    def __init__(self, num_classes: int):
        super().__init__()
        sizes = (num_classes, *HIDDEN)
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(HIDDEN[-1], 1))
        for module in self.body:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def logit(self, sorted_probabilities: torch.Tensor) -> torch.Tensor:
        return self.body(sorted_probabilities).view(-1)

    def forward(self, sorted_probabilities: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(sorted_probabilities))


def classifier_path(run: Run) -> Path:
    return run.model_dir / "memguard" / "defense_classifier.pt"


def defender_rows(partition, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(member rows, non-member rows) of the defender's classifier: per client, as many of its training rows as it
    has reference rows (a seeded draw), and all of its reference rows."""
    members = [numpy_rng(seed, "memguard", "members", client).choice(rows, min(len(rows), len(reference)),
                                                                      replace=False)
               for client, (rows, reference) in enumerate(zip(partition.clients, partition.defense_reference))]
    return np.concatenate(members), partition.all_defense_reference


def train_classifier(inputs: torch.Tensor, is_member: torch.Tensor, epochs: int, lr: float, batch_size: int,
                     seed: int) -> DefenseClassifier:
    """g on sorted probability vectors, as the official code trains it (BCE, plain SGD, shuffled batches)."""
    seed_torch(seed, "memguard", "classifier", "init")
    model = DefenseClassifier(inputs.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch_generator(seed, "memguard", "classifier", "batches")
    targets = is_member.float()
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs), generator=generator).split(batch_size):
            loss = F.binary_cross_entropy_with_logits(model.logit(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def write_classifier(run: Run, settings: MemGuardSettings) -> dict:
    """Train the defender's classifier on the FL model's score vectors of its own rows and save it."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset
    from FL_model_generation.fl_stage import load_model

    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    model, _ = load_model(run.fl_final_path, run)
    members, nonmembers = defender_rows(partition, run.seed)
    features, _ = tensors(dataset, np.concatenate([members, nonmembers]))
    inputs = predict_logits(model, features).softmax(1).sort(1).values
    is_member = torch.arange(len(inputs)) < len(members)
    classifier = train_classifier(inputs, is_member, settings.memguard_classifier_epochs,
                                  settings.memguard_classifier_lr, settings.memguard_classifier_batch_size, run.seed)
    with torch.no_grad():
        predicted = classifier(inputs) > 0.5
    accuracy = float(((predicted == is_member).float()[is_member].mean() + (predicted == is_member).float()[
        ~is_member].mean()) / 2)
    meta = {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "role": "memguard defense classifier",
            "num_classes": dataset.num_classes, "hidden": list(HIDDEN), "settings": settings.classifier_constants(),
            "members": int(len(members)), "nonmembers": int(len(nonmembers)),
            "training_balanced_accuracy": accuracy}
    save_checkpoint(classifier_path(run), classifier.state_dict(), meta)
    log.info("MemGuard defender classifier: %d member and %d non-member score vectors, balanced accuracy %.3f on them",
             len(members), len(nonmembers), accuracy)
    return meta


# ---------------------------------------------------------------- phase I and phase II

def phase_one(classifier: DefenseClassifier, logits: torch.Tensor, max_iterations: int = 300) -> torch.Tensor:
    """The noisy probability vectors s' of phase I (module docstring, 2.), in the queries' own class order; rows
    that get no noise come back as softmax(logits). Vectorised over the queries: each step moves only the rows
    still searching."""
    logits = logits.detach().float()
    order = logits.argsort(1)
    z = logits.gather(1, order)                                  # ascending: the label is the last entry
    s = z.softmax(1)
    with torch.no_grad():
        initial = classifier.logit(s)
    result = z.clone()
    alive = (torch.sigmoid(initial) - 0.5).abs() > AT_HALF       # rows still looking for smaller noise
    c3 = C3_START
    first = True
    while alive.any() and c3 <= C3_LAST:
        rows = alive.nonzero().flatten()
        found, success = _descend(classifier, z[rows], s[rows], initial[rows], c3, max_iterations)
        result[rows[success]] = found[success]
        alive[rows[~success]] = False
        if first:
            log.debug("MemGuard phase I: %d of %d queries found noise", int(success.sum()), len(rows))
            first = False
        c3 *= C3_FACTOR
    released = result.softmax(1)
    unsorted = torch.empty_like(released).scatter_(1, order, released)
    kept = unsorted.argmax(1) == logits.argmax(1)
    return torch.where(kept.unsqueeze(1), unsorted, logits.softmax(1))


def _descend(classifier: DefenseClassifier, z: torch.Tensor, s: torch.Tensor, initial: torch.Tensor,
             c3: float, max_iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One c3 level of phase I for sorted logits z (n, K): (z' reached, success). As the official loop, at most
    max_iterations - 1 steps."""
    current = z.clone()
    label = z.shape[1] - 1
    success = torch.zeros(len(z), dtype=torch.bool)
    active = torch.arange(len(z))
    for _ in range(1, max_iterations):
        if len(active) == 0:
            break
        point = current[active].clone().requires_grad_(True)
        h = classifier.logit(point.softmax(1))
        correct = point[:, label]
        wrong = point[:, :label].max(1).values
        loss = (C1 * h.abs() + C2 * F.relu(wrong - correct)
                + c3 * (point.softmax(1) - s[active]).abs().sum(1))
        gradient, = torch.autograd.grad(loss.sum(), point)
        with torch.no_grad():
            norms = gradient.norm(dim=1, keepdim=True)
            step = torch.where(norms > 0, gradient / norms.clamp_min(1e-30), torch.zeros_like(gradient))
            moved = point - STEP * step
            current[active] = moved
            crossed = (torch.sigmoid(classifier.logit(moved.softmax(1))) - 0.5) * (torch.sigmoid(initial[active]) - 0.5) <= 0
            kept = moved.argmax(1) == label
            finished = crossed & kept
        success[active[finished]] = True
        active = active[~finished]
    return current, success


def release_probability(original: torch.Tensor, noisy: torch.Tensor, classifier: DefenseClassifier,
                        budget: float) -> torch.Tensor:
    """Per row, phase II's probability of releasing noisy[i]: min(budget / ||noisy[i] - original[i]||_1, 1) where
    the noise moved g toward 0.5, else 0. The expected L1 distortion, p x ||noisy - original||_1, is <= budget."""
    with torch.no_grad():
        before = (classifier(original.sort(1).values) - 0.5).abs()
        after = (classifier(noisy.sort(1).values) - 0.5).abs()
    distortion = (noisy - original).abs().sum(1)
    return torch.where((before > after) & (distortion > 0), (budget / distortion.clamp_min(1e-12)).clamp(max=1.0),
                       torch.zeros_like(distortion))


def phase_two(original: torch.Tensor, noisy: torch.Tensor, classifier: DefenseClassifier, budget: float,
              generator: torch.Generator) -> torch.Tensor:
    """Release noisy[i] with phase II's probability (`release_probability`), else original[i]."""
    coin = torch.rand(len(original), generator=generator) < release_probability(original, noisy, classifier, budget)
    return torch.where(coin.unsqueeze(1), noisy, original)


# ---------------------------------------------------------------- the release

_CLASSIFIERS: dict = {}
_PHASE_ONE: OrderedDict = OrderedDict()
CACHE_ENTRIES = 64


def _classifier(path) -> tuple[DefenseClassifier, tuple]:
    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CLASSIFIERS:
        state, meta = load_checkpoint(path)
        if "num_classes" not in meta:
            raise P2Error(f"{path} is not a MemGuard defender classifier; rerun its stage")
        classifier = DefenseClassifier(int(meta["num_classes"]))
        classifier.load_state_dict(state)
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = classifier.eval()
    return _CLASSIFIERS[key], key


def cached_phase_one(path, logits: torch.Tensor, max_iterations: int) -> tuple[torch.Tensor, DefenseClassifier]:
    """phase_one of these logits with the classifier in `path`, computed once per process."""
    classifier, key = _classifier(path)
    values = logits.detach().float().contiguous()
    digest = hashlib.sha256(values.numpy().tobytes()).hexdigest() + str(tuple(values.shape))
    entry = (key, digest, max_iterations)
    if entry not in _PHASE_ONE:
        for parameter in classifier.parameters():
            parameter.requires_grad_(False)
        _PHASE_ONE[entry] = phase_one(classifier, values, max_iterations)
        if len(_PHASE_ONE) > CACHE_ENTRIES:
            _PHASE_ONE.popitem(last=False)
    else:
        _PHASE_ONE.move_to_end(entry)
    return _PHASE_ONE[entry], classifier


@dataclass(frozen=True)
class MemGuardTarget(Target):
    """The FL model released through MemGuard with the defender's classifier (`classifier`); no white-box view."""
    classifier: Path = Path()
    budget: float = 1.0
    max_iterations: int = 300
    seed: int = 0
    whitebox: bool = False

    def __post_init__(self):
        if not 0 < self.budget <= 2:
            raise P2Error(f"MemGuard budget {self.budget} must lie in (0, 2] (MEMGUARD_BUDGET)")

    @property
    def inputs(self) -> tuple[Path, ...]:
        return (self.classifier,)

    def release(self, logits: torch.Tensor, generator: torch.Generator | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        noisy, classifier = cached_phase_one(self.classifier, logits, self.max_iterations)
        generator = generator or torch_generator(self.seed, "memguard-release", self.name)
        return phase_two(logits.detach().float().softmax(1), noisy, classifier, self.budget, generator)

    def describe(self) -> dict:
        return {"kind": "memguard", "budget": self.budget, "c1": C1, "c2": C2, "c3": [C3_START, C3_LAST],
                "step": STEP, "max_iterations": self.max_iterations}
