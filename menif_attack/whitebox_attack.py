"""The white-box gradient attack of Nasr et al. 2019 (the ML Privacy Meter design, P2_REFERENCE.md
section 4): per-example gradients of chosen layers, the one-hot label and the loss feed an attack
network trained on examples whose membership the attacker knows.

The epoch kept and the decision threshold are chosen on the attacker's validation split, never on
the evaluation set (the original picked the best test batch at the best epoch).
"""
import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from FL_model_generation.training import minibatches
from menif_attack.per_example_gradients import per_example_gradients
from toolkit.scoring import choose_threshold, roc_auc_score
from toolkit.errors import P2Error
from toolkit.settings import Settings, require

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass(frozen=True)
class WhiteboxSettings(Settings):
    """The gradient attack, from menif_attack/membership_attack_<dataset>.py: which layers' gradients it
    reads, the width of its gradient branches, and how its network is trained."""
    layers: tuple[str, ...]
    conv_channels: int
    optimizer: str
    lr: float
    lr_decay: float
    epochs: int
    batch_size: int
    val_fraction: float

    QUICK: ClassVar[dict] = {"EPOCHS": 2, "CONV_CHANNELS": 10}

    def check(self) -> None:
        require(len(self.layers) >= 1, "LAYERS", self.layers, "must name at least one weight, e.g. 'fc1.weight'")
        require(self.optimizer in OPTIMIZERS, "OPTIMIZER", self.optimizer, f"must be one of {sorted(OPTIMIZERS)}")
        require(0 < self.val_fraction < 1, "VAL_FRACTION", self.val_fraction, "must lie in (0, 1)")
        for name in ("conv_channels", "epochs", "batch_size"):
            require(getattr(self, name) >= 1, name.upper(), getattr(self, name), "must be at least 1")
        require(self.lr > 0, "LR", self.lr, "must be positive")
        require(0 < self.lr_decay <= 1, "LR_DECAY", self.lr_decay, "must lie in (0, 1]")


@dataclass
class AttackFeatures:
    """Inputs of the attack network for N examples: gradient matrices, one-hot labels, losses."""
    gradients: list[torch.Tensor]   # one (N, rows, cols) tensor per layer
    labels: torch.Tensor            # (N, C) one-hot
    losses: torch.Tensor            # (N, 1)

    def __getitem__(self, rows) -> "AttackFeatures":
        return AttackFeatures([g[rows] for g in self.gradients], self.labels[rows], self.losses[rows])


def attack_features(model: nn.Module, layers: tuple[str, ...], features: torch.Tensor, labels: torch.Tensor,
                    num_classes: int) -> AttackFeatures:
    gradients, losses = per_example_gradients(model, list(layers), features, labels)
    matrices = [gradients[name].flatten(2) if gradients[name].dim() > 2 else gradients[name].unsqueeze(2)
                for name in layers]
    one_hot = nn.functional.one_hot(labels, num_classes).float()
    return AttackFeatures(matrices, one_hot, losses.unsqueeze(1))


class GradientBranch(nn.Module):
    """Conv2d(1 -> channels, kernel (1, cols)) over an (rows x cols) gradient, then FC 512-256.

    The convolution is written as the per-row linear map it is (same function, faster on CPU)."""

    def __init__(self, rows: int, cols: int, channels: int):
        super().__init__()
        self.row_map = nn.Linear(cols, channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(rows * channels, 512), nn.ReLU(),
                                  nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU())

    def forward(self, gradient):
        return self.head(torch.relu(self.row_map(gradient)))


class WhiteboxAttackModel(nn.Module):
    """Gradient branches + label branch (128-64) + loss branch (100-64) -> encoder 256-128-64-1."""

    def __init__(self, shapes: list[tuple[int, int]], num_classes: int, channels: int, scales: torch.Tensor):
        super().__init__()
        self.register_buffer("scales", scales)  # per-layer gradient scale, then the loss scale
        self.gradient_branches = nn.ModuleList(GradientBranch(rows, cols, channels) for rows, cols in shapes)
        self.label_branch = nn.Sequential(nn.Linear(num_classes, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.loss_branch = nn.Sequential(nn.Linear(1, 100), nn.ReLU(), nn.Linear(100, 64), nn.ReLU())
        width = 256 * len(shapes) + 128
        self.encoder = nn.Sequential(nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                     nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())

    def forward(self, inputs: AttackFeatures):
        parts = [branch(g / scale) for branch, g, scale in zip(self.gradient_branches, inputs.gradients, self.scales)]
        parts += [self.label_branch(inputs.labels), self.loss_branch(inputs.losses / self.scales[-1])]
        return self.encoder(torch.cat(parts, 1)).squeeze(1)


def feature_scales(inputs: AttackFeatures) -> torch.Tensor:
    """Root mean square of each gradient layer and of the loss: brings every input to unit scale."""
    values = [g.pow(2).mean().sqrt() for g in inputs.gradients] + [inputs.losses.pow(2).mean().sqrt()]
    return torch.stack(values).clamp_min(1e-12)


@torch.no_grad()
def predict(model: WhiteboxAttackModel, inputs: AttackFeatures, batch_size: int = 512) -> np.ndarray:
    model.eval()
    return torch.cat([model(inputs[slice(start, start + batch_size)])
                      for start in range(0, len(inputs.losses), batch_size)]).numpy()


def train_attack(inputs: AttackFeatures, is_member: torch.Tensor, settings: WhiteboxSettings,
                 generator: torch.Generator) -> tuple[WhiteboxAttackModel, float, dict]:
    """Train on a split of the attacker's known examples; keep the epoch with the best validation AUC.

    Returns (model, threshold chosen on validation, training log)."""
    order = torch.randperm(len(is_member), generator=generator)
    num_val = max(2, int(round(settings.val_fraction * len(order))))
    val_rows, train_rows = order[:num_val], order[num_val:]
    if is_member[val_rows].unique().numel() < 2:
        raise P2Error("the attacker's validation split holds one class only: raise KNOWN_SIZE or VAL_FRACTION")
    train, val = inputs[train_rows], inputs[val_rows]
    shapes = [tuple(g.shape[1:]) for g in inputs.gradients]
    model = WhiteboxAttackModel(shapes, inputs.labels.shape[1], settings.conv_channels, feature_scales(train))
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, settings.lr_decay)
    targets, val_members = is_member[train_rows].float(), is_member[val_rows].numpy()
    best = (-1.0, None, 0)
    history = []
    for epoch in tqdm(range(1, settings.epochs + 1), desc="gradient attack", unit="epoch", leave=False):
        model.train()
        for batch in minibatches(len(targets), settings.batch_size, generator):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(train[batch]), targets[batch]).backward()
            optimizer.step()
        scheduler.step()
        val_auc = roc_auc_score(val_members, predict(model, val))
        history.append(val_auc)
        if val_auc > best[0]:
            best = (val_auc, copy.deepcopy(model.state_dict()), epoch)
    model.load_state_dict(best[1])
    threshold = choose_threshold(predict(model, val), val_members)
    return model, threshold, {"best_epoch": best[2], "best_val_auc": best[0], "val_auc_per_epoch": history}
