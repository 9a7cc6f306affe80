"""FedAvg on Purchase100: MLP 600-1024-512-256-128-100 with Tanh, the Purchase100 model of the MIA
literature (Nasr et al. 2018); 10 clients x 2,000 rows, IID. No FL recipe was published: this is the one
measured on Location, the same model family and row format (docs/NOTES.md §7.5); its Purchase100 accuracy
is not measured here (the data cannot be obtained on the development machine). The KMeans variants
(purchase2/10/20/50) would need their own script with the last size changed.
The shadow pool is capped at 40,000 rows, so that a reference model sees as many rows as the target."""

# The federation: how data_partitioning.py deals the rows into roles (one seed fixes them all)
PARTITION = "iid"           # "iid", "dirichlet" (label-skewed non-IID) or "writers" (one client per writers)
CLIENTS = 10                # clients, all in every round
CLIENT_SIZE = 2000          # training rows per client
TEST_SIZE = 10000           # rows for test accuracy
EVAL_SIZE = 2000            # evaluation members, and as many non-members
KNOWN_SIZE = 1000           # members and non-members the supervised attacker knows
DEFENSE_REFERENCE_SIZE = 1000  # non-member rows per client for AdvReg and MemGuard's defender: the pool is capped at 40,000 rows anyway: plenty left
SHADOW_POOL_SIZE = 40000    # cap on the shadow/reference pool; None: every row left over
DIRICHLET_ALPHA = None      # PARTITION = "dirichlet": concentration of class shares (e.g. 0.5)
MIN_CLIENT_SIZE = None      # PARTITION = "dirichlet": redraw until every client has this many rows
WRITERS_PER_CLIENT = None   # PARTITION = "writers": writers per client

# The FedAvg recipe
ARCHITECTURE = {"kind": "mlp", "sizes": [600, 1024, 512, 256, 128, 100], "activation": "tanh"}
ROUNDS = 10
LOCAL_EPOCHS = 5
LR = 0.1
LR_DECAY = 1.0              # per local epoch, restarting every round
MOMENTUM = 0.9
BATCH_SIZE = 32


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("fl", __file__)
