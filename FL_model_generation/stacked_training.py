"""Many independent trainings of one architecture, each step taken for all of them in one vectorised call.

The clients of a FedAvg round, the clients' P2 fine-tuning, shadow models and reference models are
independent trainings of one architecture. Here their parameters are stacked along a first "model" axis;
one `vmap`ped `functional_call` computes every model's outputs on its own minibatch, one backward pass
gives every model's own gradients (the models share nothing, so the gradient of the summed loss with
respect to model m's parameters is model m's gradient), and the optimizer update is applied to the
stacks. Each model keeps its own optimizer state and its own minibatch order: model m's batches come from
its own generator exactly as `training.minibatches` draws them in the one-model loop, so the result equals
training the models one after another, up to float summation order. Models may hold different numbers
of examples: a model whose epoch has fewer batches sits out the remaining steps untouched.

A loss is per example (`per_example_loss`, reduced by the recipe's mean or sum), or, where a defense's rule
looks at each model's whole batch (RelaxLoss compares each batch's mean loss with a target level),
`batch_loss(outputs, targets, weight, epoch)`, which maps the stacked batch to one loss per model.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from toolkit import device as devices
from toolkit.errors import P2Error


@dataclass(frozen=True)
class Recipe:
    """How each model trains: optimizer ("sgd" with momentum, or "adam" with PyTorch's defaults), learning
    rate decayed by `lr_decay` per epoch, epochs, batch size, and how per-example losses become the
    batch loss ("mean", as nn.CrossEntropyLoss; or "sum")."""
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    momentum: float = 0.0
    lr_decay: float = 1.0
    reduction: str = "mean"

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam") or self.reduction not in ("mean", "sum"):
            raise P2Error(f"unknown optimizer {self.optimizer!r} or reduction {self.reduction!r}")


ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
UPDATE_SLICE = 1 << 15  # elements of a tensor the optimizer updates at once: its operands stay in a core's cache
BatchLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


def cross_entropy(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, labels, reduction="none")


def train_stacked(module: nn.Module, states: list[dict], inputs: list[torch.Tensor], targets: list[torch.Tensor],
                  recipe: Recipe, generators: list[torch.Generator],
                  per_example_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy,
                  trainable: Callable[[str], bool] = lambda name: True,
                  batch_loss: BatchLoss | None = None) -> list[dict]:
    """Train len(states) copies of `module`, copy m from states[m] on (inputs[m], targets[m]) with
    generators[m]; parameters for which `trainable(name)` is False stay fixed. Returns the new states.

    `batch_loss(outputs (M, B, C), targets (M, B, ...), weight (M, B), epoch)` -> (M,), when given, replaces
    `per_example_loss` and the recipe's reduction: weight[m, i] is 1 for model m's real examples and 0 for
    padding (a model whose epoch ran out of batches has none), `epoch` the recipe's epoch (from 0)."""
    count = len(states)
    if not count == len(inputs) == len(targets) == len(generators):
        raise ValueError("train_stacked needs one state, dataset and generator per model")
    device = devices.current()
    module.eval()  # the models here have no dropout or batch norm; eval keeps vmap free of in-place buffers
    names = [name for name, _ in module.named_parameters()]
    learn = [name for name in names if trainable(name)]
    stacked = {name: torch.stack([state[name] for state in states]).detach().to(device) for name in states[0]}
    for name in learn:
        stacked[name].requires_grad_(True)
    sizes = [len(x) for x in inputs]
    x_all, y_all = _padded(inputs).to(device), _padded(targets).to(device)
    optimizer = StackedOptimizer(recipe, [stacked[name] for name in learn], count)

    def forward(parameters, x):
        return functional_call(module, parameters, (x,))

    rows = torch.arange(count, device=device).unsqueeze(1)
    batches = [math.ceil(size / recipe.batch_size) for size in sizes]
    for epoch in range(recipe.epochs):
        lr = recipe.lr * recipe.lr_decay ** epoch
        orders = [torch.randperm(size, generator=generator) for size, generator in zip(sizes, generators)]
        for step in range(max(batches)):
            index = torch.zeros(count, recipe.batch_size, dtype=torch.long)
            weight = torch.zeros(count, recipe.batch_size)
            for m, order in enumerate(orders):
                chosen = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                index[m, :len(chosen)] = chosen
                weight[m, :len(chosen)] = 1.0
            index, weight = index.to(device), weight.to(device)
            active = weight.sum(1) > 0
            batch = x_all[rows, index]
            if count == 1:  # one model: a plain call, no vmap
                outputs = forward({name: tensor[0] for name, tensor in stacked.items()}, batch[0]).unsqueeze(0)
            else:
                outputs = vmap(forward)(stacked, batch)
            batch_targets = y_all[rows, index]
            if batch_loss is not None:
                per_model = batch_loss(outputs, batch_targets, weight, epoch) * active
            else:
                losses = per_example_loss(outputs.flatten(0, 1), batch_targets.flatten(0, 1)).view(count, -1)
                per_model = (losses * weight).sum(1)
                if recipe.reduction == "mean":
                    per_model = per_model / weight.sum(1).clamp_min(1)
            # a vmapped Linear's weight gradient comes back transposed in memory; the optimizer's elementwise
            # operations run several times faster on contiguous operands, so copy once here (same values)
            gradients = [gradient.contiguous()
                         for gradient in torch.autograd.grad(per_model.sum(), [stacked[name] for name in learn])]
            optimizer.step(gradients, lr, active)
    return [{name: tensor[m].detach().cpu().clone() for name, tensor in stacked.items()} for m in range(count)]


def _padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(M, largest size, ...) with zeros after each tensor's own rows."""
    largest = max(len(tensor) for tensor in tensors)
    result = tensors[0].new_zeros((len(tensors), largest, *tensors[0].shape[1:]))
    for m, tensor in enumerate(tensors):
        result[m, :len(tensor)] = tensor
    return result


class StackedOptimizer:
    """torch.optim.SGD (momentum, no dampening) or Adam (PyTorch's defaults), applied to (M, ...) stacks with
    the same operations in the same order. When every model takes the step (the usual case), the update is
    PyTorch's own in-place sequence; a model that is not `active` keeps its parameters and state."""

    def __init__(self, recipe: Recipe, parameters: list[torch.Tensor], count: int):
        self.recipe, self.parameters = recipe, parameters
        self.steps = torch.zeros(count, device=parameters[0].device)
        self.first = [torch.zeros_like(p) for p in parameters]
        self.second = [torch.zeros_like(p) for p in parameters] if recipe.optimizer == "adam" else None

    @torch.no_grad()
    def step(self, gradients: tuple[torch.Tensor, ...], lr: float, active: torch.Tensor) -> None:
        self.steps += active.float()
        if bool(active.all()) and bool((self.steps == self.steps[0]).all()):
            for index, (parameter, gradient) in enumerate(zip(self.parameters, gradients)):
                self._in_place(index, parameter, gradient, lr, int(self.steps[0]))
            return
        for m in torch.nonzero(active).flatten().tolist():  # models of unequal sizes: some sit this step out
            for index, (parameter, gradient) in enumerate(zip(self.parameters, gradients)):
                self._in_place(index, parameter[m], gradient[m], lr, int(self.steps[m]), model=m)

    def _in_place(self, index: int, parameter, gradient, lr: float, step: int, model: int | None = None) -> None:
        first = self.first[index] if model is None else self.first[index][model]
        second = None if self.second is None else self.second[index] if model is None else self.second[index][model]
        tensors = [parameter, gradient, first] + ([] if second is None else [second])
        if not all(tensor.is_contiguous() for tensor in tensors):
            self._update(*tensors, lr=lr, step=step)
            return
        # elementwise, so slices give the same bits; a slice's operands stay in cache across the update's
        # five or six operations instead of streaming a whole stack from memory for each
        for piece in zip(*(tensor.view(-1).split(UPDATE_SLICE) for tensor in tensors)):
            self._update(*piece, lr=lr, step=step)

    def _update(self, parameter, gradient, first, second=None, *, lr: float, step: int) -> None:
        if self.recipe.optimizer == "sgd":
            if self.recipe.momentum == 0:
                parameter.add_(gradient, alpha=-lr)
                return
            first.mul_(self.recipe.momentum).add_(gradient)  # a zero buffer makes the first step's the gradient
            parameter.add_(first, alpha=-lr)
            return
        (beta1, beta2) = ADAM_BETAS
        first.lerp_(gradient, 1 - beta1)
        second.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
        bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
        denominator = (second.sqrt() / math.sqrt(bias2)).add_(ADAM_EPS)
        parameter.addcdiv_(first, denominator, value=-lr / bias1)
