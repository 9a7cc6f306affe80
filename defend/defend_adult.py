"""P2-Protection round on the Adult FL model with the original settings (P2_REFERENCE.md section 2):
eps 0.1, Adam lr 3e-4, 200 epochs, batch 128, all layers fine-tuned, poison label from fc1.weight.
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
TRAINABLE = ()                 # parameter-name prefixes to fine-tune; () = every layer
POISON_WEIGHT = "fc1.weight"   # the weight whose gradients choose the poison label
START = "global"               # "global": the paper's extra round; "last_local": the original code's

SETTINGS = P2Settings(eps=EPS, optimizer=OPTIMIZER, lr=LR, epochs=EPOCHS, batch_size=BATCH_SIZE,
                      trainable=TRAINABLE, poison_weight=POISON_WEIGHT, start=START)

if __name__ == "__main__":
    stage_main("adult", SETTINGS, __doc__)
