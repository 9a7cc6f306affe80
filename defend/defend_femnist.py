"""P2-Protection round on the FEMNIST FL model (LEAF's CNN): eps 0.1, Adam lr 3e-4, 200 epochs,
batch 128 as the original (P2_REFERENCE.md section 2); as the original's CIFAR-10 port did for its
CNN, only the fully connected layers (fc1, fc2) are fine-tuned and the convolutions stay frozen.

Poison label from the last layer: with 62 labels, the first layer's per-label gradients need 62
backward passes through the whole CNN per example (measured: 200 examples took 20 s and 4.4 GB; the
gradient chunk p2_protection uses here, 676 examples, would need about 15 GB); the last layer's bias
gives exactly the label its weight gives (see defend_purchase100.py) at 1.5 s per client, where
fc2.weight (62 x 2048 values per label) takes minutes.
Cost: about 0.6 s per epoch for a 1,100-row client, so about 20 minutes for 10 clients x 200 epochs.
`--client i` protects one client; `--client all` (default) protects all and aggregates."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from defend.p2_protection import P2Settings  # noqa: E402
from defend.p2_stage import stage_main  # noqa: E402

EPS = 0.1
OPTIMIZER = "adam"
LR = 3e-4
EPOCHS = 200
BATCH_SIZE = 128
TRAINABLE = ("fc",)            # parameter-name prefixes to fine-tune: fc1, fc2 (convolutions frozen)
POISON_WEIGHT = "fc2.bias"     # last layer: same label as fc2.weight; conv1.weight is unaffordable with 62 labels
START = "global"               # "global": the paper's extra round; "last_local": the original code's

SETTINGS = P2Settings(eps=EPS, optimizer=OPTIMIZER, lr=LR, epochs=EPOCHS, batch_size=BATCH_SIZE,
                      trainable=TRAINABLE, poison_weight=POISON_WEIGHT, start=START)

if __name__ == "__main__":
    stage_main("femnist", SETTINGS, __doc__)
