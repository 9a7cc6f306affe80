"""ML-Leaks (Salem et al. 2019) on the Purchase100 FL model and its P2-protected version: one shadow model of
the target architecture (MLP 600-1024-512-256-128-100, tanh, from FL_model_for_purchase100.py) trained on
SHADOW_IN shadow-pool rows, SHADOW_OUT more held out; attack MLP 2-5-2 on the sorted top-3 released
posteriors (TOP_K = 3 for 10+ classes, as the original does for CIFAR-10; Purchase100 has 100); threshold
with the best balanced accuracy on the shadow's in/out rows. Sizes: SHADOW_IN = 2,000, about a client's
training set (2,000 rows); the shadow pool (40,000 rows, data_partitioning.py) is far larger than any
constant here. Shadow training: the original's shadow recipe for tabular data (as for Adult). Attack MLP:
Adam lr 0.01, 30 epochs on standardised inputs, as for Adult (ML_leaks_attack_adult.py explains why not the
original SGD lr 0.0035, 3 epochs). Quick runs: 300 in / 300 out rows. Run main.py first (or the FL and P2
stages)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.shadow_attacks import MLLeaksSettings  # noqa: E402

SHADOW_IN = 2000            # SHADOW_IN + SHADOW_OUT must fit the shadow pool (about 164,000 rows)
SHADOW_OUT = 2000
TRAINING = "central"        # "central": the SHADOW_* constants; "fl": like the target
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.005
SHADOW_EPOCHS = 7
SHADOW_BATCH_SIZE = 100
TOP_K = 3                   # 3 for 10+ classes (2 for binary tabular data)
ATTACK_HIDDEN = 5
ATTACK_OPTIMIZER = "adam"
ATTACK_LR = 0.01
ATTACK_EPOCHS = 30
ATTACK_BATCH_SIZE = 100

SETTINGS = MLLeaksSettings(in_size=SHADOW_IN, out_size=SHADOW_OUT, training=TRAINING, optimizer=SHADOW_OPTIMIZER,
                           lr=SHADOW_LR, epochs=SHADOW_EPOCHS, batch_size=SHADOW_BATCH_SIZE, top_k=TOP_K,
                           attack_hidden=ATTACK_HIDDEN, attack_optimizer=ATTACK_OPTIMIZER, attack_lr=ATTACK_LR,
                           attack_epochs=ATTACK_EPOCHS, attack_batch_size=ATTACK_BATCH_SIZE)

if __name__ == "__main__":
    script_main("purchase100", {"ml_leaks": SETTINGS}, ("ml_leaks",), __doc__)
