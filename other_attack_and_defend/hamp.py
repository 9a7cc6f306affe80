"""HAMP (Chen & Pattabiraman, "Overconfidence is a Dangerous Thing: Mitigating Membership Inference Attacks
by Enforcing Less Confident Prediction", NDSS 2024), inside every client of FedAvg, plus its output
modification on the released model. Official code: DependableSystemsLab/MIA_defense_HAMP (read at a064a1f;
/work/notes/defenses.md §1).

As implemented:
1. High-entropy soft labels. With H_max = ln K and threshold tau = HAMP_GAMMA x H_max, the label's value
   `top1` is the official `get_top1` linear search: from a one-hot vector, move 0.01 from the top entry
   to the K - 1 others (0.01 / (K - 1) each) until the entropy first reaches tau. Every training example's
   target is `top1` at its label and (1 - top1) / (K - 1) elsewhere (`soft_labels`). The true label stays on
   top: the search stops at the latest at the uniform vector, whose entropy is H_max > tau.
2. Loss: KL(soft label || model output) - alpha x entropy(model output), per example, averaged over the batch,
   inside each client's local update (the FL recipe's SGD, rounds, epochs, batch size, initial weights).
3. Output modification at release (`HampTarget`): for every query, the model's logits on one random input
   (uniform in the data's range, or random bits for binary features) are sorted and put in the rank order of
   the query's own logits, then softmaxed: the released ranking, hence the label, is the query's, the released
   values those of a random, non-member-like input.

Departures, and why:
- Loss scale: the official code uses `F.kl_div`'s default reduction 'mean', which divides the KL by K as well
  as by the batch. Here the KL is per example (PyTorch's 'batchmean') and the entropy weight is alpha x K, with
  alpha = HAMP_ALPHA the official value: the official loss times K, the same minimiser and the same balance of
  the two terms. The factor K lets the FL recipe's learning rate train it; the official code makes up for the
  1/K with large learning rates (SGD 0.5, momentum 0.99) in centralised training.
- Training recipe: the FL recipe of FL_model_for_<dataset>.py (10 rounds of local SGD), not the official
  100-200 centralised epochs with lr 0.5, momentum 0.99, weight decay 1e-5 and a step schedule, and no
  checkpoint selection on validation accuracy: HAMP is compared at the same training budget as every model
  (on the CNNs, one local epoch per round: COMPETITOR_LOCAL_EPOCHS, defended_fedavg.py).
- Random inputs: the official code draws random bits (Purchase, Texas, Location) or uniform integer pixels
  (CIFAR). Here HAMP_RANDOM_INPUT = "bits" draws bits, "uniform" draws every feature uniformly between the
  smallest and the largest value in the data (recorded in the checkpoint): Adult's min-max-scaled columns
  and image pixels. A fresh random input per query, drawn from the generator the caller gives.
- The attacker's own models (shadow and reference models) are released through the same modification, with
  the HAMP model's outputs on random inputs: what an attacker querying the deployed model with random inputs
  sees. A query whose random input's two largest scores tie (the argmax could then move) gets a new random
  input, up to 10 times, then its plain probabilities (never seen in the tests).
- γ and α for datasets the authors did not evaluate (Adult, MNIST, FEMNIST) are chosen next to the constants in
  baseline_defenses_<dataset>.py.

HAMP's white-box view is its own weights (it is a trained model; the output modification only changes
released scores). Output: model/<dataset>/<run>/hamp/final.pt (hamp_g<gamma>/ for extra strengths).
"""
import functools
import logging
import math
import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from FL_model_generation.models import build_model, load_state, predict_logits
from FL_model_generation.training import FLSettings
from other_attack_and_defend import defended_fedavg
from other_attack_and_defend.targets import Target
from toolkit.checkpoints import load_checkpoint, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import torch_generator
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)
RANDOM_INPUTS = ("uniform", "bits")
SEARCH_STEP = 0.01     # the official get_top1 increment
REDRAWS = 10


