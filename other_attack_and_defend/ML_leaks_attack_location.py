"""ML-Leaks (Salem et al. 2019) on the Location models: one shadow model of the target architecture trained on
SHADOW_IN rows of the shadow pool (1,010 rows), SHADOW_OUT more held out; an attack MLP 2-ATTACK_HIDDEN-2 on the sorted
top-3 released probabilities; the threshold with the best balanced accuracy on the shadow's own in/out rows.
Shadow recipe: the original's. The attack MLP's training differs from the original's
(SGD lr 0.0035 for 3 epochs, which barely trains it): docs/NOTES.md §7.3."""

SHADOW_IN = 500               # SHADOW_IN + SHADOW_OUT must fit the shadow pool: 700 + 700 until the defenses'
SHADOW_OUT = 500              # reference rows (500 of Location's 5,010) left a pool of 1,010 rows
TRAINING = "central"            # "central": the SHADOW_* recipe below; "fl": the target's FedAvg recipe
P2_AWARE = True                 # also attack P2 models with a shadow that ran the target's P2 round
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.005
SHADOW_EPOCHS = 7
SHADOW_BATCH_SIZE = 100
TOP_K = 3
ATTACK_HIDDEN = 5
ATTACK_OPTIMIZER = "adam"       # the original: "sgd", ATTACK_LR = 0.0035, ATTACK_EPOCHS = 3
ATTACK_LR = 0.01
ATTACK_EPOCHS = 30
ATTACK_BATCH_SIZE = 100


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("ml_leaks", __file__)
