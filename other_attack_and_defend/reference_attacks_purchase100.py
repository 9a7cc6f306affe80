"""Attacks on the Purchase100 FL model and its P2-protected version that need no attack training: the metric
attacks of Song & Mittal (2021), the label-only gap attack, offline LiRA (Carlini et al. 2022) and offline
RMIA (Zarifzadeh et al. 2024, gamma = 1). NUM_REFERENCE reference models are trained like the target (MLP
600-1024-512-256-128-100, tanh, FedAvg with the recipe of FL_model_for_purchase100.py) on random halves of
the shadow pool split over the same number of clients, cached in model/purchase100/<run>/reference/ (see
other_attack_and_defend/reference_attacks.py). NUM_REFERENCE = 8: 8 for tabular data, as for Adult.
RMIA_POPULATION: 20,000 of the pool's rows, about Adult's whole pool, to bound RMIA's pairwise comparisons.
Sizes: the shadow pool (40,000 rows, data_partitioning.py) is far larger than any constant here. Quick
runs: at most 4 reference models."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.reference_attacks import REFERENCE_ATTACKS, ReferenceSettings  # noqa: E402

NUM_REFERENCE = 8               # reference models (8 for tabular data)
LIRA_FIXED_VARIANCE = True      # one global variance: recommended by Carlini et al. below ~64 models
RMIA_A = None                   # offline coefficient a; None = tuned on the reference models
RMIA_GAMMA = 1.0
RMIA_POPULATION = 20000         # population samples z from the shadow pool; None = the whole pool
CLASS_THRESHOLDS = True         # class-dependent thresholds for confidence, entropy, modified entropy

SETTINGS = ReferenceSettings(num_reference=NUM_REFERENCE, lira_fixed_variance=LIRA_FIXED_VARIANCE, rmia_a=RMIA_A,
                             rmia_gamma=RMIA_GAMMA, rmia_population=RMIA_POPULATION,
                             class_thresholds=CLASS_THRESHOLDS)

if __name__ == "__main__":
    script_main("purchase100", {"reference": SETTINGS}, REFERENCE_ATTACKS, __doc__)
