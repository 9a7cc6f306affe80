"""Attacks on the CIFAR-10 FL model and its P2-protected version that need no attack training: the metric
attacks of Song & Mittal (2021), the label-only gap attack, offline LiRA (Carlini et al. 2022) and offline
RMIA (Zarifzadeh et al. 2024, gamma = 1). NUM_REFERENCE reference models are trained like the target (LeNet
on 32x32x3, FedAvg with the recipe of FL_model_for_cifar10.py) on random halves of the shadow pool split
over the same number of clients, cached in model/cifar10/<run>/reference/ (see
other_attack_and_defend/reference_attacks.py). NUM_REFERENCE = 4, the minimum (two complementary pairs),
as for MNIST: each is a full FedAvg training of the LeNet with the paper's recipe on 8,500 pool rows (the
target has 30,000), about 2.5 minutes on one core of the 2-core CPU (the four took 567 s). Raise it on a
GPU (Carlini et al. find LiRA keeps improving up to ~64 models): the models already trained are kept and
only the new ones are trained. RMIA_POPULATION: None: the whole pool. Sizes: the shadow pool has 17,000
rows. Quick runs: at most 4 reference models."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.reference_attacks import REFERENCE_ATTACKS, ReferenceSettings  # noqa: E402

NUM_REFERENCE = 4               # reference models: the minimum, for CPU time (more on a GPU)
LIRA_FIXED_VARIANCE = True      # one global variance: recommended by Carlini et al. below ~64 models
RMIA_A = None                   # offline coefficient a; None = tuned on the reference models
RMIA_GAMMA = 1.0
RMIA_POPULATION = None          # population samples z from the shadow pool; None = the whole pool
CLASS_THRESHOLDS = True         # class-dependent thresholds for confidence, entropy, modified entropy

SETTINGS = ReferenceSettings(num_reference=NUM_REFERENCE, lira_fixed_variance=LIRA_FIXED_VARIANCE, rmia_a=RMIA_A,
                             rmia_gamma=RMIA_GAMMA, rmia_population=RMIA_POPULATION,
                             class_thresholds=CLASS_THRESHOLDS)

if __name__ == "__main__":
    script_main("cifar10", {"reference": SETTINGS}, REFERENCE_ATTACKS, __doc__)
