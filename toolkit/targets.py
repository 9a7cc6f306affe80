"""What an attacker sees of a model under attack: its checkpoint and how its outputs are released.

Every attack takes a Target, so the undefended FL model, the P2 model and every baseline defense
are attacked by the same code. `release` applies to the target's logits and, because the attacker
knows the (public) defense mechanism, to the logits of the attacker's own shadow/reference models.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from FL_model_generation.models import predict_logits
from toolkit.run import Run


@dataclass(frozen=True)
class Target:
    name: str                    # key in summary.json "models": "fl", "p2", ...
    checkpoint: Path
    whitebox: bool = True        # False where the defense has no white-box counterpart (e.g. top-k release)

    def release(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The score vectors (N, C) the attacker receives for these logits: plain softmax here."""
        return logits.softmax(1)

    def posteriors(self, model: torch.nn.Module, features: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        return self.release(predict_logits(model, features), generator)

    def perturb_gradients(self, gradients: dict, generator: torch.Generator | None = None) -> dict:
        """Per-example gradients as the white-box attacker sees them: exact here."""
        return gradients


def base_targets(run: Run) -> list[Target]:
    """The undefended FL model and the P2-protected model."""
    return [Target("fl", run.fl_final_path), Target("p2", run.p2_global_path)]
