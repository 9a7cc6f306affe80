"""Federated averaging: weighted mean of client models, and the round loop around it."""
import logging
from collections.abc import Callable

import torch
from tqdm import tqdm

from FL_model_generation.models import accuracy, build_model, load_state
from FL_model_generation.stacked_training import Recipe, train_stacked
from FL_model_generation.training import FLSettings, sgd_client_update
from toolkit.seeding import seed_torch, torch_generator

log = logging.getLogger(__name__)

ClientUpdate = Callable[[dict, torch.Tensor, torch.Tensor, FLSettings, torch.Generator], dict]


def fedavg(states: list[dict], weights: list[float]) -> dict:
    """Sample-weighted mean of state dicts (weights are the clients' sample counts)."""
    if not states or len(states) != len(weights):
        raise ValueError("fedavg needs one weight per client state")
    total = float(sum(weights))
    averaged = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            averaged[name] = sum(state[name] * (weight / total) for state, weight in zip(states, weights))
        else:
            averaged[name] = first.clone()
    return averaged


def initial_state(architecture: dict, seed: int) -> dict:
    seed_torch(seed, "init")
    return build_model(architecture).state_dict()


def federated_training(clients: list[tuple[torch.Tensor, torch.Tensor]], settings: FLSettings, seed: int,
                       client_updates: list[ClientUpdate] | None = None,
                       on_round: Callable[[int, dict, list[dict]], None] | None = None,
                       test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                       description: str = "FedAvg") -> dict:
    """Run every round with all clients; return the final global state dict.

    `client_updates[i](state, features, labels, settings, generator)` trains client i (a stateful object
    such as a DP-SGD client keeps its state across rounds); without them, every client's local SGD runs
    in one stacked call where that is faster (`local_updates`). `on_round(round, global_state,
    client_states)` sees each round's models.
    """
    if client_updates is None:
        return train_federations([clients], settings, [seed], on_round, test_data, description)[0]
    global_state = initial_state(settings.architecture, seed)
    sizes = [len(labels) for _, labels in clients]
    for round_index in tqdm(range(1, settings.rounds + 1), desc=description, unit="round", leave=False):
        client_states = [update(global_state, features, labels, settings,
                                torch_generator(seed, "fedavg", round_index, client))
                         for client, (update, (features, labels)) in enumerate(zip(client_updates, clients))]
        global_state = fedavg(client_states, sizes)
        _after_round(settings, round_index, global_state, client_states, on_round, test_data, description)
    return global_state


def train_federations(federations: list[list[tuple[torch.Tensor, torch.Tensor]]], settings: FLSettings,
                      seeds: list[int], on_round: Callable[[int, dict, list[dict]], None] | None = None,
                      test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                      description: str = "FedAvg") -> list[dict]:
    """Several independent FedAvg trainings with one recipe (reference or shadow models, say), each from its
    own seed, their clients' local updates of a round taken together. Returns each one's final global
    state; `on_round` and `test_data` follow the first federation."""
    states = [initial_state(settings.architecture, seed) for seed in seeds]
    for round_index in tqdm(range(1, settings.rounds + 1), desc=description, unit="round", leave=False):
        jobs = [(f, client) for f, clients in enumerate(federations) for client in range(len(clients))]
        updated = local_updates(settings, [states[f] for f, _ in jobs],
                                [federations[f][client] for f, client in jobs],
                                [torch_generator(seeds[f], "fedavg", round_index, client) for f, client in jobs])
        for f, clients in enumerate(federations):
            client_states = [state for (owner, _), state in zip(jobs, updated) if owner == f]
            states[f] = fedavg(client_states, [len(labels) for _, labels in clients])
            if f == 0:
                _after_round(settings, round_index, states[0], client_states, on_round, test_data, description)
    return states


def local_updates(settings: FLSettings, starts: list[dict], datasets: list[tuple[torch.Tensor, torch.Tensor]],
                  generators: list[torch.Generator]) -> list[dict]:
    """Each client's local SGD from its start state: stacked for the fully connected models, where it is
    measured faster on the CPU, one client after another otherwise (benchmarks/README.md)."""
    if not stacks_well(settings.architecture):
        return [sgd_client_update(start, features, labels, settings, generator)
                for start, (features, labels), generator in zip(starts, datasets, generators)]
    recipe = Recipe("sgd", lr=settings.lr, epochs=settings.local_epochs, batch_size=settings.batch_size,
                    momentum=settings.momentum, lr_decay=settings.lr_decay)
    return train_stacked(build_model(settings.architecture), starts, [features for features, _ in datasets],
                         [labels for _, labels in datasets], recipe, generators)


def stacks_well(architecture: dict) -> bool:
    """Whether training many copies at once beats a loop on this CPU: measured for the MLPs, not the CNNs."""
    return architecture.get("kind") == "mlp"


def _after_round(settings, round_index, global_state, client_states, on_round, test_data, description) -> None:
    if on_round:
        on_round(round_index, global_state, client_states)
    if test_data is not None:
        model = load_state(build_model(settings.architecture), global_state, "the global model")
        log.info("%s round %d/%d: test accuracy %.4f", description, round_index, settings.rounds,
                 accuracy(model, *test_data))
