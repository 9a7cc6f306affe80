"""FedAvg with a defense inside every client's local update: what the training defenses (HAMP, RelaxLoss,
AdvReg) share.

Everything but the local loss is the undefended model's: the architecture, rounds, clients, local epochs,
batch size, learning rate, its decay and momentum of FL_model_generation/FL_model_for_<dataset>.py, the same
initial weights (fedavg.initial_state from the run's seed), the same per-round client generators
(("fedavg", round, client)) and the sample-weighted average. A defense supplies one function, the local
round: (round, global state, the clients' data, their generators) -> the clients' new states.
`stacked_local_round` is that function for a defense whose loss fits stacked_training.train_stacked
(per example, or per model and batch); AdvReg, which alternates two models, has its own.
One exception, for the CPU budget: where baseline_defenses_<dataset>.py sets COMPETITOR_LOCAL_EPOCHS (the CNNs),
the trained competitors (these and DP-FedAvg) take that many local epochs per round (docs/NOTES.md §12.7).

Each defended model is written to model/<dataset>/<run>/<name>/final.pt with the meta every target
checkpoint has (dataset, architecture, rounds, seed, quick, role) plus the defense's own record.
"""
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from FL_model_generation.fedavg import fedavg, initial_state, stacks_well
from FL_model_generation.models import accuracy, build_model, load_state
from FL_model_generation.stacked_training import BatchLoss, Recipe, cross_entropy, train_stacked
from FL_model_generation.training import FLSettings
from toolkit.run import Run
from toolkit.seeding import torch_generator

log = logging.getLogger(__name__)

Data = list[tuple[torch.Tensor, torch.Tensor]]
LocalRound = Callable[[int, dict, Data, list[torch.Generator]], list[dict]]


def model_path(run: Run, name: str) -> Path:
    """model/<dataset>/<run>/<name>/final.pt: where a defended model lives (name = its key in summary.json)."""
    return run.model_dir / name / "final.pt"


def recipe(fl: FLSettings) -> Recipe:
    """The FL recipe's local SGD as a stacked-training recipe (what fedavg.local_updates uses)."""
    return Recipe("sgd", lr=fl.lr, epochs=fl.local_epochs, batch_size=fl.batch_size, momentum=fl.momentum,
                  lr_decay=fl.lr_decay)


def federated_training(data: Data, fl: FLSettings, seed: int, local_round: LocalRound,
                       test_data: tuple[torch.Tensor, torch.Tensor] | None = None, description: str = "defended FedAvg",
                       on_round: Callable[[int, dict, list[dict]], None] | None = None) -> dict:
    """FedAvg with `local_round` in place of the clients' plain SGD; returns the final global state dict.
    `on_round(round, global state, client states)` sees every round's models."""
    global_state = initial_state(fl.architecture, seed)
    sizes = [len(labels) for _, labels in data]
    for round_index in tqdm(range(1, fl.rounds + 1), desc=description, unit="round", leave=False):
        generators = [torch_generator(seed, "fedavg", round_index, client) for client in range(len(data))]
        client_states = local_round(round_index, global_state, data, generators)
        global_state = fedavg(client_states, sizes)
        if on_round is not None:
            on_round(round_index, global_state, client_states)
        if test_data is not None:
            model = load_state(build_model(fl.architecture), global_state, "the global model")
            log.info("%s round %d/%d: test accuracy %.4f", description, round_index, fl.rounds,
                     accuracy(model, *test_data))
    return global_state


def stacked_local_round(fl: FLSettings, global_state: dict, data: Data, generators: list[torch.Generator],
                        per_example_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy,
                        batch_loss: BatchLoss | None = None) -> list[dict]:
    """Every client's local update from `global_state` with the FL recipe and the given loss: all clients in one
    stacked call for the MLPs, one stacked call per client for the CNNs (as fedavg.local_updates decides)."""
    module = build_model(fl.architecture)
    local = recipe(fl)
    if stacks_well(fl.architecture):
        return train_stacked(module, [global_state] * len(data), [x for x, _ in data], [y for _, y in data], local,
                             generators, per_example_loss=per_example_loss, batch_loss=batch_loss)
    return [train_stacked(module, [global_state], [x], [y], local, [generator], per_example_loss=per_example_loss,
                          batch_loss=batch_loss)[0]
            for (x, y), generator in zip(data, generators)]


class LastRound:
    """An on_round hook that keeps what the server received in the last round: the global model it sent and the
    clients' models (server_attacks.save_last_round writes them for the server's attacks)."""

    def __init__(self, fl: FLSettings, seed: int):
        self.rounds = fl.rounds
        self.before = initial_state(fl.architecture, seed)
        self.global_before: dict | None = None
        self.clients: list[dict] | None = None

    def __call__(self, round_index: int, global_state: dict, client_states: list[dict]) -> None:
        if round_index == self.rounds:
            self.global_before = self.before
            self.clients = [{name: tensor.detach().clone() for name, tensor in state.items()} for state in client_states]
        self.before = global_state

    def save(self, run: Run, name: str, meta: dict) -> None:
        from other_attack_and_defend.server_attacks import save_last_round

        save_last_round(run, name, self.global_before, self.clients, meta)


def checkpoint_meta(run: Run, fl: FLSettings, name: str, defense: dict) -> dict:
    """The meta of a defended model: what every target checkpoint records, plus `defense` (its constants and
    what the training measured)."""
    return {"dataset": run.dataset, "architecture": fl.architecture, "round": fl.rounds, "seed": run.seed,
            "quick": run.quick, "role": name, "settings": {"fl": fl.constants()}, "defense": defense}


def client_data(run: Run):
    """(dataset, partition, each client's (features, labels), the test rows' tensors) of a run."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset

    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    return dataset, partition, [tensors(dataset, rows) for rows in partition.clients], tensors(dataset, partition.test)
