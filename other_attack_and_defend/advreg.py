"""Adversarial regularisation (Nasr, Shokri & Houmansadr, "Machine Learning with Membership Privacy using
Adversarial Regularization", CCS 2018) inside every client's local update of FedAvg. Official code:
SPIN-UMass/ML-Privacy-Regulization, PPN_Texas_GIT.py and PPN_Purchase_GIT.py (read at 4b37f2d;
/work/notes/defenses.md §4).

The game min_f max_h L_D(f) + lambda G_f(h), played by each client on its own data, as the official code plays it:
- the inference model h(logits, one-hot label) -> member probability (InferenceAttack_HZ, the Texas size:
  logits K -> 512 -> 64 with ReLU, label K -> 64 linear, together 128 -> 64 -> 1, sigmoid; weights
  N(0, 0.01^2), biases 0);
- attack step: a batch of the client's members (label 1) and as many of the client's REFERENCE rows (label 0),
  the classifier's raw logits and the one-hot labels into h, MSE to the labels, one Adam step on h;
- classifier step: on a member batch, CE(f(x), y) + lambda x (mean h(f(x), y) - 0.5), one step of the FL
  recipe's SGD on f (h fixed); the second term is the inference gain as the official code writes it (linear
  in h, `classifier_loss`);
- ADVREG_ATTACK_STEPS attack steps before each classifier step; the first local epoch of the first round is
  plain training (the official epoch 0), then the alternation.
The reference rows are the client's own role `defense_reference_client<NNN>` of partition.npz
(DEFENSE_REFERENCE_SIZE rows of FL_model_for_<dataset>.py): non-members disjoint from every member, the test,
evaluation and attacker rows and the shadow pool (data_partitioning.py). Each client keeps its inference model
and its Adam state across rounds (the continuous min-max game of the paper; nothing of h is sent to the server).
For the MLPs every client's classifier and inference model step together (`StackedAdvReg`, torch.func.vmap over
clients, the same draws from the same generators as the one-client loop `AdvRegClient`, which the CNNs use:
tests/test_competitors.py compares the two).

Departures, and why:
- Steps: ADVREG_ATTACK_STEPS = 1 attack step per classifier step, as the official CIFAR-100 code alternates (one
  attack batch, one classifier batch), not the official Purchase/Texas 25 (50 attack batches, then 2 classifier
  batches): every attack step costs about a classifier step (a forward pass of the classifier on twice the
  batch), so k = 25 would make AdvReg 25x the cost of FedAvg on a CPU. The inference model persists across steps
  and rounds, so it still trains on every batch the classifier sees.
- Training recipe: the FL recipe of FL_model_for_<dataset>.py for the classifier (SGD, rounds, local epochs,
  batch size; on the CNNs one local epoch per round: COMPETITOR_LOCAL_EPOCHS, defended_fedavg.py), not the
  official Adam for 20 epochs; attack batches have the classifier's batch size.
- The inference model has the official Texas size for every dataset (Purchase's is about 4x larger), for CPU
  time; lambda (ADVREG_LAMBDA) is the official Purchase/Texas/HAMP value nearest the dataset, chosen next to
  the constants in baseline_defenses_<dataset>.py.
- Reference set per client: DEFENSE_REFERENCE_SIZE rows, smaller than the client's training set (the official
  Purchase reference set is 1.5x the training set): non-member rows are what the toolkit's other roles need
  too (Location has 5,010 rows in all). Reference batches are drawn with replacement when a client's reference
  set is smaller than a batch.
Output: model/<dataset>/<run>/advreg/final.pt (advreg_l<lambda>/ for extra strengths).
"""
import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from torch.func import functional_call, vmap

from FL_model_generation.fedavg import stacks_well
from FL_model_generation.models import build_model, load_state
from FL_model_generation.stacked_training import Recipe, StackedOptimizer
from FL_model_generation.training import FLSettings, minibatches
from other_attack_and_defend import defended_fedavg
from toolkit.checkpoints import save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdvRegSettings(Settings):
    """AdvReg, from other_attack_and_defend/baseline_defenses_<dataset>.py: ADVREG_LAMBDA (weight of the inference
    gain; the model "advreg"), ADVREG_EXTRA_LAMBDA (one more model per value, "advreg_l<lambda>"),
    ADVREG_ATTACK_STEPS (inference-model steps before each classifier step), ADVREG_ATTACK_LR (its Adam rate)."""
    advreg_lambda: float
    advreg_extra_lambda: tuple[float, ...]
    advreg_attack_steps: int
    advreg_attack_lr: float

    QUICK: ClassVar[dict] = {"ADVREG_EXTRA_LAMBDA": lambda values: ()}

    def check(self) -> None:
        for value in (self.advreg_lambda, *self.advreg_extra_lambda):
            require(value >= 0, "ADVREG_LAMBDA" if value == self.advreg_lambda else "ADVREG_EXTRA_LAMBDA", value,
                    "must be at least 0")
        require(self.advreg_lambda not in self.advreg_extra_lambda
                and len(set(self.advreg_extra_lambda)) == len(self.advreg_extra_lambda),
                "ADVREG_EXTRA_LAMBDA", self.advreg_extra_lambda, "repeats a lambda")
        require(self.advreg_attack_steps >= 1, "ADVREG_ATTACK_STEPS", self.advreg_attack_steps, "must be at least 1")
        require(self.advreg_attack_lr > 0, "ADVREG_ATTACK_LR", self.advreg_attack_lr, "must be positive")

    def points(self) -> list["AdvRegPoint"]:
        return [AdvRegPoint("advreg" if value == self.advreg_lambda else f"advreg_l{value:g}", value,
                            self.advreg_attack_steps, self.advreg_attack_lr)
                for value in (self.advreg_lambda, *self.advreg_extra_lambda)]


