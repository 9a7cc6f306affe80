"""The P2 round as a pipeline stage: protect clients one by one, then aggregate.

Each client starts from the final global FL model (the paper's additional round) or, with
START="last_local", from its own local model of the last round (the original code's variant, whose
average then replaces that round's aggregation). Writes model/<dataset>/<run>/p2/clientNNN.pt and
p2/global.pt.
"""
import logging

from tqdm import tqdm

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from defend.p2_protection import P2Settings, protect
from FL_model_generation.fedavg import fedavg
from FL_model_generation.fl_stage import load_model
from toolkit.checkpoints import load_checkpoint, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator

log = logging.getLogger(__name__)


def starting_checkpoint(run: Run, settings: P2Settings, fl_rounds: int, client: int):
    """The model client `client` starts from: the final global model, or its own last local model."""
    return run.fl_final_path if settings.start == "global" else run.fl_client_path(fl_rounds, client)


def protect_clients(run: Run, settings: P2Settings, fl_rounds: int, clients: list[int]) -> None:
    """Protect the given clients, each written to its own checkpoint."""
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    for client in tqdm(clients, desc=f"P2 {run.dataset}", unit="client", leave=False):
        start_path = starting_checkpoint(run, settings, fl_rounds, client)
        model, meta = load_model(start_path, run)
        features, labels = tensors(dataset, partition.clients[client])
        seed_torch(run.seed, "p2", client)
        stats = protect(model, features, labels, settings, torch_generator(run.seed, "p2", client))
        log.info("P2 client %d: mean lambda %.3f, labels kept %.4f, top prob %.3f -> %.3f", client,
                 stats["mean_lambda"], stats["labels_kept"], stats["mean_top_prob_before"],
                 stats["mean_top_prob_after"])
        save_checkpoint(run.p2_client_path(client), model.state_dict(), {
            "dataset": run.dataset, "architecture": meta["architecture"], "round": meta["round"] + 1,
            "seed": run.seed, "quick": run.quick, "role": f"p2_client{client}", "client": client,
            "num_samples": len(labels), "start": str(start_path.relative_to(run.model_dir)),
            "settings": settings.constants(), "stats": stats})


def aggregate(run: Run) -> None:
    """FedAvg of every protected client (weighted by sample count) into p2/global.pt."""
    partition = load_partition(run)
    states, sizes, metas = [], [], []
    for client in range(len(partition.clients)):
        path = run.p2_client_path(client)
        if not path.is_file():
            raise P2Error(f"{path} is missing: protect client {client} first (defend_{run.dataset}.py --client {client})")
        state, meta = load_checkpoint(path, expect={"dataset": run.dataset, "seed": run.seed, "quick": run.quick})
        states.append(state)
        sizes.append(meta["num_samples"])
        metas.append(meta)
    if any(meta["settings"] != metas[0]["settings"] for meta in metas):
        raise P2Error(f"the protected clients in {run.model_dir / 'p2'} were made with different P2 settings; "
                      f"rerun defend_{run.dataset}.py --client all")
    save_checkpoint(run.p2_global_path, fedavg(states, sizes), {
        "dataset": run.dataset, "architecture": metas[0]["architecture"], "round": metas[0]["round"],
        "seed": run.seed, "quick": run.quick, "role": "p2_global", "settings": metas[0]["settings"],
        "client_stats": [meta["stats"] for meta in metas]})
    log.info("protected global model written to %s", run.p2_global_path)
