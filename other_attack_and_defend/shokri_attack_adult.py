"""Shokri et al. (2017) shadow-model attack on the Adult FL model and its P2-protected version,
with the original settings (P2_REFERENCE.md section 4): 9 shadow models of the target architecture
(MLP 14-500-300-2, from FL_model_for_adult.py), Adam lr 0.005, 8 epochs, batch 128, 2,000 shadow-pool
rows each (1,000 in, 1,000 out); attack MLPs 2-5-2 on the sorted top-2 released posteriors, combined
by majority vote (score = fraction of "member" votes). PER_CLASS = True trains one attack model per
shadow and class, as in the Shokri paper.
The original code did not publish the attack models' training; Adam lr 0.01, 60 epochs, batch 128
(inputs standardised per attack model) trains each 2-5-2 MLP to convergence: on the synthetic case of
tests/test_attacks.py the attack's AUC is the same for 10 to 200 epochs. TRAINING = "fl" trains the
shadows with the target's FedAvg recipe instead of the SHADOW_* constants.
Quick runs: 3 shadows of 400 rows. Run main.py first (or the FL and P2 stages)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from other_attack_and_defend.attack_suite import script_main  # noqa: E402
from other_attack_and_defend.shadow_attacks import ShokriSettings  # noqa: E402

NUM_SHADOWS = 9
SHADOW_SIZE = 2000          # rows per shadow: half in, half out
TRAINING = "central"        # "central": the SHADOW_* constants (the original); "fl": like the target
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.005
SHADOW_EPOCHS = 8
SHADOW_BATCH_SIZE = 128
TOP_K = 2                   # 2 for tabular data, 3 for CIFAR-10
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
    script_main("adult", {"shokri": SETTINGS}, ("shokri",), __doc__)
