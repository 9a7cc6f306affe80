"""The P2-Protection algorithm for one client (docs/NOTES.md section 2), vectorised.

1. poison label y*: the label whose loss gradient (w.r.t. one weight tensor) points furthest from
   the true label's, after normalising both;
2. soft target t = (1 - lambda) p + lambda e_{y*} with the largest lambda that keeps argmax p and
   moves the top probability by at most eps (closed form);
3. fine-tune the model toward t under the L2 distance between softmax output and target.
"""
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from FL_model_generation.fedavg import fedavg
from FL_model_generation.models import build_model, check_layer_names, load_state, predict_logits
from FL_model_generation.stacked_training import Recipe, train_stacked
from toolkit import device as devices
from toolkit.errors import P2Error
from toolkit.settings import Settings, require

START_POINTS = ("global", "last_local")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
GRADIENT_CHUNK_ELEMENTS = 2 ** 25  # per-label gradients held at once (floats), bounds memory
MIN_MARGIN = 1e-5  # smallest lead of the predicted label over the poison label in a soft target (float rounding)
STATEFUL_LAYERS = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)  # differ per call or mode
PREFIX_BATCH = 4096  # rows run through the frozen layers at once
STACKABLE = (nn.Linear, nn.ReLU, nn.Tanh, nn.Flatten)  # a tail of these fine-tunes many clients in one call


@dataclass(frozen=True)
class P2Settings(Settings):
    """P2, from defend/defend_<dataset>.py (docs/NOTES.md §2). TRAINABLE lists parameter-name prefixes to
    fine-tune (empty: every layer). LABEL_MARGIN is the lead, in probability, that the predicted label keeps
    over the poison label in every soft target. ROUNDS spreads the EPOCHS of fine-tuning over that many
    federated rounds, the clients' models averaged after each (1: the paper's single round)."""
    eps: float
    label_margin: float
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    rounds: int
    trainable: tuple[str, ...]
    poison_weight: str
    start: str

    QUICK: ClassVar[dict] = {"EPOCHS": lambda epochs: 2, "ROUNDS": lambda rounds: min(rounds, 2)}

    def check(self) -> None:
        require(0 < self.eps <= 1, "EPS", self.eps, "must lie in (0, 1]")
        require(self.optimizer in OPTIMIZERS, "OPTIMIZER", self.optimizer, f"must be one of {sorted(OPTIMIZERS)}")
        require(self.start in START_POINTS, "START", self.start, f"must be one of {START_POINTS}")
        require(self.lr > 0, "LR", self.lr, "must be positive")
        require(self.epochs >= 1, "EPOCHS", self.epochs, "must be at least 1")
        require(self.batch_size >= 1, "BATCH_SIZE", self.batch_size, "must be at least 1")
        require(MIN_MARGIN <= self.label_margin < 1, "LABEL_MARGIN", self.label_margin,
                f"must lie in [{MIN_MARGIN:g}, 1) (a probability)")
        require(self.rounds >= 1 and self.epochs % self.rounds == 0, "ROUNDS", self.rounds,
                f"must be at least 1 and divide EPOCHS = {self.epochs} (each round fine-tunes EPOCHS / ROUNDS epochs)")

    @property
    def epochs_per_round(self) -> int:
        return self.epochs // self.rounds


@dataclass(frozen=True)
class P2SweepSettings(Settings):
    """The grid `defend/p2_sweep.py` runs, from defend/defend_<dataset>.py: every EPS in SWEEP_EPS with every
    number of rounds in SWEEP_ROUNDS, the other P2 constants as they are."""
    sweep_eps: tuple[float, ...]
    sweep_rounds: tuple[int, ...]

    QUICK: ClassVar[dict] = {"SWEEP_EPS": lambda values: tuple(values[:2]), "SWEEP_ROUNDS": lambda values: (1, 2)}

    def check(self) -> None:
        require(len(self.sweep_eps) >= 1 and all(0 < eps <= 1 for eps in self.sweep_eps), "SWEEP_EPS",
                self.sweep_eps, "must list values in (0, 1]")
        require(len(self.sweep_rounds) >= 1 and all(rounds >= 1 for rounds in self.sweep_rounds), "SWEEP_ROUNDS",
                self.sweep_rounds, "must list whole numbers of rounds >= 1")

    def grid(self, base: P2Settings) -> list[P2Settings]:
        """The P2 settings of every point of the grid (each checked, e.g. ROUNDS must divide EPOCHS)."""
        from dataclasses import replace

        return [replace(base, eps=eps, rounds=rounds) for eps in self.sweep_eps for rounds in self.sweep_rounds]


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


