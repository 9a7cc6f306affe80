"""Baseline defenses on CIFAR-10, compared with P2 under the same attacks: output noise with sigma = 1/0.3 on
the FL model's released logits and per-example gradients (output perturbation, NOT differential privacy),
top-1 and top-3 releases (CIFAR-10 has 10 classes, so both withhold something), and DP-SGD with Opacus
inside every client, with delta = 1 / (10 x client size) and the FedAvg recipe of FL_model_for_cifar10.py.
CPU preset: only eps 8 (DP_TARGET_EPS = (1, 4, 8) as for the other datasets on a GPU): one DP-SGD LeNet takes
18 minutes (1,107 s) on one core of the 2-core CPU. DP_LR = 0.05, not the FL rate 0.005: the clipped gradients
(norm 1, the usual default) are far smaller than raw-pixel gradients. Measured on 3,000 real images, two
rounds of 5 local DP epochs at the eps-8 noise multiplier (1.13): test accuracy 0.131 at lr 0.005, 0.253 at
0.05, 0.096 at 0.5. Running this script trains the DP-SGD models not yet up to date and prints every
defense's utility. Run main.py (or the FL stage) first: output noise and top-k are views of the FL model."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.defense_suite import BaselineDefenseSettings, stage_main  # noqa: E402

OUTPUT_NOISE_EPS = 0.3          # noise sigma = 1 / OUTPUT_NOISE_EPS (a scale, not a privacy budget)
TOP_K = (1, 3)                  # 10 classes: top-3 still withholds the rest
DP_TARGET_EPS = (8,)            # CPU preset; (1, 4, 8) on a GPU. One DP-SGD model per value
DP_DELTA_FACTOR = 10            # delta = 1 / (DP_DELTA_FACTOR x client size)
DP_MAX_GRAD_NORM = 1.0          # per-example clipping norm: the usual default
DP_LR = 0.05                    # measured (see above); None: the FL learning rate

SETTINGS = BaselineDefenseSettings(output_noise_eps=OUTPUT_NOISE_EPS, top_k=TOP_K, dp_target_eps=DP_TARGET_EPS,
                                   dp_delta_factor=DP_DELTA_FACTOR, dp_max_grad_norm=DP_MAX_GRAD_NORM, dp_lr=DP_LR)

if __name__ == "__main__":
    stage_main("cifar10", __doc__)
