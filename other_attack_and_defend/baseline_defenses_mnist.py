"""Baseline defenses on MNIST, attacked like P2: output noise of sigma = 1 / OUTPUT_NOISE_EPS on the FL model's
released logits and per-example gradients (the original's "DP-scheme": output perturbation, NOT differential
privacy), top-k releases of the FL model, and DP-SGD with Opacus inside every client, one FedAvg model per
target eps, with the FL recipe of FL_model_for_mnist.py. Running this script trains the DP-SGD models that
are not up to date."""

OUTPUT_NOISE_EPS = 0.3          # noise sigma = 1 / OUTPUT_NOISE_EPS (a scale, not a privacy budget)
TOP_K = (1, 3)                 # one top-k release per k
DP_TARGET_EPS = (1, 4, 8)      # one DP-SGD model per value: (eps, delta) over the whole training
DP_DELTA_FACTOR = 10            # delta = 1 / (DP_DELTA_FACTOR x client size)
DP_MAX_GRAD_NORM = 1.0          # per-example clipping norm: the usual default, not tuned
DP_LR = None                   # None: the FL learning rate


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("baselines", __file__)