def equivalent_gradient(model: nn.Module, weight_name: str) -> str:
    """The parameter whose normalised per-label gradients give the same distances as `weight_name`'s.

    A Linear weight's gradient is the outer product of the output-side error delta_j and the layer input a,
    which does not depend on the label j: normalised, it is unit(delta_j) times the fixed unit(a), so the
    distances (and the label chosen) are those of the bias gradient delta_j, at a fraction of the cost
    (docs/NOTES.md §2). Convolution weights sum such products over positions and keep their own path."""
    layer_name, _, kind = weight_name.rpartition(".")
    layer = dict(model.named_modules()).get(layer_name)
    if kind == "weight" and isinstance(layer, nn.Linear) and layer.bias is not None:
        return f"{layer_name}.bias"
    return weight_name


def poison_labels(model: nn.Module, weight_name: str, features: torch.Tensor, labels: torch.Tensor,
                  shortcut: bool = True) -> torch.Tensor:
    """y* = argmax_{j != y} ||u_j - u_y||^2 with u_j the normalised gradient of CE(f(x), j) w.r.t. the weight
    `weight_name` (through `equivalent_gradient` unless `shortcut` is False)."""
    check_layer_names(model, [weight_name], "P2 setting POISON_WEIGHT")
    model.eval()
    if shortcut:
        weight_name = equivalent_gradient(model, weight_name)
    device = devices.current()
    if device.type != "cpu":
        model = copy.deepcopy(model).to(device)
    weight_size = dict(model.named_parameters())[weight_name].numel()
    num_classes = predict_logits(model, features[:1]).shape[1]
    chunk = max(1, GRADIENT_CHUNK_ELEMENTS // (weight_size * num_classes))
    chosen = []
    for start in range(0, len(labels), chunk):
        gradients = per_label_gradients(model, weight_name, features[start:start + chunk].to(device)).flatten(2)
        units = gradients / gradients.norm(dim=2, keepdim=True).clamp_min(1e-12)
        true = labels[start:start + chunk].to(device)
        true_units = units[torch.arange(len(true)), true].unsqueeze(1)
        distances = (units - true_units).pow(2).sum(2)
        distances[torch.arange(len(true)), true] = -torch.inf
        chosen.append(distances.argmax(1).cpu())
    return torch.cat(chosen)


def soft_targets(probs: torch.Tensor, poison: torch.Tensor, eps: float,
                 margin: float = MIN_MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (1 - lambda) p + lambda e_{y*} with the largest lambda in [0, 1] such that the argmax
    stays, ahead of the poison label by `margin`, and the top probability moves by at most eps.
    Returns (targets, lambdas).

    With k = argmax p: if y* == k the top probability rises by lambda (1 - p_k), so
    lambda <= eps / (1 - p_k). Otherwise it falls by lambda p_k (lambda <= eps / p_k), and t_k - t_{y*}
    = d - lambda (1 + d) with d = p_k - p_{y*}, which stays >= margin up to lambda = (d - margin) / (1 + d).

    An example whose predicted label leads the runner-up by less than `margin` already (it sits on the
    decision boundary) gets the target that restores that lead, within eps: it is the one place where
    the target is more confident than p (docs/NOTES.md §7.11).
    """
    rows = torch.arange(len(probs))
    top_prob, top = probs.max(1)
    poison_prob = probs[rows, poison]
    same = poison == top
    gap = top_prob - poison_prob
    tie = (gap - margin).clamp_min(0) / (1 + gap)
    limit_same = eps / (1 - top_prob).clamp_min(1e-12)
    limit_other = torch.minimum(eps / top_prob, tie)
    lambdas = torch.where(same, limit_same, limit_other).clamp(0, 1)
    targets = (1 - lambdas).unsqueeze(1) * probs
    targets[rows, poison] += lambdas
    return restore_lead(targets, top, probs, eps, margin), lambdas


def restore_lead(targets: torch.Tensor, top: torch.Tensor, probs: torch.Tensor, eps: float,
                 margin: float) -> torch.Tensor:
    """Targets where label `top` leads every other label by less than `margin`, mixed with e_top just enough
    to lead by `margin` (t' = (1 - mu) t + mu e_top, mu = (margin - lead) / (1 - lead)), the top probability
    moving at most eps from p's."""
    rows = torch.arange(len(targets))
    others = targets.clone()
    others[rows, top] = -1.0
    lead = targets[rows, top] - others.max(1).values
    short = lead < margin
    if not bool(short.any()):
        return targets
    mu = ((margin - lead) / (1 - lead).clamp_min(1e-12)).clamp(0, 1)
    room = (probs[rows, top] + eps - targets[rows, top]).clamp_min(0) / (1 - targets[rows, top]).clamp_min(1e-12)
    mu = torch.where(short, torch.minimum(mu, room), torch.zeros_like(mu))
    restored = (1 - mu).unsqueeze(1) * targets
    restored[rows, top] += mu
    return restored


def l2_target_distances(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|| softmax(f(x_i)) - t_i ||_2 per example (the distance, not its square); P2 minimises their sum."""
    return (logits.softmax(1) - targets).norm(dim=1)


def fine_tune(model: nn.Module, features: torch.Tensor, targets: torch.Tensor, settings: P2Settings,
              generator: torch.Generator) -> None:
    """Fit the softmax output to the soft targets on the whole client dataset every epoch (in place)."""
    fine_tune_together([model], [features], [targets], settings, [generator])


def fine_tune_together(models: list[nn.Module], features: list[torch.Tensor], targets: list[torch.Tensor],
                       settings: P2Settings, generators: list[torch.Generator], epochs: int | None = None) -> None:
    """Fine-tune several clients' models of one architecture at once (in place), each on its own data with
    its own minibatch order, for `epochs` (default EPOCHS): stacked for the trainable tail of fully
    connected layers, one after another otherwise (FL_model_generation/stacked_training.py)."""
    named = dict(models[0].named_parameters())
    unmatched = [prefix for prefix in settings.trainable if not any(name.startswith(prefix) for name in named)]
    if unmatched:
        raise P2Error(f"P2 setting TRAINABLE: {unmatched} match no parameter; the model has {list(named)}")

    def trainable(name: str) -> bool:
        return not settings.trainable or name.startswith(settings.trainable)

    for model in models:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(trainable(name))
    split = [split_frozen_prefix(model, x) for model, x in zip(models, features)]
    recipe = Recipe(settings.optimizer, lr=settings.lr, epochs=epochs or settings.epochs,
                    batch_size=settings.batch_size, reduction="sum")
    tails = [tail for tail, _ in split]
    if all(isinstance(layer, STACKABLE) for layer in tails[0].modules() if layer is not tails[0]):
        states = train_stacked(tails[0], [tail.state_dict() for tail in tails], [x for _, x in split], targets,
                               recipe, generators, per_example_loss=l2_target_distances, trainable=trainable)
    else:
        states = [train_stacked(tail, [tail.state_dict()], [x], [t], recipe, [generator],
                                per_example_loss=l2_target_distances, trainable=trainable)[0]
                  for tail, (_, x), t, generator in zip(tails, split, targets, generators)]
    for model, tail, state in zip(models, tails, states):
        tail.load_state_dict(state)
        for parameter in model.parameters():
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


def client_targets(model: nn.Module, features: torch.Tensor, labels: torch.Tensor,
                   settings: P2Settings) -> dict[str, torch.Tensor]:
    """Steps 1 and 2 for one client: the model's probabilities, the poison labels, the soft targets and
    their lambdas."""
    probs = predict_logits(model, features).softmax(1)
    poison = poison_labels(model, settings.poison_weight, features, labels)
    targets, lambdas = soft_targets(probs, poison, settings.eps, settings.label_margin)
    return {"probs": probs, "poison": poison, "targets": targets, "lambdas": lambdas}


def client_statistics(model: nn.Module, features: torch.Tensor, made: dict[str, torch.Tensor]) -> dict:
    """How a client's fine-tuned model stands against its targets (its own model, not the released one)."""
    after = predict_logits(model, features).softmax(1)
    return {"mean_lambda": made["lambdas"].mean().item(),
            "labels_kept": (after.argmax(1) == made["probs"].argmax(1)).float().mean().item(),
            "mean_top_prob_before": made["probs"].max(1).values.mean().item(),
            "mean_top_prob_after": after.max(1).values.mean().item(),
            "mean_target_distance_after": (after - made["targets"]).norm(dim=1).mean().item()}


def protect(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, settings: P2Settings,
            generator: torch.Generator) -> dict:
    """P2 on one client's model in place, all EPOCHS in one go; returns the client's statistics."""
    made = client_targets(model, features, labels, settings)
    fine_tune(model, features, made["targets"], settings, generator)
    return client_statistics(model, features, made)


def protect_federations(architecture: dict, starts: list[dict], federations: list[list[tuple[torch.Tensor, torch.Tensor]]],
                        settings: P2Settings, generator: Callable[[int, int, int], torch.Generator]) -> list[dict]:
    """P2 run in memory on several federations at once (an attacker who knows P2 applies it to its own
    reference or shadow models): federation f's clients start from starts[f], make their soft targets,
    fine-tune over ROUNDS rounds with an average after each; `generator(f, round, client)` orders their
    batches. Returns each federation's final average."""
    def models_from(states: list[dict]) -> list[nn.Module]:
        return [load_state(build_model(architecture), states[f], "a P2 start")
                for f, clients in enumerate(federations) for _ in clients]

    jobs = [(f, client) for f, clients in enumerate(federations) for client in range(len(clients))]
    data = [federations[f][client] for f, client in jobs]
    targets = [client_targets(model, features, labels, settings)["targets"]
               for model, (features, labels) in zip(models_from(starts), data)]
    states = list(starts)
    for round_index in range(1, settings.rounds + 1):
        models = models_from(states)
        fine_tune_together(models, [features for features, _ in data], targets, settings,
                           [generator(f, round_index, client) for f, client in jobs], epochs=settings.epochs_per_round)
        states = [fedavg([model.state_dict() for model, (owner, _) in zip(models, jobs) if owner == f],
                         [len(labels) for _, labels in clients]) for f, clients in enumerate(federations)]
    return states
