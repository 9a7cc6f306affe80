"""Average the protected client models of a run into the P2-protected global model (FedAvg, weighted by
sample count). Run after defend/defend_<dataset>.py --client i for every client; it refuses clients made
from another FL model or with other P2 constants than the current ones."""

if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("p2", only="P2 aggregation")
