"""FedAvg on MNIST: a LeNet-sized CNN (conv 1->16 and 16->32, 5x5, ReLU, max-pool 2; fc 512->128->10) on
pixels in [0, 1]; 10 clients x 2,000 images, IID, or label-skewed non-IID with PARTITION = "dirichlet".
No MNIST code was published; the recipe (SGD lr 0.05 with momentum 0.9, 5 local epochs, batch 64) and why
this CNN rather than McMahan et al.'s are in docs/NOTES.md §7.5."""

# The federation: how data_partitioning.py deals the rows into roles (one seed fixes them all)
PARTITION = "iid"           # "iid", "dirichlet" (label-skewed non-IID) or "writers" (one client per writers)
CLIENTS = 10                # clients, all in every round
CLIENT_SIZE = 2000          # training rows per client
TEST_SIZE = 10000           # rows for test accuracy
EVAL_SIZE = 2000            # evaluation members, and as many non-members
KNOWN_SIZE = 1000           # members and non-members the supervised attacker knows
DEFENSE_REFERENCE_SIZE = 500  # non-member rows per client for AdvReg and MemGuard's defender: 5,000 of the 37,000 rows left over
SHADOW_POOL_SIZE = None     # cap on the shadow/reference pool; None: every row left over
DIRICHLET_ALPHA = None      # PARTITION = "dirichlet": concentration of class shares (e.g. 0.5)
MIN_CLIENT_SIZE = 10        # PARTITION = "dirichlet": redraw until every client has this many rows
WRITERS_PER_CLIENT = None   # PARTITION = "writers": writers per client

# The FedAvg recipe
ARCHITECTURE = {"kind": "cnn", "in_channels": 1, "num_classes": 10, "image_size": 28, "channels": [16, 32],
                "hidden": [128], "kernel_size": 5, "padding": 0}
ROUNDS = 10
LOCAL_EPOCHS = 5
LR = 0.05
LR_DECAY = 1.0              # per local epoch, restarting every round
MOMENTUM = 0.9
BATCH_SIZE = 64


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("fl", __file__)