@dataclass(frozen=True)
class HampSettings(Settings):
    """HAMP, from other_attack_and_defend/baseline_defenses_<dataset>.py: HAMP_GAMMA (entropy threshold as a share
    of ln K; the model "hamp"), HAMP_EXTRA_GAMMA (one more model per value, "hamp_g<gamma>", for a curve),
    HAMP_ALPHA (entropy weight, the official value), HAMP_RANDOM_INPUT ("uniform" or "bits")."""
    hamp_gamma: float
    hamp_extra_gamma: tuple[float, ...]
    hamp_alpha: float
    hamp_random_input: str

    QUICK: ClassVar[dict] = {"HAMP_EXTRA_GAMMA": lambda values: ()}

    def check(self) -> None:
        for gamma in (self.hamp_gamma, *self.hamp_extra_gamma):
            require(0 < gamma < 1, "HAMP_GAMMA" if gamma == self.hamp_gamma else "HAMP_EXTRA_GAMMA", gamma,
                    "must lie in (0, 1): the entropy threshold is gamma x ln K, and ln K is only reached by the "
                    "uniform label")
        require(self.hamp_gamma not in self.hamp_extra_gamma and len(set(self.hamp_extra_gamma)) == len(
            self.hamp_extra_gamma), "HAMP_EXTRA_GAMMA", self.hamp_extra_gamma, "repeats a gamma")
        require(self.hamp_alpha >= 0, "HAMP_ALPHA", self.hamp_alpha, "must be at least 0")
        require(self.hamp_random_input in RANDOM_INPUTS, "HAMP_RANDOM_INPUT", self.hamp_random_input,
                f"must be one of {RANDOM_INPUTS}")

    def points(self) -> list["HampPoint"]:
        """The default model, then one per extra gamma."""
        return [HampPoint("hamp" if gamma == self.hamp_gamma else f"hamp_g{gamma:g}", gamma, self.hamp_alpha,
                          self.hamp_random_input)
                for gamma in (self.hamp_gamma, *self.hamp_extra_gamma)]


@dataclass(frozen=True)
class HampPoint:
    """One HAMP model: its name in summary.json and its constants."""
    name: str
    gamma: float
    alpha: float
    random_input: str

    def constants(self) -> dict:
        return {"HAMP_GAMMA": self.gamma, "HAMP_ALPHA": self.alpha, "HAMP_RANDOM_INPUT": self.random_input}


# ---------------------------------------------------------------- soft labels and the loss

def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row; 0 log 0 = 0."""
    return -torch.special.xlogy(probabilities, probabilities).sum(-1)


@functools.lru_cache(maxsize=64)
def top1_value(num_classes: int, gamma: float) -> float:
    """The official get_top1: the first top value, in steps of 0.01 down from 1, whose label (top value at the
    label, the rest shared equally) has entropy >= gamma x ln K."""
    threshold = gamma * math.log(num_classes)
    for step in range(1, int(round(1 / SEARCH_STEP)) + 1):
        top = round(1.0 - step * SEARCH_STEP, 10)
        label = torch.full((num_classes,), (1.0 - top) / (num_classes - 1), dtype=torch.float64)
        label[0] = top
        if float(entropy(label)) >= threshold:
            return top
    raise P2Error(f"HAMP: no label of {num_classes} classes reaches entropy {gamma} x ln K")  # gamma < 1 prevents it


def soft_labels(labels: torch.Tensor, num_classes: int, top1: float) -> torch.Tensor:
    """(N, K): top1 at each example's label, (1 - top1) / (K - 1) everywhere else."""
    rest = (1.0 - top1) / (num_classes - 1)
    targets = torch.full((len(labels), num_classes), rest)
    return targets.scatter(1, labels.long().view(-1, 1), top1)


def hamp_loss(outputs: torch.Tensor, labels: torch.Tensor, top1: float, alpha: float) -> torch.Tensor:
    """Per example: KL(soft label || softmax(outputs)) - alpha x K x entropy(softmax(outputs)) (module docstring:
    the official 'mean'-reduced loss times K)."""
    num_classes = outputs.shape[-1]
    targets = soft_labels(labels, num_classes, top1).to(outputs.dtype)
    log_probabilities = outputs.log_softmax(-1)
    kl = F.kl_div(log_probabilities, targets, reduction="none").sum(-1)
    return kl - alpha * num_classes * entropy(log_probabilities.exp())


# ---------------------------------------------------------------- training

def model_path(run: Run, name: str = "hamp"):
    return defended_fedavg.model_path(run, name)


def random_input_spec(features: torch.Tensor, kind: str) -> dict:
    """How the release draws random inputs for this data: kind, the range of its values and one input's shape."""
    return {"kind": kind, "low": float(features.min()), "high": float(features.max()),
            "shape": list(features.shape[1:])}


