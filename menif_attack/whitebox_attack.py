"""The white-box gradient attack of Nasr et al. 2019 (the ML Privacy Meter design, docs/NOTES.md
§4): per-example gradients of chosen layers, the one-hot label and the loss feed an attack
network trained on examples whose membership the attacker knows.

The epoch kept and the decision threshold are chosen on the attacker's validation split, never on
the evaluation set (the original picked the best test batch at the best epoch).

An nn.Linear weight's per-example gradient is the outer product of the error at the layer's output and
the layer's input, so its branch is fed the two factors (RankOne) and never the (out x in) matrix: same
network, same outputs up to float rounding. Other gradients (convolutions, biases, gradients a target
perturbs) are materialised, as is every gradient with factorise=False, the reference path.
"""
import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from FL_model_generation.training import minibatches
from menif_attack.per_example_gradients import linear_factors, linear_weight_names, per_example_gradients
from toolkit.scoring import choose_threshold, roc_auc_score
from toolkit.errors import P2Error
from toolkit.settings import Settings, require

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
FUSED_OPTIMIZER = True  # one kernel per step over all weights (the heads hold millions); False: per-op, as before


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
class RankOne:
    """Per-example gradients of an nn.Linear weight kept as their factors, gradient_i = outer(errors_i,
    inputs_i): (out + in) values per example instead of out x in. Indexing, division by a scale and
    `shape` behave as on the (N, out, in) tensor it stands for."""
    errors: torch.Tensor   # (N, out): loss gradient w.r.t. the layer's output
    inputs: torch.Tensor   # (N, in): the layer's input

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.errors), self.errors.shape[1], self.inputs.shape[1]))

    def __getitem__(self, rows) -> "RankOne":
        return RankOne(self.errors[rows], self.inputs[rows])

    def __truediv__(self, scale) -> "RankOne":
        return RankOne(self.errors / scale, self.inputs)

    def dense(self) -> torch.Tensor:
        """The (N, out, in) gradients themselves (tests and the reference path)."""
        return self.errors.unsqueeze(2) * self.inputs.unsqueeze(1)


Gradient = torch.Tensor | RankOne


def square_norms(gradients: Gradient) -> torch.Tensor:
    """(N,) squared Frobenius norm of each example's gradient, as float64 since thousands are averaged; for
    RankOne from the factors, since ||outer(e, a)||^2 = ||e||^2 ||a||^2."""
    if isinstance(gradients, RankOne):
        return gradients.errors.double().pow(2).sum(1) * gradients.inputs.double().pow(2).sum(1)
    return torch.linalg.vector_norm(gradients, dim=(1, 2)).double().pow(2)


def select_rows(gradients: Gradient, rows: torch.Tensor, scale: torch.Tensor) -> Gradient:
    """gradients[rows] / scale as a fresh copy, divided in place (materialised gradients are large)."""
    if isinstance(gradients, RankOne):
        return RankOne(gradients.errors.index_select(0, rows).div_(scale), gradients.inputs.index_select(0, rows))
    return gradients.index_select(0, rows).div_(scale)


@dataclass
class AttackFeatures:
    """Inputs of the attack network for N examples: gradient matrices, one-hot labels, losses."""
    gradients: list[Gradient]       # one (N, rows, cols) tensor, or its RankOne factors, per layer
    labels: torch.Tensor            # (N, C) one-hot
    losses: torch.Tensor            # (N, 1)

    def __getitem__(self, rows) -> "AttackFeatures":
        return AttackFeatures([g[rows] for g in self.gradients], self.labels[rows], self.losses[rows])

    def __len__(self) -> int:
        return len(self.losses)

    def scaled_rows(self, rows: torch.Tensor, scales: torch.Tensor) -> "AttackFeatures":
        """Rows `rows`, each gradient layer divided by its scale and the loss by the last one, as a copy."""
        return AttackFeatures([select_rows(g, rows, scale) for g, scale in zip(self.gradients, scales)],
                              self.labels.index_select(0, rows), self.losses.index_select(0, rows).div_(scales[-1]))


def attack_features(model: nn.Module, layers: tuple[str, ...], features: torch.Tensor, labels: torch.Tensor,
                    num_classes: int, factorise: bool = True) -> AttackFeatures:
    """Per-example gradients of `layers`, one-hot labels and losses. With `factorise`, the gradients of
    nn.Linear weights come as RankOne factors (linear_factors) and only the others are materialised;
    without it every gradient is materialised (the reference, and what a target adding noise needs)."""
    candidates = linear_weight_names(model, list(layers)) if factorise else []
    factors, losses = linear_factors(model, candidates, features, labels) if candidates else ({}, None)
    dense = [name for name in layers if name not in factors]
    gradients = {name: RankOne(*pair) for name, pair in factors.items()}
    if dense:
        materialised, dense_losses = per_example_gradients(model, dense, features, labels)
        gradients.update({name: g.flatten(2) if g.dim() > 2 else g.unsqueeze(2) for name, g in materialised.items()})
        losses = dense_losses if losses is None else losses
    one_hot = nn.functional.one_hot(labels, num_classes).float()
    return AttackFeatures([gradients[name] for name in layers], one_hot, losses.unsqueeze(1))


