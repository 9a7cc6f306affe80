"""Attacks on the FEMNIST models that train no attack network: the metric attacks of Song & Mittal (2021:
loss, confidence, entropy, modified entropy), the label-only gap attack, offline LiRA (Carlini et al. 2022)
and offline RMIA (Zarifzadeh et al. 2024). NUM_REFERENCE reference models are trained like the target
(FedAvg with its recipe) on halves of the shadow pool; they give LiRA and RMIA their OUT distributions and
every attack its threshold, never the evaluation rows (other_attack_and_defend/reference_attacks.py).
How many models, and why: docs/NOTES.md §7.8."""

NUM_REFERENCE = 4              # reference models, at least 4 (4 for the CNNs: CPU time)
P2_AWARE = True                 # also attack P2 models with references that ran the target's P2 round
LIRA_FIXED_VARIANCE = True      # one global variance, as Carlini et al. advise below ~64 models
RMIA_A = None                   # RMIA's offline coefficient a; None: tuned on the reference models
RMIA_GAMMA = 1.0
RMIA_POPULATION = None         # population samples z from the shadow pool; None: the whole pool
CLASS_THRESHOLDS = True         # class-dependent thresholds for confidence, entropy, modified entropy


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("reference", __file__)
