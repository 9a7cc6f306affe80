"""The P2-Protection algorithm for one client (docs/NOTES.md section 2), vectorised.

1. poison label y*: the label whose loss gradient (w.r.t. one weight tensor) points furthest from
   the true label's, after normalising both;
2. soft target t = (1 - lambda) p + lambda e_{y*} with the largest lambda that keeps argmax p and
   moves the top probability by at most eps (closed form);
3. fine-tune the model toward t under the L2 distance between softmax output and target.
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from FL_model_generation.models import check_layer_names, predict_logits
from FL_model_generation.training import minibatches
from toolkit.errors import P2Error
from toolkit.settings import Settings, require

START_POINTS = ("global", "last_local")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
GRADIENT_CHUNK_ELEMENTS = 2 ** 25  # per-label gradients held at once (floats), bounds memory
TOP_MARGIN = 1e-5  # lead the predicted label keeps over the poison label in a soft target
STATEFUL_LAYERS = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)  # differ per call or mode
PREFIX_BATCH = 4096  # rows run through the frozen layers at once


@dataclass(frozen=True)
class P2Settings(Settings):
    """One P2 round, from defend/defend_<dataset>.py (docs/NOTES.md section 2). TRAINABLE lists
    parameter-name prefixes to fine-tune (empty: every layer)."""
    eps: float
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    trainable: tuple[str, ...]
    poison_weight: str
    start: str

    QUICK: ClassVar[dict] = {"EPOCHS": 2}

    def check(self) -> None:
        require(0 < self.eps <= 1, "EPS", self.eps, "must lie in (0, 1]")
        require(self.optimizer in OPTIMIZERS, "OPTIMIZER", self.optimizer, f"must be one of {sorted(OPTIMIZERS)}")
        require(self.start in START_POINTS, "START", self.start, f"must be one of {START_POINTS}")
        require(self.lr > 0, "LR", self.lr, "must be positive")
        require(self.epochs >= 1, "EPOCHS", self.epochs, "must be at least 1")
        require(self.batch_size >= 1, "BATCH_SIZE", self.batch_size, "must be at least 1")


def per_label_gradients(model: nn.Module, weight_name: str, features: torch.Tensor) -> torch.Tensor:
    """d CE(f(x_i), j) / d W for every example i and every label j: shape (N, C, *W.shape)."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    weight = params.pop(weight_name)

    def loss(w, x, label):
        logits = functional_call(model, ({**params, weight_name: w}, buffers), (x.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, label.unsqueeze(0))

    num_classes = predict_logits(model, features[:1]).shape[1]
    labels = torch.arange(num_classes)
    per_label = vmap(grad(loss), in_dims=(None, None, 0))
    return vmap(per_label, in_dims=(None, 0, None))(weight, features, labels)


def poison_labels(model: nn.Module, weight_name: str, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """y* = argmax_{j != y} ||u_j - u_y||^2 with u_j the normalised gradient of CE(f(x), j)."""
    check_layer_names(model, [weight_name], "P2 setting POISON_WEIGHT")
    model.eval()
    weight_size = dict(model.named_parameters())[weight_name].numel()
    num_classes = predict_logits(model, features[:1]).shape[1]
    chunk = max(1, GRADIENT_CHUNK_ELEMENTS // (weight_size * num_classes))
    chosen = []
    for start in range(0, len(labels), chunk):
        gradients = per_label_gradients(model, weight_name, features[start:start + chunk]).flatten(2)
        units = gradients / gradients.norm(dim=2, keepdim=True).clamp_min(1e-12)
        true = labels[start:start + chunk]
        true_units = units[torch.arange(len(true)), true].unsqueeze(1)
        distances = (units - true_units).pow(2).sum(2)
        distances[torch.arange(len(true)), true] = -torch.inf
        chosen.append(distances.argmax(1))
    return torch.cat(chosen)


def soft_targets(probs: torch.Tensor, poison: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (1 - lambda) p + lambda e_{y*} with the largest lambda in [0, 1] such that the argmax
    stays and the top probability moves by at most eps. Returns (targets, lambdas).

    With k = argmax p: if y* == k the top probability rises by lambda (1 - p_k), so
    lambda <= eps / (1 - p_k). Otherwise it falls by lambda p_k (lambda <= eps / p_k) and p_{y*}
    overtakes p_k at lambda = d / (1 + d), d = p_k - p_{y*}; we stop where t_k still leads t_{y*}
    by TOP_MARGIN, so float rounding can never flip the label.
    """
    rows = torch.arange(len(probs))
    top_prob, top = probs.max(1)
    poison_prob = probs[rows, poison]
    same = poison == top
    gap = top_prob - poison_prob
    tie = (gap - TOP_MARGIN).clamp_min(0) / (1 + gap)
    limit_same = eps / (1 - top_prob).clamp_min(1e-12)
    limit_other = torch.minimum(eps / top_prob, tie)
    lambdas = torch.where(same, limit_same, limit_other).clamp(0, 1)
    targets = (1 - lambdas).unsqueeze(1) * probs
    targets[rows, poison] += lambdas
    return targets, lambdas


def l2_target_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """sum_i || softmax(f(x_i)) - t_i ||_2 (the distance, not its square)."""
    return (logits.softmax(1) - targets).norm(dim=1).sum()


def fine_tune(model: nn.Module, features: torch.Tensor, targets: torch.Tensor, settings: P2Settings,
              generator: torch.Generator) -> None:
    """Fit the softmax output to the soft targets on the whole client dataset every epoch."""
    named = dict(model.named_parameters())
    unmatched = [prefix for prefix in settings.trainable if not any(name.startswith(prefix) for name in named)]
    if unmatched:
        raise P2Error(f"P2 setting TRAINABLE: {unmatched} match no parameter; the model has {list(named)}")
    for name, parameter in named.items():
        parameter.requires_grad_(not settings.trainable or name.startswith(settings.trainable))
    optimizer = OPTIMIZERS[settings.optimizer]([p for p in named.values() if p.requires_grad], lr=settings.lr)
    model.train()
    tail, inputs = split_frozen_prefix(model, features)
    for _ in range(settings.epochs):
        for batch in minibatches(len(targets), settings.batch_size, generator):
            optimizer.zero_grad()
            l2_target_loss(tail(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    for parameter in named.values():
        parameter.requires_grad_(True)


def split_frozen_prefix(model: nn.Module, features: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """(trainable tail of the model, its inputs): the leading layers that have nothing to train (the
    frozen convolutions of a CNN) are run once here instead of in every one of P2's epochs.

    Exact for deterministic layers; a model that is not a Sequential, or whose frozen part holds
    dropout or batch normalisation, is returned whole with the raw features.
    """
    if not isinstance(model, nn.Sequential):
        return model, features
    modules = list(model)
    cut = next((i for i, module in enumerate(modules) if any(p.requires_grad for p in module.parameters())),
               len(modules))
    if cut == 0 or any(isinstance(module, STATEFUL_LAYERS) for module in modules[:cut]):
        return model, features
    with torch.no_grad():
        inputs = torch.cat([model[:cut](features[start:start + PREFIX_BATCH])
                            for start in range(0, len(features), PREFIX_BATCH)])
    return model[cut:], inputs


def protect(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, settings: P2Settings,
            generator: torch.Generator) -> dict:
    """Run P2 on one client's model in place; return statistics of the round."""
    probs = predict_logits(model, features).softmax(1)
    poison = poison_labels(model, settings.poison_weight, features, labels)
    targets, lambdas = soft_targets(probs, poison, settings.eps)
    fine_tune(model, features, targets, settings, generator)
    after = predict_logits(model, features).softmax(1)
    return {"mean_lambda": lambdas.mean().item(),
            "labels_kept": (after.argmax(1) == probs.argmax(1)).float().mean().item(),
            "mean_top_prob_before": probs.max(1).values.mean().item(),
            "mean_top_prob_after": after.max(1).values.mean().item(),
            "mean_target_distance_after": (after - targets).norm(dim=1).mean().item()}
