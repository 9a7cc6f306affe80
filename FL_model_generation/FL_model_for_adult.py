"""FedAvg on Adult with the original settings (docs/NOTES.md §3): MLP 14-500-300-2 with ReLU, 10 clients
x 2,400 rows, 10 rounds of 5 local epochs, SGD without momentum, batch 128. One deviation: the learning
rate is 0.1, not 0.005, with which the model never leaves the majority class (§7.1).
The partition constants say how data_partitioning.py deals the rows out; every stage reads them from here."""

# The federation: how data_partitioning.py deals the rows into roles (one seed fixes them all)
PARTITION = "iid"           # "iid", "dirichlet" (label-skewed non-IID) or "writers" (one client per writers)
CLIENTS = 10                # clients, all in every round
CLIENT_SIZE = 2400          # training rows per client
TEST_SIZE = 4000            # rows for test accuracy
EVAL_SIZE = 2000            # evaluation members, and as many non-members
KNOWN_SIZE = 1000           # members and non-members the supervised attacker knows
DEFENSE_REFERENCE_SIZE = 300  # non-member rows per client for AdvReg and MemGuard's defender: 300 of the 17,842 rows left over: the shadow pool keeps 14,842
SHADOW_POOL_SIZE = None     # cap on the shadow/reference pool; None: every row left over
DIRICHLET_ALPHA = None      # PARTITION = "dirichlet": concentration of class shares (e.g. 0.5)
MIN_CLIENT_SIZE = None      # PARTITION = "dirichlet": redraw until every client has this many rows
WRITERS_PER_CLIENT = None   # PARTITION = "writers": writers per client

# The FedAvg recipe
ARCHITECTURE = {"kind": "mlp", "sizes": [14, 500, 300, 2], "activation": "relu"}
ROUNDS = 10
LOCAL_EPOCHS = 5
LR = 0.1
LR_DECAY = 1.0              # per local epoch, restarting every round
MOMENTUM = 0.0
BATCH_SIZE = 128


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("fl", __file__)
