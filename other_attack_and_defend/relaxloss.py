"""RelaxLoss (Chen, Yu & Fritz, "RelaxLoss: Defending Membership Inference Attacks without Losing Utility",
ICLR 2022) inside every client's local update of FedAvg. Official code: DingfanChen/RelaxLoss,
source/nonimage/defense/relaxloss.py (read at fc8c68e; /work/notes/defenses.md §3).

As implemented, per mini-batch, with L the batch's mean cross-entropy and alpha = RELAXLOSS_ALPHA:
- even epochs: loss |L - alpha| (descent above alpha, gradient ASCENT on L below it);
- odd epochs: L itself while L > alpha; otherwise posterior flattening: with p_y the softmax probability of
  the label, clamped to at most RELAXLOSS_UPPER, the soft target t has p_y at the label and (1 - p_y) / (K - 1)
  at every other class, and the loss is the soft-label cross-entropy -mean_i sum_k t_ik log softmax(z_i)_k.
  As in the official code the soft targets are NOT detached: gradient also flows through t.
The comparison with alpha uses the batch's mean loss, as the official code does, per client (each client of
the stacked round has its own batch and its own decision: stacked_training's batch_loss hook).

Departures, and why:
- Epoch parity in FL: the official alternation is by epoch. Each round restarts the clients' local epochs, so
  with one local epoch per round (the quick preset; FEMNIST has 2) a per-round counter would always be even
  and flattening would never run. The parity here is that of a GLOBAL local-epoch counter,
  (round - 1) x LOCAL_EPOCHS + local epoch, so the alternation runs as in centralised training.
- Training recipe: the FL recipe of FL_model_for_<dataset>.py (SGD, its learning rate and momentum, 10 rounds),
  not the official 120 (non-image) or 300 (CIFAR) epochs with weight decay 1e-4 and step decay: RelaxLoss is
  compared at the training budget of every other model (on the CNNs, one local epoch per round:
  COMPETITOR_LOCAL_EPOCHS, defended_fedavg.py). The learning-rate decay the official code relies on
  to damp the oscillation around alpha is therefore absent (except where LR_DECAY < 1).
- The non-image flattening rule is used for every dataset, CNNs included; the official CIFAR version differs
  (correctly classified examples get gradient ascent on CE in the flattening branch). One rule for all keeps
  the comparison across datasets about alpha only.
- alpha and the clamp for datasets the authors did not evaluate (Adult, Location, MNIST, FEMNIST) are chosen
  next to the constants in baseline_defenses_<dataset>.py. With K = 2 (Adult) the flattened target is the
  model's own posterior whenever p_y <= upper, so flattening there lowers the entropy; the even epochs' ascent
  does the work.
Output: model/<dataset>/<run>/relaxloss/final.pt (relaxloss_a<alpha>/ for extra strengths).
"""
import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from FL_model_generation.training import FLSettings
from other_attack_and_defend import defended_fedavg
from toolkit.checkpoints import save_checkpoint
from toolkit.run import Run
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelaxLossSettings(Settings):
    """RelaxLoss, from other_attack_and_defend/baseline_defenses_<dataset>.py: RELAXLOSS_ALPHA (target loss
    level; the model "relaxloss"), RELAXLOSS_EXTRA_ALPHA (one more model per value, "relaxloss_a<alpha>"),
    RELAXLOSS_UPPER (clamp of the label's probability in the flattened target; 1: none)."""
    relaxloss_alpha: float
    relaxloss_extra_alpha: tuple[float, ...]
    relaxloss_upper: float

    QUICK: ClassVar[dict] = {"RELAXLOSS_EXTRA_ALPHA": lambda values: ()}

    def check(self) -> None:
        for alpha in (self.relaxloss_alpha, *self.relaxloss_extra_alpha):
            require(alpha > 0, "RELAXLOSS_ALPHA" if alpha == self.relaxloss_alpha else "RELAXLOSS_EXTRA_ALPHA", alpha,
                    "must be positive (a cross-entropy level)")
        require(self.relaxloss_alpha not in self.relaxloss_extra_alpha
                and len(set(self.relaxloss_extra_alpha)) == len(self.relaxloss_extra_alpha),
                "RELAXLOSS_EXTRA_ALPHA", self.relaxloss_extra_alpha, "repeats an alpha")
        require(0 < self.relaxloss_upper <= 1, "RELAXLOSS_UPPER", self.relaxloss_upper, "must lie in (0, 1]")

    def points(self) -> list["RelaxLossPoint"]:
        return [RelaxLossPoint("relaxloss" if alpha == self.relaxloss_alpha else f"relaxloss_a{alpha:g}", alpha,
                               self.relaxloss_upper)
                for alpha in (self.relaxloss_alpha, *self.relaxloss_extra_alpha)]