class GradientBranch(nn.Module):
    """Conv2d(1 -> channels, kernel (1, cols)) over an (rows x cols) gradient, then FC 512-256.

    The convolution is written as the per-row linear map it is (same function, faster on CPU). On a
    rank-one gradient outer(e, a) that map is outer(e, A a) + b, computed without the (rows x cols) matrix."""

    def __init__(self, rows: int, cols: int, channels: int):
        super().__init__()
        self.row_map = nn.Linear(cols, channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(rows * channels, 512), nn.ReLU(),
                                  nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU())

    def forward(self, gradient: Gradient):
        if isinstance(gradient, RankOne):
            mapped_inputs = nn.functional.linear(gradient.inputs, self.row_map.weight)
            rows = torch.addcmul(self.row_map.bias, gradient.errors.unsqueeze(2), mapped_inputs.unsqueeze(1))
        else:
            rows = self.row_map(gradient)
        return self.head(torch.relu(rows))


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
        scaled = AttackFeatures([g / scale for g, scale in zip(inputs.gradients, self.scales)], inputs.labels,
                                inputs.losses / self.scales[-1])
        return self.score_scaled(scaled)

    def score_scaled(self, inputs: AttackFeatures):
        """The forward pass on inputs already divided by `scales` (AttackFeatures.scaled_rows): training
        divides its examples once, not once per epoch."""
        parts = [branch(g) for branch, g in zip(self.gradient_branches, inputs.gradients)]
        parts += [self.label_branch(inputs.labels), self.loss_branch(inputs.losses)]
        return self.encoder(torch.cat(parts, 1)).squeeze(1)


def feature_scales(inputs: AttackFeatures, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Root mean square of each gradient layer and of the loss over `rows` (default: all), brings every
    input to unit scale. Per-example norms first, so neither form of gradient is copied or squared whole."""
    rows = torch.arange(len(inputs)) if rows is None else rows
    values = [square_norms(g)[rows].mean() / (g.shape[1] * g.shape[2]) for g in inputs.gradients]
    values.append(inputs.losses[rows].double().pow(2).mean())
    return torch.stack(values).sqrt().float().clamp_min(1e-12)


@torch.no_grad()
def predict(model: WhiteboxAttackModel, inputs: AttackFeatures, batch_size: int = 512, scaled: bool = False
            ) -> np.ndarray:
    """Membership scores; `scaled`: the inputs are already divided by the model's scales."""
    model.eval()
    score = model.score_scaled if scaled else model
    return torch.cat([score(inputs[slice(start, start + batch_size)])
                      for start in range(0, len(inputs), batch_size)]).numpy()


def train_attack(inputs: AttackFeatures, is_member: torch.Tensor, settings: WhiteboxSettings,
                 generator: torch.Generator) -> tuple[WhiteboxAttackModel, float, dict]:
    """Train on a split of the attacker's known examples; keep the epoch with the best validation AUC.

    Returns (model, threshold chosen on validation, training log)."""
    order = torch.randperm(len(is_member), generator=generator)
    num_val = max(2, int(round(settings.val_fraction * len(order))))
    val_rows, train_rows = order[:num_val], order[num_val:]
    if is_member[val_rows].unique().numel() < 2:
        raise P2Error("the attacker's validation split holds one class only: raise KNOWN_SIZE or VAL_FRACTION")
    scales = feature_scales(inputs, train_rows)
    train, val = inputs.scaled_rows(train_rows, scales), inputs.scaled_rows(val_rows, scales)
    shapes = [tuple(g.shape[1:]) for g in inputs.gradients]
    model = WhiteboxAttackModel(shapes, inputs.labels.shape[1], settings.conv_channels, scales)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr, fused=FUSED_OPTIMIZER)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, settings.lr_decay)
    targets, val_members = is_member[train_rows].float(), is_member[val_rows].numpy()
    best = (-1.0, None, 0)
    history = []
    for epoch in tqdm(range(1, settings.epochs + 1), desc="gradient attack", unit="epoch", leave=False):
        model.train()
        for batch in minibatches(len(targets), settings.batch_size, generator):
            optimizer.zero_grad()
            nn.functional.mse_loss(model.score_scaled(train[batch]), targets[batch]).backward()
            optimizer.step()
        scheduler.step()
        val_auc = roc_auc_score(val_members, predict(model, val, scaled=True))
        history.append(val_auc)
        if val_auc > best[0]:
            best = (val_auc, copy.deepcopy(model.state_dict()), epoch)
    model.load_state_dict(best[1])
    threshold = choose_threshold(predict(model, val, scaled=True), val_members)
    return model, threshold, {"best_epoch": best[2], "best_val_auc": best[0], "val_auc_per_epoch": history}
