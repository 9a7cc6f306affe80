"""The baseline defenses P2 is compared with, and the targets they give the attacks.

- output noise (the original's "DP-scheme", NOT differential privacy): Gaussian noise of
  sigma = 1 / OUTPUT_NOISE_EPS on the FL model's released logits and per-example gradients;
- top-k release of the FL model's probabilities (k in TOP_K; no white-box view);
- DP-SGD with Opacus inside every client (one FL model per target eps in DP_TARGET_EPS).
Constants live in other_attack_and_defend/baseline_defenses_<dataset>.py; the FL recipe is the
undefended model's (FL_model_generation/FL_model_for_<dataset>.py). Only DP-SGD trains anything:
the other two are views of the undefended model (model/<dataset>/<run>/fl/final.pt).
"""
from dataclasses import dataclass
from typing import ClassVar

from other_attack_and_defend import dp_sgd
from other_attack_and_defend.release_defenses import OutputNoiseTarget, TopKTarget
from other_attack_and_defend.targets import Target
from toolkit.run import Run
from toolkit.settings import Settings, require


def _ends(values: tuple) -> tuple:
    """The smallest and the largest value (still a line on the trade-off plot)."""
    ends = sorted(values)
    return tuple(dict.fromkeys([ends[0], ends[-1]])) if ends else ()


@dataclass(frozen=True)
class BaselineDefenseSettings(Settings):
    """From other_attack_and_defend/baseline_defenses_<dataset>.py. OUTPUT_NOISE_EPS: noise sigma = 1 / eps,
    a scale, not a privacy budget; TOP_K: one top-k release per k; DP_*: one DP-SGD model per target eps,
    delta = 1 / (DP_DELTA_FACTOR x client size), per-example clipping norm DP_MAX_GRAD_NORM, learning
    rate DP_LR (None: the FL learning rate)."""
    output_noise_eps: float
    top_k: tuple[int, ...]
    dp_target_eps: tuple[float, ...]
    dp_delta_factor: float
    dp_max_grad_norm: float
    dp_lr: float | None

    QUICK: ClassVar[dict] = {"DP_TARGET_EPS": _ends}

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
        require(self.dp_max_grad_norm > 0, "DP_MAX_GRAD_NORM", self.dp_max_grad_norm, "must be positive")
        require(self.dp_lr is None or self.dp_lr > 0, "DP_LR", self.dp_lr,
                "must be positive (or None for the FL learning rate)")

    @property
    def output_noise_sigma(self) -> float:
        return 1.0 / self.output_noise_eps

    def dp_settings(self) -> list[dp_sgd.DPSettings]:
        return [dp_sgd.DPSettings(target_eps=eps, delta_factor=self.dp_delta_factor,
                                  max_grad_norm=self.dp_max_grad_norm, lr=self.dp_lr)
                for eps in sorted(self.dp_target_eps)]

    def check_classes(self, num_classes: int) -> None:
        too_large = [k for k in self.top_k if k >= num_classes]
        require(not too_large, "TOP_K", self.top_k,
                f"a top-k release with k >= {num_classes} classes releases everything; drop {too_large}")


def defended_targets(run: Run, settings: BaselineDefenseSettings) -> list[Target]:
    """Output noise, top-k per k, then DP-SGD per target eps (ascending)."""
    targets: list[Target] = [OutputNoiseTarget("output_noise", run.fl_final_path, sigma=settings.output_noise_sigma,
                                               seed=run.seed)]
    targets += [TopKTarget(f"top{k}", run.fl_final_path, k=k) for k in settings.top_k]
    targets += [Target(dp_sgd.target_name(dp.target_eps), dp_sgd.model_path(run, dp.target_eps))
                for dp in settings.dp_settings()]
    return targets
