"""FedAvg on CIFAR-10 with the original port's settings (docs/NOTES.md §3): LeNet conv(3->6, 5x5)-pool-
conv(6->16, 5x5)-pool-fc 400-120-84-10 on raw 0..255 pixels, 10 clients x 3,000 images, IID, 10 rounds of
10 local epochs, SGD lr 0.005 (no momentum) decayed x0.95 per local epoch, batch 64. The original reports
about 46% test accuracy. To feed normalised pixels instead, add "input_mean": 120.7, "input_std": 63.9
(the training pixels' mean and std) to ARCHITECTURE."""

# The federation: how data_partitioning.py deals the rows into roles (one seed fixes them all)
PARTITION = "iid"           # "iid", "dirichlet" (label-skewed non-IID) or "writers" (one client per writers)
CLIENTS = 10                # clients, all in every round
CLIENT_SIZE = 3000          # training rows per client
TEST_SIZE = 10000           # rows for test accuracy
EVAL_SIZE = 2000            # evaluation members, and as many non-members
KNOWN_SIZE = 1000           # members and non-members the supervised attacker knows
DEFENSE_REFERENCE_SIZE = 500  # non-member rows per client for AdvReg and MemGuard's defender: 5,000 of the 17,000 rows left over
SHADOW_POOL_SIZE = None     # cap on the shadow/reference pool; None: every row left over
DIRICHLET_ALPHA = None      # PARTITION = "dirichlet": concentration of class shares (e.g. 0.5)
MIN_CLIENT_SIZE = None      # PARTITION = "dirichlet": redraw until every client has this many rows
WRITERS_PER_CLIENT = None   # PARTITION = "writers": writers per client

# The FedAvg recipe
ARCHITECTURE = {"kind": "lenet", "in_channels": 3, "num_classes": 10, "image_size": 32}
ROUNDS = 10
LOCAL_EPOCHS = 10
LR = 0.005
LR_DECAY = 0.95             # per local epoch, restarting every round
MOMENTUM = 0.0
BATCH_SIZE = 64


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("fl", __file__)
