"""Federated averaging: weighted mean of client models, and the round loop around it."""
import logging
from collections.abc import Callable

import torch
from tqdm import tqdm

from FL_model_generation.models import accuracy, build_model, load_state
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

    `client_updates[i](state, features, labels, settings, generator)` trains client i (plain SGD
    by default; a stateful object such as a DP-SGD client keeps its state across rounds);
    `on_round(round, global_state, client_states)` sees each round's models.
    """
    client_updates = client_updates or [sgd_client_update] * len(clients)
    global_state = initial_state(settings.architecture, seed)
    sizes = [len(labels) for _, labels in clients]
    for round_index in tqdm(range(1, settings.rounds + 1), desc=description, unit="round", leave=False):
        client_states = []
        for client, (features, labels) in enumerate(clients):
            generator = torch_generator(seed, "fedavg", round_index, client)
            client_states.append(client_updates[client](global_state, features, labels, settings, generator))
        global_state = fedavg(client_states, sizes)
        if on_round:
            on_round(round_index, global_state, client_states)
        if test_data is not None:
            model = load_state(build_model(settings.architecture), global_state, "the global model")
            log.info("%s round %d/%d: test accuracy %.4f", description, round_index, settings.rounds,
                     accuracy(model, *test_data))
    return global_state
