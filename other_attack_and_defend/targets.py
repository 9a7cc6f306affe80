"""What an attacker sees of a model under attack: its checkpoint and how its outputs are released.

Every attack takes a Target, so the undefended FL model, the P2 model and every defense are attacked
by the same code. `release` applies to the target's logits and, because the attacker knows the
(public) defense mechanism, to the logits of the attacker's own shadow/reference models. Defenses
that only change what is released subclass Target (release_defenses.py); defenses that train a
model are plain Targets on their own checkpoints (dp_sgd.py).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from FL_model_generation.models import predict_logits
from toolkit.errors import P2Error
from toolkit.run import Run


@dataclass(frozen=True)
class Target:
    name: str                    # key in summary.json "models": "fl", "p2", ...
    checkpoint: Path
    whitebox: bool = True        # False where the defense has no white-box counterpart (e.g. top-k release)

    def release(self, logits: torch.Tensor, generator: torch.Generator | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        """The score vectors (N, C) the attacker receives for these logits (of the rows `features`,
        where the caller has them): plain softmax here."""
        return logits.softmax(1)

    def posteriors(self, model: torch.nn.Module, features: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        return self.release(predict_logits(model, features), generator, features=features)

    def perturb_gradients(self, gradients: dict, generator: torch.Generator | None = None,
                          features: torch.Tensor | None = None) -> dict:
        """Per-example gradients as the white-box attacker sees them: exact here.

        `gradients` maps a parameter name to an (N, ...) tensor, row i belonging to features[i]."""
        return gradients

    @property
    def exact_gradients(self) -> bool:
        """Whether `perturb_gradients` releases the gradients unchanged, so the attack may compute them in
        factored form: true unless a subclass overrides perturb_gradients."""
        return type(self).perturb_gradients is Target.perturb_gradients

    def perturb_losses(self, losses: torch.Tensor, model: torch.nn.Module, features: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
        """Per-example losses (N,) as the white-box attacker computes them from what is released: exact here."""
        return losses

    def describe(self) -> dict | None:
        """The defense's parameters (recorded with attack results); None for an unmodified release."""
        return None

    @property
    def inputs(self) -> tuple[Path, ...]:
        """Files the release reads besides the checkpoint (MemGuard's defender classifier): every attack stage on
        this target lists them as inputs, so it reruns when they change."""
        return ()


def base_targets(run: Run) -> list[Target]:
    """The undefended FL model and the P2-protected model."""
    return [Target("fl", run.fl_final_path), Target("p2", run.p2_global_path)]


def target_utility(run: Run, target: Target) -> dict:
    """Train and test accuracy of the labels the target RELEASES (argmax of its released scores), plus
    "eps", "delta" and "dp_level" ("example" for DP-SGD, "client" for DP-FedAvg) when the checkpoint records a
    privacy budget actually spent."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset
    from FL_model_generation.fl_stage import load_model

    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    model, meta = load_model(target.checkpoint, run)

    def released_accuracy(rows: np.ndarray) -> float:
        if len(rows) == 0:
            return float("nan")
        features, labels = tensors(dataset, rows)
        return (target.posteriors(model, features).argmax(1) == labels).float().mean().item()

    utility = {"train_acc": released_accuracy(partition.members), "test_acc": released_accuracy(partition.test)}
    utility.update({key: float(meta[key]) for key in ("eps", "delta") if key in meta})
    if "eps" in meta:
        utility["dp_level"] = meta.get("dp_level", "example")  # DP-FedAvg: "client"; DP-SGD: one example
    return utility
