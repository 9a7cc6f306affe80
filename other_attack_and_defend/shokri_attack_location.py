"""Shokri et al. (2017) shadow-model attack on the Location models: NUM_SHADOWS shadow models of the target
architecture, each on SHADOW_SIZE rows of the shadow pool (1,010 rows), half in, half out; attack MLPs
2-ATTACK_HIDDEN-2 on the sorted top-3 released probabilities, one per shadow (or per shadow and class with
PER_CLASS), combined by majority vote. Shadow recipe: the original's for tabular data;
the attack MLPs' training, not published by the original: docs/NOTES.md §7.3."""

NUM_SHADOWS = 9
SHADOW_SIZE = 300             # rows per shadow: half trained on, half held out
TRAINING = "central"            # "central": the SHADOW_* recipe below; "fl": the target's FedAvg recipe
P2_AWARE = True                 # also attack P2 models with shadows that ran the target's P2 round
SHADOW_OPTIMIZER = "adam"
SHADOW_LR = 0.005
SHADOW_EPOCHS = 8
SHADOW_BATCH_SIZE = 128
TOP_K = 3                     # sorted top-k probabilities fed to the attack MLPs (3 for 10+ classes)
PER_CLASS = False               # one attack MLP per shadow and class, as in Shokri et al.
ATTACK_HIDDEN = 5
ATTACK_OPTIMIZER = "adam"
ATTACK_LR = 0.01
ATTACK_EPOCHS = 60
ATTACK_BATCH_SIZE = 128


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("shokri", __file__)
