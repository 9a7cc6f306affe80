"""FedAvg on Location (Bangkok check-ins, 446 binary features, 30 classes): MLP 446-1024-512-256-128-30
with Tanh, the Purchase100 model family; 10 clients x 150 rows, IID (Location has only 5,010 rows).
SGD lr 0.1 with momentum 0.9, 5 local epochs, batch 32: the alternatives compared are in docs/NOTES.md §7.5.
The large train/test gap it leaves is Location's usual overfitting, the signal membership attacks use."""

# The federation: how data_partitioning.py deals the rows into roles (one seed fixes them all)
PARTITION = "iid"           # "iid", "dirichlet" (label-skewed non-IID) or "writers" (one client per writers)
CLIENTS = 10                # clients, all in every round
CLIENT_SIZE = 150           # training rows per client
TEST_SIZE = 1000            # rows for test accuracy
EVAL_SIZE = 500             # evaluation members, and as many non-members
KNOWN_SIZE = 500            # members and non-members the supervised attacker knows
DEFENSE_REFERENCE_SIZE = 50  # non-member rows per client for AdvReg and MemGuard's defender: only 5,010 rows: 500 of the 1,510 left over, the pool keeps 1,010 (ML-Leaks' shadow shrank to fit)
SHADOW_POOL_SIZE = None     # cap on the shadow/reference pool; None: every row left over
DIRICHLET_ALPHA = None      # PARTITION = "dirichlet": concentration of class shares (e.g. 0.5)
MIN_CLIENT_SIZE = None      # PARTITION = "dirichlet": redraw until every client has this many rows
WRITERS_PER_CLIENT = None   # PARTITION = "writers": writers per client

# The FedAvg recipe
ARCHITECTURE = {"kind": "mlp", "sizes": [446, 1024, 512, 256, 128, 30], "activation": "tanh"}
ROUNDS = 10
LOCAL_EPOCHS = 5
LR = 0.1
LR_DECAY = 1.0              # per local epoch, restarting every round
MOMENTUM = 0.9
BATCH_SIZE = 32


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("fl", __file__)
