"""White-box gradient attack (Nasr et al.) on the Location FL model and on its P2-protected
version: gradients of the last two layers (fc4 128x256, fc5 30x128), the label and the loss.
The attack network is the original's (P2_REFERENCE.md section 4: Conv2d(1->100) per gradient); it is
trained as on Adult (membership_attack_adult.py): Adam lr 1e-4 for 10 epochs of batch 64, the epoch
with the best validation AUC kept. Measured on Location's FL model (real data, seed 0: 0.958 train /
0.585 test accuracy): AUC 0.762 on the evaluation set (best epoch 3, 24 s), against 0.521 with the
original's SGD lr 1e-3 x0.95 for 100 epochs (108 s), which barely moves the network.
fc1 (1024 x 446 per example) is left out for cost, as for Purchase100. The attacker knows 500
members and 500 non-members (Location is small; data_partitioning.py) and is evaluated once on the
evaluation set (500 + 500)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from menif_attack.gradient_attack_stage import stage_main  # noqa: E402
from menif_attack.whitebox_attack import WhiteboxSettings  # noqa: E402

LAYERS = ("fc4.weight", "fc5.weight")
CONV_CHANNELS = 100
OPTIMIZER = "adam"   # reference: SGD lr 1e-3, x0.95 per epoch, 100 epochs (see the docstring)
LR = 1e-4
LR_DECAY = 0.95
EPOCHS = 10          # validation AUC peaks within a few epochs (Location: epoch 3); the best epoch is kept
BATCH_SIZE = 64
VAL_FRACTION = 0.2

SETTINGS = WhiteboxSettings(layers=LAYERS, conv_channels=CONV_CHANNELS, optimizer=OPTIMIZER, lr=LR,
                            lr_decay=LR_DECAY, epochs=EPOCHS, batch_size=BATCH_SIZE, val_fraction=VAL_FRACTION)

if __name__ == "__main__":
    stage_main("location", SETTINGS, __doc__)