@dataclass(frozen=True)
class AdvRegPoint:
    name: str
    lam: float
    attack_steps: int
    attack_lr: float

    def constants(self) -> dict:
        return {"ADVREG_LAMBDA": self.lam, "ADVREG_ATTACK_STEPS": self.attack_steps,
                "ADVREG_ATTACK_LR": self.attack_lr}


class InferenceModel(nn.Module):
    """Nasr et al.'s InferenceAttack_HZ (Texas size): member probability of (logits, one-hot label)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(nn.Linear(num_classes, 512), nn.ReLU(), nn.Linear(512, 64), nn.ReLU())
        self.labels = nn.Sequential(nn.Linear(num_classes, 64))
        self.combine = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
        for name, parameter in self.named_parameters():
            with torch.no_grad():
                if name.endswith("weight"):
                    parameter.normal_(0.0, 0.01)
                else:
                    parameter.zero_()

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = (labels.long().unsqueeze(-1) == torch.arange(self.num_classes)).to(logits.dtype)
        joined = torch.cat([self.features(logits), self.labels(onehot)], 1)
        return torch.sigmoid(self.combine(joined)).view(-1)


def classifier_loss(model: nn.Module, inference: InferenceModel, features: torch.Tensor, labels: torch.Tensor,
                    lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, cross-entropy, gain) of a member batch: loss = CE + lambda x gain, gain = mean h(f(x), y) - 0.5 (the
    official code's inference gain: linear in h). Gradient reaches f through its logits; h is not stepped here."""
    logits = model(features)
    cross_entropy = F.cross_entropy(logits, labels)
    gain = inference(logits, labels).mean() - 0.5
    return cross_entropy + lam * gain, cross_entropy, gain


