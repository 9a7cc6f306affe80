"""Baseline and competitor defenses on MNIST, attacked like P2 (other_attack_and_defend/defense_suite.py): output
noise of sigma = 1 / OUTPUT_NOISE_EPS on the FL model's released logits and per-example gradients (the original's
"DP-scheme": output perturbation, NOT differential privacy), top-k releases of the FL model, DP-SGD in every client
tuned per target eps (dp_tuning.py), HAMP (hamp.py), MemGuard (memguard.py), RelaxLoss (relaxloss.py), AdvReg
(advreg.py) and client-level DP-FedAvg (dp_fedavg.py); every trained defense uses the FL recipe of
FL_model_for_mnist.py. Each module cites its paper and lists where it departs from it; the values chosen for
MNIST are explained next to them. Running this script trains every defense that is not up to date."""

# Views of the FL model
OUTPUT_NOISE_EPS = 0.3          # noise sigma = 1 / OUTPUT_NOISE_EPS (a scale, not a privacy budget)
TOP_K = (1, 3)                 # one top-k release per k

# DP-SGD in every client (example-level DP), its recipe tuned per eps on the clients' validation rows
DP_TARGET_EPS = (8,)            # one DP-SGD model per value: (eps, delta) over the whole training; one eps only,
                                # the CPU budget (README: costs)
DP_DELTA_FACTOR = 10            # delta = 1 / (DP_DELTA_FACTOR x client size)
DP_VALIDATION_FRACTION = 0.15   # of each client's rows, held out to score the candidates
DP_TUNE_LR = (0.05, 0.5)        # with clip 1 and momentum 0 or 0.9: effective lr x clip 0.05..5, around the
                                # 0.375 (Opacus' MNIST example) and 0.5 (Tramer & Boneh) that reach 95-98%
DP_TUNE_MAX_GRAD_NORM = (1.0,)  # fixed, the lr is tuned instead (the optimal lr scales as 1 / clip): CPU time
DP_TUNE_LOCAL_EPOCHS = (1,)     # one local epoch: the least noise per step at a given eps; CPU budget
DP_TUNE_MOMENTUM = (0.0, 0.9)
DP_TUNE_ROUNDS = 2              # rounds a candidate trains (of 10): CPU budget
COMPETITOR_LOCAL_EPOCHS = 1     # the trained competitors (HAMP, RelaxLoss, AdvReg, DP-FedAvg) run 1 local epoch per
                                # round, not the FL recipe's 5: one CNN model at the full recipe costs about the
                                # whole CPU budget of the competitors (README: costs); their utility is therefore
                                # that of a shorter training than the FL model's

# DP-FedAvg with client-level DP (10 clients, every round: q = 1)
DP_FEDAVG_TARGET_EPS = (1000,)  # client-level eps; noise multiplier 0.076 over 10 rounds (one model: CPU budget;
                                # on Location 1000 kept most of the accuracy, 100 none)
DP_FEDAVG_DELTA_FACTOR = 10     # delta = 1 / (10 x 10 clients) = 0.01
DP_FEDAVG_CLIP = 2.0            # L2 clip of a client's update: the FL model's updates have norm 3.5 (round 2) to 1.5

# HAMP: the authors did not evaluate MNIST; their CIFAR-10 values (10 classes)
HAMP_GAMMA = 0.95               # soft label 0.26 at the label, 0.082 elsewhere
HAMP_EXTRA_GAMMA = ()
HAMP_ALPHA = 0.001
HAMP_RANDOM_INPUT = "uniform"   # uniform pixels in [0, 1], as the authors' uniform pixels for CIFAR

# MemGuard
MEMGUARD_BUDGET = 1.0           # expected L1 distortion; the largest of the official sweep (1.0 ... 0.1)
MEMGUARD_EXTRA_BUDGET = ()
MEMGUARD_MAX_ITERATIONS = 300   # phase I's iterations per c3 (the official value)
MEMGUARD_CLASSIFIER_EPOCHS = 80  # the official 400 epochs over 2,000 vectors are 12,500 SGD steps; 80 epochs over
                                # 10,000 (5,000 members + 5,000 reference rows) take as many: CPU budget
MEMGUARD_CLASSIFIER_LR = 0.001
MEMGUARD_CLASSIFIER_BATCH_SIZE = 64

# RelaxLoss: the authors did not evaluate MNIST; alpha below their CIFAR-10 1.0, MNIST's test loss being small
RELAXLOSS_ALPHA = 0.5
RELAXLOSS_EXTRA_ALPHA = ()
RELAXLOSS_UPPER = 1.0           # no clamp, as the authors' CIFAR settings

# AdvReg
ADVREG_LAMBDA = 1.0             # Nasr et al.'s image (CIFAR-100) value
ADVREG_EXTRA_LAMBDA = ()
ADVREG_ATTACK_STEPS = 1         # inference-model steps per classifier step: 1, as Nasr et al.'s CIFAR-100 code
                                # (Purchase/Texas: about 25); each step costs about a classifier step: CPU budget
ADVREG_ATTACK_LR = 0.001        # Nasr et al.'s Texas value (Adam)


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("baselines", __file__)
