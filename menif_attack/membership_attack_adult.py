"""White-box gradient attack (Nasr et al.) on the Adult FL model and on its P2-protected version:
gradients of all three FC layers, the label and the loss; the attacker knows 1,000 members and
1,000 non-members (see data_partitioning.py) and is evaluated once on the evaluation set."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from menif_attack.gradient_attack_stage import stage_main  # noqa: E402
from menif_attack.whitebox_attack import WhiteboxSettings  # noqa: E402

LAYERS = ("fc1.weight", "fc2.weight", "fc3.weight")
CONV_CHANNELS = 20   # reference: 100 (a 41M-weight attack network, minutes per epoch on a busy 2-core CPU
                     # for each of the six white-box targets); 20 keeps the design at a fifth of the cost
OPTIMIZER = "adam"   # reference: SGD lr 1e-3, x0.95 per epoch, 100 epochs
LR = 1e-4
LR_DECAY = 0.95
EPOCHS = 10          # measured on Adult (Adam 1e-4, 100 channels, 15 epochs): validation AUC peaks by epoch 3
BATCH_SIZE = 64
VAL_FRACTION = 0.2

SETTINGS = WhiteboxSettings(layers=LAYERS, conv_channels=CONV_CHANNELS, optimizer=OPTIMIZER, lr=LR,
                            lr_decay=LR_DECAY, epochs=EPOCHS, batch_size=BATCH_SIZE, val_fraction=VAL_FRACTION)

if __name__ == "__main__":
    stage_main("adult", SETTINGS, __doc__)
