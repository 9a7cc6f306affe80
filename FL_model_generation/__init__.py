"""Models and federated averaging (FedAvg) shared by every dataset."""