@dataclass(frozen=True)
class RelaxLossPoint:
    name: str
    alpha: float
    upper: float

    def constants(self) -> dict:
        return {"RELAXLOSS_ALPHA": self.alpha, "RELAXLOSS_UPPER": self.upper}


def flattened_targets(outputs: torch.Tensor, labels: torch.Tensor, upper: float) -> torch.Tensor:
    """(..., K) soft targets: the label's probability (clamped to <= upper) at the label, the rest shared equally.
    Not detached, as in the official code."""
    num_classes = outputs.shape[-1]
    confidence = outputs.softmax(-1).gather(-1, labels.long().unsqueeze(-1)).clamp(min=0.0, max=upper)
    onehot = F.one_hot(labels.long(), num_classes).to(outputs.dtype)
    return onehot * confidence + (1 - onehot) * (1 - confidence) / (num_classes - 1)


def relaxloss_batch_loss(outputs: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, epoch: int,
                         alpha: float, upper: float) -> torch.Tensor:
    """The RelaxLoss loss of each model's batch: outputs (M, B, K), labels and weight (M, B); `epoch` is the global
    local-epoch counter whose parity picks the rule. Returns (M,)."""
    counts = weight.sum(1).clamp_min(1)
    per_example = F.cross_entropy(outputs.flatten(0, 1), labels.flatten(0, 1).long(), reduction="none").view_as(weight)
    mean_loss = (per_example * weight).sum(1) / counts
    if epoch % 2 == 0:
        return (mean_loss - alpha).abs()
    soft = -(flattened_targets(outputs, labels, upper) * outputs.log_softmax(-1)).sum(-1)
    flattened = (soft * weight).sum(1) / counts
    return torch.where(mean_loss > alpha, mean_loss, flattened)


def model_path(run: Run, name: str = "relaxloss"):
    return defended_fedavg.model_path(run, name)


def local_round(fl: FLSettings, point: RelaxLossPoint, round_index: int, start: dict, data, generators) -> list[dict]:
    """Every client's RelaxLoss update of one round; local epoch e of round r has global epoch (r - 1) x E + e."""
    offset = (round_index - 1) * fl.local_epochs

    def batch_loss(outputs, labels, weight, epoch):
        return relaxloss_batch_loss(outputs, labels, weight, offset + epoch, point.alpha, point.upper)

    return defended_fedavg.stacked_local_round(fl, start, data, generators, batch_loss=batch_loss)


def train_relaxloss(run: Run, fl: FLSettings, point: RelaxLossPoint) -> dict:
    """FedAvg with RelaxLoss in every client; writes the model; returns its meta."""
    _, _, data, test = defended_fedavg.client_data(run)
    last_round = defended_fedavg.LastRound(fl, run.seed)
    state = defended_fedavg.federated_training(
        data, fl, run.seed, lambda r, start, clients, generators: local_round(fl, point, r, start, clients, generators),
        test_data=test, description=f"RelaxLoss {point.name} {run.dataset}", on_round=last_round)
    meta = defended_fedavg.checkpoint_meta(run, fl, point.name, {
        "kind": "relaxloss", **point.constants(),
        "epoch_parity": "global local-epoch counter (round - 1) x LOCAL_EPOCHS + local epoch"})
    save_checkpoint(model_path(run, point.name), state, meta)
    last_round.save(run, point.name, meta)
    return meta
