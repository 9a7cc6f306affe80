"""P2-Protection round on the Purchase100 FL model with the original settings (docs/NOTES.md §2): eps 0.1,
Adam lr 3e-4, 200 epochs, batch 128, every layer fine-tuned. The poison label comes from the last layer's
bias, where the first layer's per-label gradients are unaffordable (§7.6).
`--client i` protects one client; `--client all` (default) protects every client and aggregates."""

EPS = 0.1                       # largest move of the top probability
LABEL_MARGIN = 0.1               # lead (in probability) the predicted label keeps in every target (§7.11)
OPTIMIZER = "adam"
LR = 3e-4
EPOCHS = 200
BATCH_SIZE = 128
ROUNDS = 1                      # federated rounds the EPOCHS are spread over, averaged after each (1: the paper's)
TRAINABLE = ()                  # parameter-name prefixes to fine-tune: every layer
POISON_WEIGHT = "fc5.bias"      # the weight whose gradients choose the poison label
START = "global"                # "global": the paper's extra round; "last_local": the original code's

# The grid defend/p2_sweep.py runs (every EPS with every ROUNDS; the other constants as above). Each point is a
# whole P2 round and every attack on it; widen it freely. EPS 0.001 is the control: the same fine-tuning toward
# the FL model's own outputs, without the poison (docs/NOTES.md §7.11)
SWEEP_EPS = (0.001, 0.1, 0.5)
SWEEP_ROUNDS = (1, 5)


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("p2", __file__)
