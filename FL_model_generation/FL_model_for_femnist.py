"""FedAvg on FEMNIST (LEAF, 62 classes) with LEAF's CNN: conv 1->32 and 32->64, 5x5 "same", ReLU, max-pool 2;
fc 3136->2048->62, on LEAF's pixels (x / 255). Natural partition: CLIENTS clients of WRITERS_PER_CLIENT
writers each; every non-member role comes from other writers. LEAF trains this CNN for hundreds of rounds;
the 10-round recipe here (SGD lr 0.01 with momentum 0.9, 2 local epochs, batch 32) and how it was checked
without FEMNIST are in docs/NOTES.md §7.5."""

# The federation: how data_partitioning.py deals the rows into roles (one seed fixes them all)
PARTITION = "writers"       # "iid", "dirichlet" (label-skewed non-IID) or "writers" (one client per writers)
CLIENTS = 10                # clients, all in every round
CLIENT_SIZE = None          # training rows per client
TEST_SIZE = 5000            # rows for test accuracy
EVAL_SIZE = 2000            # evaluation members, and as many non-members
KNOWN_SIZE = 1000           # members and non-members the supervised attacker knows
DEFENSE_REFERENCE_SIZE = 200  # non-member rows per client for AdvReg and MemGuard's defender: from the non-member writers' rows, like every non-member role
SHADOW_POOL_SIZE = None     # cap on the shadow/reference pool; None: every row left over
DIRICHLET_ALPHA = None      # PARTITION = "dirichlet": concentration of class shares (e.g. 0.5)
MIN_CLIENT_SIZE = None      # PARTITION = "dirichlet": redraw until every client has this many rows
WRITERS_PER_CLIENT = 5      # PARTITION = "writers": writers per client

# The FedAvg recipe
ARCHITECTURE = {"kind": "cnn", "in_channels": 1, "num_classes": 62, "image_size": 28, "channels": [32, 64],
                "hidden": [2048], "kernel_size": 5, "padding": 2}
ROUNDS = 10
LOCAL_EPOCHS = 2
LR = 0.01
LR_DECAY = 1.0              # per local epoch, restarting every round
MOMENTUM = 0.9
BATCH_SIZE = 32


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("fl", __file__)
