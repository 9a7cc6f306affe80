"""Shokri et al. (2017) shadow-model attack on the MNIST FL model and its P2-protected version: NUM_SHADOWS
shadow models of the target architecture (CNN 16-32 channels, from FL_model_for_mnist.py), each on
SHADOW_SIZE shadow-pool rows (2,000 in, 2,000 out: the in half matches a client's training set, 2,000 rows);
attack MLPs 2-5-2 on the sorted top-3 released posteriors (TOP_K = 3 for 10+ classes, as the reference does
for CIFAR-10; MNIST has 10), combined by majority vote. Sizes: the shadow pool has 37,000 rows. Shadow
training: Adam lr 0.001 (the usual rate for a CNN; 0.005 is the tabular recipe), 10 epochs, batch 64 (not
tuned on the real data). Attack MLPs: Adam lr 0.01, 60 epochs, as for Adult (see shokri_attack_adult.py).
TRAINING = "fl" trains the shadows with the target's FedAvg recipe instead. Quick runs: 3 shadows of 400
rows. Run main.py first (or the FL and P2 stages)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.shadow_attacks import ShokriSettings  # noqa: E402

NUM_SHADOWS = 9
SHADOW_SIZE = 4000          # rows per shadow: half in, half out (must fit the shadow pool, 37,000 rows)
TRAINING = "central"        # "central": the SHADOW_* constants; "fl": like the target
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.001
SHADOW_EPOCHS = 10
SHADOW_BATCH_SIZE = 64
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
    script_main("mnist", {"shokri": SETTINGS}, ("shokri",), __doc__)
