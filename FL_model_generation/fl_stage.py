"""The FL training stage: FedAvg on a run's client partition, checkpoints for every round.

Writes model/<dataset>/<run>/fl/roundNNN/{global,clientNNN}.pt and fl/final.pt (the final
global model), each with metadata that later stages check.
"""
import logging

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from FL_model_generation.fedavg import federated_training
from FL_model_generation.models import build_model, load_state
from FL_model_generation.training import FLSettings
from toolkit.checkpoints import load_checkpoint, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run

log = logging.getLogger(__name__)


def output_paths(run: Run, settings: FLSettings, clients: int) -> list:
    """Every file the FL stage writes, the final model first."""
    rounds = [[run.fl_global_path(r)] + [run.fl_client_path(r, c) for c in range(clients)]
              for r in range(1, settings.rounds + 1)]
    return [run.fl_final_path] + [path for files in rounds for path in files]


def checkpoint_meta(run: Run, settings: FLSettings, round_index: int, role: str) -> dict:
    return {"dataset": run.dataset, "architecture": settings.architecture, "round": round_index,
            "seed": run.seed, "quick": run.quick, "role": role, "settings": settings.constants()}


def train_fl_model(run: Run, settings: FLSettings) -> dict:
    """Train and checkpoint; return the final global state dict."""
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    clients = [tensors(dataset, rows) for rows in partition.clients]

    def save_round(round_index: int, global_state: dict, client_states: list[dict]) -> None:
        save_checkpoint(run.fl_global_path(round_index), global_state,
                        checkpoint_meta(run, settings, round_index, "global"))
        for client, state in enumerate(client_states):
            save_checkpoint(run.fl_client_path(round_index, client), state,
                            checkpoint_meta(run, settings, round_index, f"client{client}"))

    final_state = federated_training(clients, settings, run.seed, on_round=save_round,
                                     test_data=tensors(dataset, partition.test),
                                     description=f"FedAvg {run.dataset}")
    save_checkpoint(run.fl_final_path, final_state, checkpoint_meta(run, settings, settings.rounds, "global"))
    log.info("final FL model written to %s", run.fl_final_path)
    return final_state


def load_model(path, run: Run):
    """A model rebuilt from a checkpoint of this run, with its meta."""
    state, meta = load_checkpoint(path, expect={"dataset": run.dataset, "seed": run.seed, "quick": run.quick})
    if "architecture" not in meta:
        raise P2Error(f"{path} records no architecture; rerun the stage that wrote it")
    return load_state(build_model(meta["architecture"]), state, str(path)), meta
