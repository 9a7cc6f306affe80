"""The P2 round as pipeline stages: each client's soft targets, its fine-tuning, and the server's average.

Each client starts from the final global FL model (the paper's additional round) or, with
START="last_local", from its own local model of the last round (the original code's variant). Its poison
labels and soft targets are computed once, from that start. With ROUNDS = R > 1 the EPOCHS of
fine-tuning are spread over R federated rounds: in round r every client fine-tunes EPOCHS / R epochs from
round r - 1's average toward its fixed targets, and the server averages again.

Files, under model/<dataset>/<run>/<folder>/ (folder "p2", or one per setting of a P2 sweep):
targets/clientNNN.npz; roundRRR/{clientNNN,global}.pt for the rounds before the last; clientNNN.pt and
global.pt for the last round (the P2-protected model).
"""
import logging
from dataclasses import dataclass
from pathlib import Path

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from defend.p2_protection import P2Settings, client_statistics, client_targets, fine_tune_together
from FL_model_generation.fedavg import fedavg
from FL_model_generation.fl_stage import load_model
from toolkit.checkpoints import load_arrays, load_checkpoint, save_arrays, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import torch_generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class P2Files:
    """Where one P2 setting's files live."""
    run: Run
    rounds: int = 1
    folder: str = "p2"

    @property
    def root(self) -> Path:
        return self.run.model_dir / self.folder

    def targets(self, client: int) -> Path:
        return self.root / "targets" / f"client{client:03d}.npz"

    def client(self, round_index: int, client: int) -> Path:
        last = round_index == self.rounds
        return self.root / ("" if last else f"round{round_index:03d}") / f"client{client:03d}.pt"

    def global_model(self, round_index: int) -> Path:
        return self.root / ("" if round_index == self.rounds else f"round{round_index:03d}") / "global.pt"

    @property
    def final(self) -> Path:
        return self.global_model(self.rounds)


def starting_checkpoint(run: Run, settings: P2Settings, fl_rounds: int, client: int) -> Path:
    """The model client `client` starts P2 from: the final global model, or its own last local model."""
    return run.fl_final_path if settings.start == "global" else run.fl_client_path(fl_rounds, client)


def round_start(files: P2Files, settings: P2Settings, fl_rounds: int, round_index: int, client: int) -> Path:
    """The model a client fine-tunes from in a round: its P2 start in round 1, the last average after."""
    if round_index == 1:
        return starting_checkpoint(files.run, settings, fl_rounds, client)
    return files.global_model(round_index - 1)


def write_targets(files: P2Files, settings: P2Settings, fl_rounds: int, clients: list[int]) -> None:
    """Poison labels and soft targets of each client, from its starting model (steps 1 and 2)."""
    run = files.run
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    for client in clients:
        model, _ = load_model(starting_checkpoint(run, settings, fl_rounds, client), run)
        made = client_targets(model, *tensors(dataset, partition.clients[client]), settings)
        save_arrays(files.targets(client), {"dataset": run.dataset, "seed": run.seed, "quick": run.quick,
                                            "client": client}, **{name: value.numpy() for name, value in made.items()})


def protect_round(files: P2Files, settings: P2Settings, fl_rounds: int, round_index: int, clients: list[int]) -> None:
    """One round of fine-tuning for the given clients together, each written to its own checkpoint."""
    import torch

    run = files.run
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    loaded = [load_model(round_start(files, settings, fl_rounds, round_index, client), run) for client in clients]
    features = [tensors(dataset, partition.clients[client])[0] for client in clients]
    made = [{name: torch.from_numpy(value) for name, value in load_arrays(files.targets(client))[0].items()}
            for client in clients]
    names = [("p2", client) if files.rounds == 1 else ("p2", client, "round", round_index) for client in clients]
    fine_tune_together([model for model, _ in loaded], features, [m["targets"] for m in made], settings,
                       [torch_generator(run.seed, *name) for name in names], epochs=settings.epochs_per_round)
    for client, (model, meta), x, client_made in zip(clients, loaded, features, made):
        stats = client_statistics(model, x, client_made)
        log.info("P2 round %d client %d: labels kept %.4f, top probability %.3f -> %.3f on its own model",
                 round_index, client, stats["labels_kept"], stats["mean_top_prob_before"], stats["mean_top_prob_after"])
        save_checkpoint(files.client(round_index, client), model.state_dict(),
                        client_meta(run, settings, meta, client, round_index, len(x), stats))


def client_meta(run: Run, settings: P2Settings, start_meta: dict, client: int, round_index: int, num_samples: int,
                stats: dict) -> dict:
    """The meta of a client's fine-tuned model of one P2 round; `start_meta` is that of the model it started
    from (also used by the Flower engine, flower_federation/server_app.py)."""
    return {"dataset": run.dataset, "architecture": start_meta["architecture"], "round": start_meta["round"] + 1,
            "seed": run.seed, "quick": run.quick, "role": f"p2_client{client}", "client": client,
            "p2_round": round_index, "num_samples": num_samples, "settings": settings.constants(), "stats": stats}


def global_meta(run: Run, round_index: int, client_metas: list[dict]) -> dict:
    """The meta of the average of one P2 round, from its clients' metas (in client order)."""
    first = client_metas[0]
    return {"dataset": run.dataset, "architecture": first["architecture"], "round": first["round"],
            "seed": run.seed, "quick": run.quick, "role": "p2_global", "p2_round": round_index,
            "settings": first["settings"], "client_stats": [meta["stats"] for meta in client_metas]}


def output_paths(files: P2Files, clients: int) -> list[Path]:
    """Every model file of every P2 round, the P2-protected model first (the targets not included)."""
    rounds = [[files.client(r, client) for client in range(clients)] + [files.global_model(r)]
              for r in range(1, files.rounds + 1)]
    return [files.final] + [path for paths in rounds for path in paths if path != files.final]


def aggregate(files: P2Files, round_index: int, clients: int) -> None:
    """FedAvg of every protected client of a round (weighted by sample count)."""
    run = files.run
    states, sizes, metas = [], [], []
    for client in range(clients):
        path = files.client(round_index, client)
        if not path.is_file():
            raise P2Error(f"{path} is missing: protect client {client} first (defend_{run.dataset}.py --client {client})")
        state, meta = load_checkpoint(path, expect={"dataset": run.dataset, "seed": run.seed, "quick": run.quick})
        states.append(state)
        sizes.append(meta["num_samples"])
        metas.append(meta)
    save_checkpoint(files.global_model(round_index), fedavg(states, sizes), global_meta(run, round_index, metas))
    log.info("P2 round %d: averaged model written to %s", round_index, files.global_model(round_index))