def train_hamp(run: Run, fl: FLSettings, point: HampPoint) -> dict:
    """FedAvg with HAMP's loss in every client; writes the model; returns its meta."""
    dataset, _, data, test = defended_fedavg.client_data(run)
    top1 = top1_value(dataset.num_classes, point.gamma)
    loss = functools.partial(hamp_loss, top1=top1, alpha=point.alpha)
    log.info("HAMP %s: gamma %g -> soft label %.2f at the label, %.4f elsewhere (entropy %.4f >= %.4f)", point.name,
             point.gamma, top1, (1 - top1) / (dataset.num_classes - 1),
             float(entropy(soft_labels(torch.zeros(1, dtype=torch.long), dataset.num_classes, top1))),
             point.gamma * math.log(dataset.num_classes))
    last_round = defended_fedavg.LastRound(fl, run.seed)
    state = defended_fedavg.federated_training(
        data, fl, run.seed, lambda r, start, clients, generators: defended_fedavg.stacked_local_round(
            fl, start, clients, generators, per_example_loss=loss),
        test_data=test, description=f"HAMP {point.name} {run.dataset}", on_round=last_round)
    meta = defended_fedavg.checkpoint_meta(run, fl, point.name, {
        "kind": "hamp", **point.constants(), "top1": top1, "entropy_threshold": point.gamma * math.log(
            dataset.num_classes), "loss": "KL(soft label || p) - alpha K H(p) per example (batchmean)"})
    meta["random_input"] = random_input_spec(torch.from_numpy(dataset.features), point.random_input)
    save_checkpoint(model_path(run, point.name), state, meta)
    last_round.save(run, point.name, meta)
    return meta


# ---------------------------------------------------------------- the release

def draw_random_inputs(spec: dict, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random inputs of the spec's shape: random bits, or uniform in [low, high]."""
    shape = (count, *spec["shape"])
    if spec["kind"] == "bits":
        return torch.randint(0, 2, shape, generator=generator).float()
    return spec["low"] + (spec["high"] - spec["low"]) * torch.rand(shape, generator=generator)


def modify_output(logits: torch.Tensor, random_logits: torch.Tensor) -> torch.Tensor:
    """HAMP's alter_output: row i's j-th largest logit is replaced by the j-th largest of random_logits[i].
    Ties in a row keep their order by position (the first of equal values gets the larger random value), so the
    position argmax reports stays the largest."""
    order = logits.argsort(dim=1, descending=True, stable=True)
    return torch.empty_like(random_logits).scatter_(1, order, random_logits.sort(dim=1, descending=True).values)


_MODELS: dict = {}


def _released_model(path) -> tuple[torch.nn.Module, dict]:
    """The HAMP model and its random-input spec, loaded once per file version."""
    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _MODELS:
        state, meta = load_checkpoint(path)
        if "random_input" not in meta:
            raise P2Error(f"{path} records no random-input range: it is not a HAMP model; rerun its stage")
        _MODELS.clear()
        _MODELS[key] = (load_state(build_model(meta["architecture"]), state, str(path)).eval(), meta["random_input"])
    return _MODELS[key]


@dataclass(frozen=True)
class HampTarget(Target):
    """The HAMP-trained model, released through HAMP's output modification; its white-box view is its weights."""
    seed: int = 0

    def release(self, logits: torch.Tensor, generator: torch.Generator | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        model, spec = _released_model(self.checkpoint)
        generator = generator or torch_generator(self.seed, "hamp-release", self.name)
        return release_with(logits, lambda count: predict_logits(model, draw_random_inputs(spec, count, generator)))

    def describe(self) -> dict:
        return {"kind": "hamp", "output_modification": "scores of a random input in the query's rank order"}


def release_with(logits: torch.Tensor, random_logits_for) -> torch.Tensor:
    """Softmax of the modified logits, every label kept: rows whose argmax moved (ties among the random input's
    top scores) get new random inputs, up to REDRAWS times, then their plain probabilities."""
    released = modify_output(logits, random_logits_for(len(logits))).softmax(1)
    labels = logits.argmax(1)
    moved = (released.argmax(1) != labels).nonzero().flatten()
    for _ in range(REDRAWS):
        if len(moved) == 0:
            return released
        released[moved] = modify_output(logits[moved], random_logits_for(len(moved))).softmax(1)
        moved = moved[released[moved].argmax(1) != labels[moved]]
    if len(moved):
        released[moved] = logits[moved].softmax(1)
    return released
