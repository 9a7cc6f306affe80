"""FedAvg on FEMNIST (LEAF, 62 classes): LEAF's CNN (models/femnist/cnn.py of TalwalkarLab/leaf):
conv1 1->32 5x5 "same", ReLU, max-pool 2 -> conv2 32->64 5x5 "same", ReLU, max-pool 2 -> fc1 3136->2048,
ReLU -> fc2 2048->62, on LEAF's pixels (x / 255, as LEAF writes them, no further normalisation);
natural partition: FEMNIST_CLIENTS clients of FEMNIST_WRITERS_PER_CLIENT writers each (data_partitioning.py).

No FEMNIST code was published; LEAF trains this CNN with plain SGD (lr 0.004) for hundreds of rounds,
too many for a CPU. Recipe for 10 rounds: 2 local epochs, SGD lr 0.01 with momentum 0.9, batch 32.
FEMNIST cannot be obtained on the development machine, so the recipe was checked on MNIST digits with
the same 62-output CNN: one client of 3,000 images, 0.80 then 0.92 test accuracy after 1 and 2 epochs
(lr 0.05 with momentum and batch 64 stalled near 0.15). Cost: about 2.5 ms per image and epoch on the
2-core CPU, so about 10 minutes for 10 rounds over ~11,000 member rows (LEAF --sf 0.05).
Run data_preprocessing.py and data_partitioning.py first (or main.py)."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from FL_model_generation.fl_stage import stage_main  # noqa: E402
from FL_model_generation.training import FLSettings  # noqa: E402

ARCHITECTURE = {"kind": "cnn", "in_channels": 1, "num_classes": 62, "image_size": 28, "channels": [32, 64],
                "hidden": [2048], "kernel_size": 5, "padding": 2}
ROUNDS = 10
LOCAL_EPOCHS = 2
LR = 0.01
LR_DECAY = 1.0
MOMENTUM = 0.9
BATCH_SIZE = 32

SETTINGS = FLSettings(architecture=ARCHITECTURE, rounds=ROUNDS, local_epochs=LOCAL_EPOCHS, lr=LR,
                      lr_decay=LR_DECAY, momentum=MOMENTUM, batch_size=BATCH_SIZE)

if __name__ == "__main__":
    stage_main("femnist", SETTINGS, __doc__)
