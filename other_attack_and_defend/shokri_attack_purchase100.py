"""Shokri et al. (2017) shadow-model attack on the Purchase100 FL model and its P2-protected version:
NUM_SHADOWS shadow models of the target architecture (MLP 600-1024-512-256-128-100, tanh, from
FL_model_for_purchase100.py), each on SHADOW_SIZE shadow-pool rows (2,000 in, 2,000 out: the in half matches
a client's training set, 2,000 rows); attack MLPs 2-5-2 on the sorted top-3 released posteriors (TOP_K = 3
for 10+ classes, as the reference does for CIFAR-10; Purchase100 has 100), combined by majority vote. Sizes:
the shadow pool (40,000 rows, data_partitioning.py) is far larger than any constant here. Shadow training:
the original's shadow recipe for tabular data (as for Adult). Attack MLPs: Adam lr 0.01, 60 epochs, as for
Adult (see shokri_attack_adult.py). TRAINING = "fl" trains the shadows with the target's FedAvg recipe
instead. Quick runs: 3 shadows of 400 rows. Run main.py first (or the FL and P2 stages)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.shadow_attacks import ShokriSettings  # noqa: E402

NUM_SHADOWS = 9
SHADOW_SIZE = 4000          # rows per shadow: half in, half out (must fit the shadow pool, 40,000 rows)
TRAINING = "central"        # "central": the SHADOW_* constants; "fl": like the target
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.005
SHADOW_EPOCHS = 8
SHADOW_BATCH_SIZE = 128
TOP_K = 3                   # 3 for 10+ classes (2 for binary tabular data)
PER_CLASS = False
ATTACK_HIDDEN = 5
ATTACK_OPTIMIZER = "adam"
ATTACK_LR = 0.01
ATTACK_EPOCHS = 60
ATTACK_BATCH_SIZE = 128

SETTINGS = ShokriSettings(num_shadows=NUM_SHADOWS, shadow_size=SHADOW_SIZE, training=TRAINING,
                          optimizer=SHADOW_OPTIMIZER, lr=SHADOW_LR, epochs=SHADOW_EPOCHS,
                          batch_size=SHADOW_BATCH_SIZE, top_k=TOP_K, per_class=PER_CLASS, attack_hidden=ATTACK_HIDDEN,
                          attack_optimizer=ATTACK_OPTIMIZER, attack_lr=ATTACK_LR, attack_epochs=ATTACK_EPOCHS,
                          attack_batch_size=ATTACK_BATCH_SIZE)

if __name__ == "__main__":
    script_main("purchase100", {"shokri": SETTINGS}, ("shokri",), __doc__)
