"""Mini-batch training of one model on one in-memory dataset: the client side of FedAvg."""
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from FL_model_generation.models import build_model, load_state
from toolkit.errors import P2Error


@dataclass(frozen=True)
class FLSettings:
    """The FedAvg recipe. The learning rate decays by `lr_decay` per local epoch, restarting each round."""
    architecture: dict
    rounds: int
    local_epochs: int
    lr: float
    batch_size: int
    lr_decay: float = 1.0
    momentum: float = 0.0

    def __post_init__(self):
        for name in ("rounds", "local_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise P2Error(f"FL setting {name.upper()}={getattr(self, name)} must be at least 1")
        if not self.lr > 0:
            raise P2Error(f"FL setting LR={self.lr} must be positive")

    def quick(self) -> "FLSettings":
        return replace(self, rounds=min(self.rounds, 2), local_epochs=min(self.local_epochs, 1))

    def as_dict(self) -> dict:
        return asdict(self)


def minibatches(size: int, batch_size: int, generator: torch.Generator):
    """Index tensors of one shuffled epoch."""
    return torch.randperm(size, generator=generator).split(batch_size)


def sgd_client_update(state_dict: dict, features: torch.Tensor, labels: torch.Tensor,
                      settings: FLSettings, generator: torch.Generator) -> dict:
    """Local training of one client: (weights, client data, settings) -> new weights.

    Pure apart from the generator, so another FL engine (or a DP variant) can call or replace it.
    """
    model = load_state(build_model(settings.architecture), state_dict, "the global model")
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(settings.local_epochs):
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * settings.lr_decay ** epoch
        for batch in minibatches(len(labels), settings.batch_size, generator):
            optimizer.zero_grad()
            loss_fn(model(features[batch]), labels[batch]).backward()
            optimizer.step()
    return model.state_dict()
