"""ML-Leaks (Salem et al. 2019) on the CIFAR-10 FL model and its P2-protected version: one shadow model of the
target architecture (LeNet on 32x32x3, from FL_model_for_cifar10.py) trained on SHADOW_IN shadow-pool rows,
SHADOW_OUT more held out; attack MLP 2-5-2 on the sorted top-3 released posteriors (TOP_K = 3 for 10+
classes, as the original does for CIFAR-10; CIFAR-10 has 10); threshold with the best balanced accuracy on
the shadow's in/out rows. Sizes: SHADOW_IN = 3,000, about a client's training set (3,000 rows); the shadow
pool has 17,000 rows. Shadow training: Adam lr 0.001 (the usual rate for a CNN; 0.005 is the tabular
recipe), 10 epochs, batch 64 (not tuned on the real data). Attack MLP: Adam lr 0.01, 30 epochs on
standardised inputs, as for Adult (ML_leaks_attack_adult.py explains why not the original SGD lr 0.0035, 3
epochs). Quick runs: 300 in / 300 out rows. Run main.py first (or the FL and P2 stages)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.shadow_attacks import MLLeaksSettings  # noqa: E402

SHADOW_IN = 3000            # SHADOW_IN + SHADOW_OUT must fit the shadow pool (17,000 rows)
SHADOW_OUT = 3000
TRAINING = "central"        # "central": the SHADOW_* constants; "fl": like the target
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.001
SHADOW_EPOCHS = 10
SHADOW_BATCH_SIZE = 64
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
    script_main("cifar10", {"ml_leaks": SETTINGS}, ("ml_leaks",), __doc__)
