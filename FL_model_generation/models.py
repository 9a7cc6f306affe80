"""Model architectures, built from a plain dict so checkpoints can record and rebuild them.

Layer names are stable and readable (fc1, conv1, ...) because experiment constants refer to
them: which weight drives P2's poison label, which layers P2 fine-tunes, which gradients the
white-box attack reads.
"""
import copy
from collections import OrderedDict

import torch
from torch import nn

from toolkit import device as devices
from toolkit.errors import P2Error
from toolkit.settings import SettingError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(sizes: list[int], activation: str = "relu") -> nn.Module:
    """Fully connected layers fc1..fcK with `activation` between them, logits out."""
    if activation not in ACTIVATIONS:
        raise P2Error(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if len(sizes) < 2 or any(isinstance(size, bool) or not isinstance(size, int) or size < 1 for size in sizes):
        raise P2Error(f"mlp sizes {sizes} must list at least two positive integers (inputs, ..., classes)")
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


def cnn(in_channels: int = 1, num_classes: int = 10, image_size: int = 28, channels: list[int] = (32, 64),
        hidden: list[int] = (512,), kernel_size: int = 5, padding: int = 0,
        input_mean: float = 0.0, input_std: float = 1.0) -> nn.Module:
    """Convolutions conv1..convK (each `kernel_size`, ReLU, 2x2 max-pool), then fc1..fcM, logits out.

    `padding` 0 is "valid" (each conv shrinks the side by kernel_size - 1), (kernel_size - 1) // 2 keeps
    it ("same", as TensorFlow models such as LEAF's). Layer names: scale, conv1, act1, pool1, conv2, ...,
    flatten, fc1, act, fc2, ...; `scale` normalises raw inputs to (x - input_mean) / input_std.
    Examples: LeNet (CIFAR-10 port) = channels (6, 16), hidden (120, 84); LEAF's FEMNIST CNN =
    channels (32, 64), padding 2, hidden (2048,).
    """
    if not channels or any(c < 1 for c in channels) or any(h < 1 for h in hidden) or kernel_size < 1:
        raise P2Error(f"cnn: channels {list(channels)}, hidden {list(hidden)} and kernel_size {kernel_size} "
                      f"must be positive (and at least one convolution)")
    layers = OrderedDict([("scale", Scale(input_mean, input_std))])
    side, act = image_size, 0
    for index, (fan_in, fan_out) in enumerate(zip([in_channels, *channels], channels), start=1):
        side = (side + 2 * padding - kernel_size + 1) // 2
        if side < 1:
            raise P2Error(f"cnn: {image_size}x{image_size} images shrink to nothing after conv{index}; "
                          f"use fewer convolutions, a smaller kernel or padding")
        act += 1
        layers[f"conv{index}"] = nn.Conv2d(fan_in, fan_out, kernel_size, padding=padding)
        layers[f"act{act}"] = nn.ReLU()
        layers[f"pool{index}"] = nn.MaxPool2d(2)
    layers["flatten"] = nn.Flatten()
    sizes = [channels[-1] * side * side, *hidden, num_classes]
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers[f"fc{index}"] = nn.Linear(fan_in, fan_out)
        if index < len(sizes) - 1:
            act += 1
            layers[f"act{act}"] = nn.ReLU()
    return nn.Sequential(layers)


def lenet(in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
          input_mean: float = 0.0, input_std: float = 1.0) -> nn.Module:
    """The original CIFAR-10 port: conv(6,5x5)-pool-conv(16,5x5)-pool-fc 120-84-classes."""
    return cnn(in_channels, num_classes, image_size, channels=(6, 16), hidden=(120, 84), kernel_size=5,
               padding=0, input_mean=input_mean, input_std=input_std)


BUILDERS = {"mlp": mlp, "lenet": lenet, "cnn": cnn}


def build_model(architecture: dict) -> nn.Module:
    """Build the model an architecture dict describes: {"kind": ..., **builder arguments}."""
    if not isinstance(architecture, dict):
        raise P2Error(f"an architecture is a dict {{'kind': ..., ...}}, not {architecture!r}")
    arguments = dict(architecture)
    kind = arguments.pop("kind", None)
    if kind not in BUILDERS:
        raise P2Error(f"unknown model kind {kind!r} in architecture {architecture}; known: {sorted(BUILDERS)}")
    try:
        return BUILDERS[kind](**arguments)
    except (TypeError, ValueError, RuntimeError) as error:
        raise P2Error(f"architecture {architecture} does not fit the {kind} builder: {error}") from None


def check_architecture(architecture: dict) -> None:
    """The ARCHITECTURE constant builds a model (raised as a SettingError naming it)."""
    try:
        build_model(architecture)
    except P2Error as error:
        raise SettingError("ARCHITECTURE", architecture, str(error)) from None


def check_fits(architecture: dict, input_shape: tuple[int, ...], num_classes: int, dataset: str) -> None:
    """The model takes the dataset's inputs and gives one logit per class, checked on one zero input."""
    model = build_model(architecture)
    try:
        with torch.no_grad():
            output = model(torch.zeros(1, *input_shape))
    except RuntimeError as error:
        raise SettingError("ARCHITECTURE", architecture,
                           f"does not take {dataset}'s inputs of shape {tuple(input_shape)} "
                           f"({str(error).splitlines()[0]})") from None
    if tuple(output.shape) != (1, num_classes):
        raise SettingError("ARCHITECTURE", architecture,
                           f"gives {output.shape[-1]} outputs but {dataset} has {num_classes} classes")


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
    """Logits of every row, computed on the current device, returned on the CPU (the model stays where it is)."""
    model.eval()
    device = devices.current()
    if device.type == "cpu":
        return torch.cat([model(features[start:start + batch_size]) for start in range(0, len(features), batch_size)])
    moved = copy.deepcopy(model).to(device)
    return torch.cat([moved(features[start:start + batch_size].to(device)).cpu()
                      for start in range(0, len(features), batch_size)])


def accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        return float("nan")
    return (predict_logits(model, features).argmax(1) == labels).float().mean().item()