def attack_loss(model: nn.Module, inference: InferenceModel, members: tuple[torch.Tensor, torch.Tensor],
                reference: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """MSE of h to 1 on the member batch and to 0 on the reference batch (the classifier's logits fixed)."""
    with torch.no_grad():
        logits = model(torch.cat([members[0], reference[0]]))
    labels = torch.cat([members[1], reference[1]])
    is_member = torch.cat([torch.ones(len(members[1])), torch.zeros(len(reference[1]))])
    return F.mse_loss(inference(logits, labels), is_member)


class AdvRegClient:
    """One client's side of the game across rounds: its reference rows, its inference model and its Adam state."""

    def __init__(self, point: AdvRegPoint, reference: tuple[torch.Tensor, torch.Tensor], num_classes: int, seed: int,
                 client: int):
        if len(reference[1]) == 0:
            raise P2Error(f"AdvReg: client {client} has no reference rows (DEFENSE_REFERENCE_SIZE)")
        self.point, self.reference, self.client = point, reference, client
        seed_torch(seed, "advreg", "inference", client)
        self.inference = InferenceModel(num_classes)
        self.optimizer = torch.optim.Adam(self.inference.parameters(), lr=point.attack_lr)
        self.attack_steps_taken = 0

    def attack_step(self, model: nn.Module, features: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    generator: torch.Generator) -> None:
        """One Adam step of the inference model on a member batch against a batch of the client's reference rows."""
        members, rows = attack_rows(len(labels), len(self.reference[1]), batch_size, generator)
        self.inference.train()
        loss = attack_loss(model, self.inference, (features[members], labels[members]),
                           (self.reference[0][rows], self.reference[1][rows]))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.attack_steps_taken += 1

    def local_update(self, start: dict, features: torch.Tensor, labels: torch.Tensor, fl: FLSettings,
                     round_index: int, generator: torch.Generator) -> dict:
        """The client's local epochs of one round (the FL recipe's SGD, batches from `generator`), with
        the inference model's steps in between."""
        model = load_state(build_model(fl.architecture), start, "the global model")
        model.train()
        for parameter in self.inference.parameters():
            parameter.requires_grad_(True)
        optimizer = torch.optim.SGD(model.parameters(), lr=fl.lr, momentum=fl.momentum)
        attack_generator = torch_generator(generator.initial_seed(), "advreg-attack")
        for epoch in range(fl.local_epochs):
            for group in optimizer.param_groups:
                group["lr"] = fl.lr * fl.lr_decay ** epoch
            warm_up = round_index == 1 and epoch == 0
            for batch in minibatches(len(labels), fl.batch_size, generator):
                if warm_up:
                    loss = F.cross_entropy(model(features[batch]), labels[batch])
                else:
                    for _ in range(self.point.attack_steps):
                        self.attack_step(model, features, labels, fl.batch_size, attack_generator)
                    self.inference.eval()
                    for parameter in self.inference.parameters():
                        parameter.requires_grad_(False)
                    loss, _, _ = classifier_loss(model, self.inference, features[batch], labels[batch], self.point.lam)
                    for parameter in self.inference.parameters():
                        parameter.requires_grad_(True)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def attack_rows(members: int, reference: int, batch_size: int, generator: torch.Generator):
    """(member rows, reference rows) of one attack batch: batch_size of each, without replacement where there are
    enough, with replacement otherwise."""
    def draw(size):
        if size < batch_size:
            return torch.randint(size, (batch_size,), generator=generator)
        return torch.randperm(size, generator=generator)[:batch_size]

    return draw(members), draw(reference)


class StackedAdvReg:
    """Every client's side of the game at once (for the MLPs): the clients' inference models and Adam states stacked
    along a first axis, kept across rounds; each step is one vmapped call for all clients. The draws are the one-client
    loop's (AdvRegClient), client by client from the same generators."""

    def __init__(self, point: AdvRegPoint, references: list[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                 seed: int):
        self.point, self.references = point, references
        models = []
        for client in range(len(references)):
            if len(references[client][1]) == 0:
                raise P2Error(f"AdvReg: client {client} has no reference rows (DEFENSE_REFERENCE_SIZE)")
            seed_torch(seed, "advreg", "inference", client)
            models.append(InferenceModel(num_classes))
        self.inference_module = InferenceModel(num_classes)
        self.names = [name for name, _ in self.inference_module.named_parameters()]
        self.inference = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
                          for name in self.names}
        self.optimizer = StackedOptimizer(Recipe("adam", lr=point.attack_lr, epochs=1, batch_size=1),
                                          [self.inference[name] for name in self.names], len(references))
        self.attack_steps_taken = 0

    def _h(self, inference: dict, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return vmap(lambda p, z, y: functional_call(self.inference_module, p, (z, y)))(inference, logits, labels)

    def local_round(self, start: dict, data, fl: FLSettings, round_index: int,
                    generators: list[torch.Generator]) -> list[dict]:
        """Every client's local epochs of one round from `start`, stacked."""
        count = len(data)
        module = build_model(fl.architecture).eval()
        params = {name: torch.stack([start[name]] * count).clone().requires_grad_(True) for name in start}
        sgd = StackedOptimizer(Recipe("sgd", lr=fl.lr, epochs=1, batch_size=1, momentum=fl.momentum),
                               [params[name] for name in start], count)
        attack_generators = [torch_generator(generator.initial_seed(), "advreg-attack") for generator in generators]
        sizes = [len(labels) for _, labels in data]
        batches = [-(-size // fl.batch_size) for size in sizes]

        def logits_of(weights, x):
            return vmap(lambda p, rows: functional_call(module, p, (rows,)))(weights, x)

        for epoch in range(fl.local_epochs):
            lr = fl.lr * fl.lr_decay ** epoch
            warm_up = round_index == 1 and epoch == 0
            orders = [torch.randperm(size, generator=generator) for size, generator in zip(sizes, generators)]
            for step in range(max(batches)):
                active = torch.tensor([step < b for b in batches])
                if not warm_up:
                    for _ in range(self.point.attack_steps):
                        self._attack_step(params, logits_of, data, fl.batch_size, attack_generators, active)
                chosen = [order[step * fl.batch_size:(step + 1) * fl.batch_size] for order in orders]
                width = max(len(rows) for rows in chosen)
                index = torch.zeros(count, width, dtype=torch.long)
                weight = torch.zeros(count, width)
                for k, rows in enumerate(chosen):
                    index[k, :len(rows)], weight[k, :len(rows)] = rows, 1.0
                x = torch.stack([features[index[k]] for k, (features, _) in enumerate(data)])
                y = torch.stack([labels[index[k]] for k, (_, labels) in enumerate(data)])
                logits = logits_of(params, x)
                counts = weight.sum(1).clamp_min(1)
                cross_entropy = (F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(weight)
                                 * weight).sum(1) / counts
                loss = cross_entropy
                if not warm_up:
                    h = self._h({name: tensor.detach() for name, tensor in self.inference.items()}, logits, y)
                    loss = cross_entropy + self.point.lam * ((h * weight).sum(1) / counts - 0.5)
                gradients = torch.autograd.grad((loss * active).sum(), [params[name] for name in start])
                sgd.step(gradients, lr, active)
        return [{name: tensor[k].detach().clone() for name, tensor in params.items()} for k in range(count)]

    def _attack_step(self, params: dict, logits_of, data, batch_size: int, generators: list[torch.Generator],
                     active: torch.Tensor) -> None:
        empty = torch.zeros(batch_size, dtype=torch.long)  # a client whose epoch has ended draws nothing
        drawn = [attack_rows(len(labels), len(reference[1]), batch_size, generator) if on else (empty, empty)
                 for (_, labels), reference, generator, on in zip(data, self.references, generators, active.tolist())]
        x = torch.stack([torch.cat([features[members], reference[0][rows]])
                         for (features, _), reference, (members, rows) in zip(data, self.references, drawn)])
        y = torch.stack([torch.cat([labels[members], reference[1][rows]])
                         for (_, labels), reference, (members, rows) in zip(data, self.references, drawn)])
        with torch.no_grad():
            logits = logits_of({name: tensor.detach() for name, tensor in params.items()}, x)
        is_member = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)]).expand(len(data), -1)
        inference = {name: tensor.detach().requires_grad_(True) for name, tensor in self.inference.items()}
        losses = ((self._h(inference, logits, y) - is_member) ** 2).mean(1)
        gradients = torch.autograd.grad((losses * active).sum(), [inference[name] for name in self.names])
        self.optimizer.step(gradients, self.point.attack_lr, active)
        self.attack_steps_taken += 1

    def client_inference(self, client: int) -> InferenceModel:
        """Client `client`'s inference model as a module."""
        model = InferenceModel(self.inference_module.num_classes)
        model.load_state_dict({name: tensor[client].detach().clone() for name, tensor in self.inference.items()})
        return model.eval()


def model_path(run: Run, name: str = "advreg"):
    return defended_fedavg.model_path(run, name)


def inference_gain(model: nn.Module, inference: InferenceModel, members, reference) -> float:
    """The inference model's accuracy at 0.5 on a member and a reference set (a diagnostic for the meta)."""
    with torch.no_grad():
        inside = inference(model(members[0]), members[1]) > 0.5
        outside = inference(model(reference[0]), reference[1]) <= 0.5
    return float((inside.float().mean() + outside.float().mean()) / 2)


def train_advreg(run: Run, fl: FLSettings, point: AdvRegPoint) -> dict:
    """FedAvg with adversarial regularisation in every client; writes the model; returns its meta."""
    from data_partitioning import tensors

    dataset, partition, data, test = defended_fedavg.client_data(run)
    references = [tensors(dataset, rows) for rows in partition.defense_reference]
    if stacks_well(fl.architecture):
        stacked = StackedAdvReg(point, references, dataset.num_classes, run.seed)

        def local_round(round_index, start, client_data, generators):
            return stacked.local_round(start, client_data, fl, round_index, generators)
    else:
        clients = [AdvRegClient(point, reference, dataset.num_classes, run.seed, client)
                   for client, reference in enumerate(references)]

        def local_round(round_index, start, client_data, generators):
            return [clients[k].local_update(start, features, labels, fl, round_index, generators[k])
                    for k, (features, labels) in enumerate(client_data)]

    last_round = defended_fedavg.LastRound(fl, run.seed)
    state = defended_fedavg.federated_training(data, fl, run.seed, local_round, test_data=test,
                                               description=f"AdvReg {point.name} {run.dataset}", on_round=last_round)
    model = load_state(build_model(fl.architecture), state, "the AdvReg model").eval()
    inference_models = ([stacked.client_inference(k) for k in range(len(data))] if stacks_well(fl.architecture)
                        else [client.inference for client in clients])
    steps = stacked.attack_steps_taken if stacks_well(fl.architecture) else clients[0].attack_steps_taken
    accuracies = [inference_gain(model, inference, data[k], references[k])
                  for k, inference in enumerate(inference_models)]
    meta = defended_fedavg.checkpoint_meta(run, fl, point.name, {
        "kind": "advreg", **point.constants(), "reference_rows_per_client": [len(rows) for rows in
                                                                            partition.defense_reference],
        "inference_model": "InferenceAttack_HZ, Texas size", "attack_steps_per_client": steps,
        "inference_accuracy_on_final_model": accuracies})
    save_checkpoint(model_path(run, point.name), state, meta)
    last_round.save(run, point.name, meta)
    log.info("AdvReg %s: the clients' inference models on the final model: balanced accuracy %s", point.name,
             ", ".join(f"{a:.3f}" for a in accuracies))
    return meta
