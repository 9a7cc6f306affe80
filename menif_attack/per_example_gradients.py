"""Exact per-example gradients of the cross-entropy loss, vectorised with torch.func (no Python loop
per example). The original summed gradients across examples by never zeroing them; here each
example's gradient is its own."""
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from FL_model_generation.models import check_layer_names

CHUNK_ELEMENTS = 2 ** 26  # gradient floats computed per vectorised call, bounds peak memory


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
