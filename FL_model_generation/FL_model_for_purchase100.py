"""FedAvg on Purchase100: MLP 600-1024-512-256-128-100 with Tanh, the Purchase100 model of the MIA
literature (Nasr et al. 2018, ML Privacy Meter); 10 clients x 2,000 rows, IID (data_partitioning.py).

No FL recipe for Purchase100 was published (P2_REFERENCE.md section 3) and its data cannot be obtained
on the development machine, so the recipe is the one measured on Location, the same MLP family and row
format: 10 rounds, 5 local epochs, SGD lr 0.1 with momentum 0.9, batch 32 (Location: 0.96 train /
0.59 test accuracy). Checked on synthetic Purchase-shaped data only (stable; about 20-35 s a round on
the 2-core CPU, so about 5 minutes for the 10 rounds); its Purchase100 accuracy is not measured here.
The original's KMeans variants (purchase2/10/20/50) use the same model with NUM_CLASSES changed.
Run data_preprocessing.py and data_partitioning.py first (or main.py)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from FL_model_generation.fl_stage import stage_main  # noqa: E402
from FL_model_generation.training import FLSettings  # noqa: E402

NUM_CLASSES = 100
ARCHITECTURE = {"kind": "mlp", "sizes": [600, 1024, 512, 256, 128, NUM_CLASSES], "activation": "tanh"}
ROUNDS = 10
LOCAL_EPOCHS = 5
LR = 0.1
LR_DECAY = 1.0
MOMENTUM = 0.9
BATCH_SIZE = 32

SETTINGS = FLSettings(architecture=ARCHITECTURE, rounds=ROUNDS, local_epochs=LOCAL_EPOCHS, lr=LR,
                      lr_decay=LR_DECAY, momentum=MOMENTUM, batch_size=BATCH_SIZE)

if __name__ == "__main__":
    stage_main("purchase100", SETTINGS, __doc__)
