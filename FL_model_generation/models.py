"""Model architectures, built from a plain dict so checkpoints can record and rebuild them.

Layer names are stable and readable (fc1, conv1, ...) because experiment constants refer to
them: which weight drives P2's poison label, which layers P2 fine-tunes, which gradients the
white-box attack reads.
"""
from collections import OrderedDict

import torch
from torch import nn

from toolkit.errors import P2Error

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(sizes: list[int], activation: str = "relu") -> nn.Module:
    """Fully connected layers fc1..fcK with `activation` between them, logits out."""
    if activation not in ACTIVATIONS:
        raise P2Error(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers = OrderedDict()
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers[f"fc{index}"] = nn.Linear(fan_in, fan_out)
        if index < len(sizes) - 1:
            layers[f"act{index}"] = ACTIVATIONS[activation]()
    return nn.Sequential(layers)


class Scale(nn.Module):
    """Fixed affine input normalisation (x - mean) / std, part of the model so inputs stay raw."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        return (x - self.mean) / self.std


def lenet(in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
          input_mean: float = 0.0, input_std: float = 1.0) -> nn.Module:
    """The original CIFAR-10 port: conv(6,5x5)-pool-conv(16,5x5)-pool-fc 120-84-classes."""
    side = ((image_size - 4) // 2 - 4) // 2
    return nn.Sequential(OrderedDict([
        ("scale", Scale(input_mean, input_std)),
        ("conv1", nn.Conv2d(in_channels, 6, 5)), ("act1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("act2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(16 * side * side, 120)), ("act3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)), ("act4", nn.ReLU()),
        ("fc3", nn.Linear(84, num_classes)),
    ]))


BUILDERS = {"mlp": mlp, "lenet": lenet}


def build_model(architecture: dict) -> nn.Module:
    """Build the model an architecture dict describes: {"kind": ..., **builder arguments}."""
    arguments = dict(architecture)
    kind = arguments.pop("kind", None)
    if kind not in BUILDERS:
        raise P2Error(f"unknown model kind {kind!r} in architecture {architecture}; known: {sorted(BUILDERS)}")
    try:
        return BUILDERS[kind](**arguments)
    except TypeError as error:
        raise P2Error(f"architecture {architecture} does not fit the {kind} builder: {error}") from None


def load_state(model: nn.Module, state_dict: dict, source: str) -> nn.Module:
    """Load weights, turning a shape or name mismatch into a message that names the file."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise P2Error(f"{source} does not fit the expected architecture ({first_line}); "
                      f"rerun the stage that wrote it") from None
    return model


def check_layer_names(model: nn.Module, names: list[str], what: str) -> None:
    """Fail early, with the valid choices, when a constant names a parameter the model lacks."""
    known = dict(model.named_parameters())
    missing = [name for name in names if name not in known]
    if missing:
        raise P2Error(f"{what}: {missing} not in the model; its parameters are {list(known)}")


@torch.no_grad()
def predict_logits(model: nn.Module, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    return torch.cat([model(features[start:start + batch_size]) for start in range(0, len(features), batch_size)])


def accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        return float("nan")
    return (predict_logits(model, features).argmax(1) == labels).float().mean().item()
