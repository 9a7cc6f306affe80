"""Mini-batch training of one model on one in-memory dataset: the client side of FedAvg."""
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from FL_model_generation.models import build_model, check_architecture, load_state
from toolkit import device as devices
from toolkit.settings import Settings, require


@dataclass(frozen=True)
class FLSettings(Settings):
    """The FedAvg recipe, from FL_model_generation/FL_model_for_<dataset>.py. The learning rate decays by
    LR_DECAY per local epoch and restarts each round; every client takes part in every round."""
    architecture: dict
    rounds: int
    local_epochs: int
    lr: float
    lr_decay: float
    momentum: float
    batch_size: int

    QUICK: ClassVar[dict] = {"ROUNDS": 2, "LOCAL_EPOCHS": 1}

    def check(self) -> None:
        for name in ("rounds", "local_epochs", "batch_size"):
            require(getattr(self, name) >= 1, name.upper(), getattr(self, name), "must be at least 1")
        require(self.lr > 0, "LR", self.lr, "must be positive")
        require(0 < self.lr_decay <= 1, "LR_DECAY", self.lr_decay, "must lie in (0, 1]")
        require(0 <= self.momentum < 1, "MOMENTUM", self.momentum, "must lie in [0, 1)")
        check_architecture(self.architecture)


def minibatches(size: int, batch_size: int, generator: torch.Generator):
    """Index tensors of one shuffled epoch."""
    return torch.randperm(size, generator=generator).split(batch_size)


def sgd_client_update(state_dict: dict, features: torch.Tensor, labels: torch.Tensor,
                      settings: FLSettings, generator: torch.Generator) -> dict:
    """Local training of one client: (weights, client data, settings) -> new weights (on the CPU).

    Pure apart from the generator, so another FL engine (Flower's ClientApp) or a DP variant can call or
    replace it; stacked_training trains many clients at once with the same steps."""
    device = devices.current()
    model = load_state(build_model(settings.architecture), state_dict, "the global model").to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    loss_fn = nn.CrossEntropyLoss()
    features, labels = features.to(device), labels.to(device)
    for epoch in range(settings.local_epochs):
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * settings.lr_decay ** epoch
        for batch in minibatches(len(labels), settings.batch_size, generator):
            optimizer.zero_grad()
            loss_fn(model(features[batch.to(device)]), labels[batch.to(device)]).backward()
            optimizer.step()
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
