"""Exact per-example gradients of the cross-entropy loss, vectorised (no Python loop per example).
The original summed gradients across examples by never zeroing them; here each example's gradient
is its own.

Two ways to get them:
- `per_example_gradients` materialises any parameter's gradients with torch.func (the reference).
- `linear_factors` keeps an nn.Linear weight's gradient as the two vectors whose outer product it is,
  delta_i a_i^T (error at the layer's output, layer input), from one batched forward and backward:
  (out + in) values per example instead of out x in, and no vmap.
"""
from collections import Counter
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from FL_model_generation.models import check_layer_names
from toolkit.errors import P2Error

CHUNK_ELEMENTS = 2 ** 26  # gradient floats computed per vectorised call, bounds peak memory
FACTOR_CHUNK = 1024       # examples per batched forward and backward in linear_factors, bounds activations


def per_example_gradients(model: nn.Module, layer_names: list[str], features: torch.Tensor,
                          labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """({layer: gradients (N, *shape)}, losses (N,)) of CE(f(x_i), y_i) w.r.t. the named parameters."""
    check_layer_names(model, layer_names, "gradient attack LAYERS")
    model.eval()
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    chosen = {name: params[name] for name in layer_names}

    def loss(weights, x, y):
        logits = functional_call(model, ({**params, **weights}, buffers), (x.unsqueeze(0),))
        value = nn.functional.cross_entropy(logits, y.unsqueeze(0))
        return value, value

    per_example = vmap(grad(loss, has_aux=True), in_dims=(None, 0, 0))
    chunk = max(1, CHUNK_ELEMENTS // sum(p.numel() for p in chosen.values()))
    gradient_parts, loss_parts = {name: [] for name in layer_names}, []
    for start in range(0, len(labels), chunk):
        gradients, losses = per_example(chosen, features[start:start + chunk], labels[start:start + chunk])
        for name in layer_names:
            gradient_parts[name].append(gradients[name])
        loss_parts.append(losses)
    return {name: torch.cat(parts) for name, parts in gradient_parts.items()}, torch.cat(loss_parts)


def couples_examples(model: nn.Module) -> bool:
    """Whether, in eval mode, one example's output can depend on the others in its batch: batch norm
    without running statistics normalises with the batch's own. Batched gradients are then not per-example."""
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None
               for module in model.modules())


def linear_weight_names(model: nn.Module, layer_names: list[str]) -> list[str]:
    """Those of `layer_names` that are the weight of a plain nn.Linear owning it alone (not tied to another
    module): the candidates for `linear_factors`. None when the model couples the examples of a batch
    (couples_examples)."""
    check_layer_names(model, layer_names, "gradient attack LAYERS")
    if couples_examples(model):
        return []
    modules = dict(model.named_modules())
    uses = Counter(id(parameter) for _, parameter in model.named_parameters(remove_duplicate=False))
    chosen = []
    for name in layer_names:
        owner, _, leaf = name.rpartition(".")
        module = modules.get(owner)
        if leaf == "weight" and type(module) is nn.Linear and uses[id(module.weight)] == 1:
            chosen.append(name)
    return chosen


def linear_factors(model: nn.Module, layer_names: list[str], features: torch.Tensor, labels: torch.Tensor
                   ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """({layer: (errors (N, out), inputs (N, in))}, losses (N,)) such that example i's gradient of
    CE(f(x_i), y_i) w.r.t. the layer's weight is outer(errors[i], inputs[i]).

    One batched pass per chunk: a forward hook keeps each layer's input and adds a zero probe to its
    output, and the gradient of the summed loss w.r.t. the probe is the output-side error. Row i of it
    is example i's own because, with fixed weights, in eval mode and without batch statistics (checked),
    example i's loss depends on example i only. A layer whose module is not called exactly once on a
    2-D input per forward has a gradient that is a sum of outer products: it is left out of the result
    (the caller materialises it)."""
    if couples_examples(model):
        raise P2Error("the model normalises with batch statistics in eval mode: its batched gradients are not "
                      "per-example, use per_example_gradients")
    not_linear = sorted(set(layer_names) - set(linear_weight_names(model, layer_names)))
    if not_linear:
        raise P2Error(f"{not_linear} are not the weight of one nn.Linear: use per_example_gradients")
    model.eval()
    modules = dict(model.named_modules())
    owners = {name: modules[name.rpartition(".")[0]] for name in layer_names}
    rank_one, parts, loss_parts = list(layer_names), {name: [] for name in layer_names}, []

    def keep(module, args, output, name, seen):
        probe = torch.zeros_like(output, requires_grad=True)
        seen[name].append((args[0].detach(), probe))
        return output + probe

    for start in range(0, len(labels), FACTOR_CHUNK):
        seen = {name: [] for name in layer_names}
        handles = [owners[name].register_forward_hook(partial(keep, name=name, seen=seen)) for name in layer_names]
        try:
            with torch.enable_grad():
                losses = nn.functional.cross_entropy(model(features[start:start + FACTOR_CHUNK]),
                                                     labels[start:start + FACTOR_CHUNK], reduction="none")
        finally:
            for handle in handles:
                handle.remove()
        rank_one = [name for name in rank_one if len(seen[name]) == 1 and seen[name][0][0].dim() == 2]
        if rank_one:
            probes = [seen[name][0][1] for name in rank_one]
            errors = torch.autograd.grad(losses.sum(), probes, allow_unused=True)
            for name, probe, error in zip(rank_one, probes, errors):
                parts[name].append((torch.zeros_like(probe) if error is None else error, seen[name][0][0]))
        loss_parts.append(losses.detach())
    factors = {name: tuple(torch.cat(columns) for columns in zip(*parts[name])) for name in rank_one}
    return factors, torch.cat(loss_parts)
