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
from toolkit import cli
from toolkit.checkpoints import checkpoint_matches, load_checkpoint, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator

log = logging.getLogger(__name__)


def effective_settings(run: Run, settings: P2Settings) -> P2Settings:
    return settings.quick() if run.quick else settings


def starting_checkpoint(run: Run, settings: P2Settings, client: int):
    if settings.start == "global":
        return run.fl_final_path
    _, meta = load_checkpoint(run.fl_final_path, expect={"dataset": run.dataset, "seed": run.seed})
    return run.fl_client_path(meta["round"], client)


def protect_clients(run: Run, settings: P2Settings, clients: list[int] | None = None) -> None:
    """Protect the given clients (all when None), each written to its own checkpoint."""
    settings = effective_settings(run, settings)
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    chosen = range(len(partition.clients)) if clients is None else clients
    for client in chosen:
        if not 0 <= client < len(partition.clients):
            raise P2Error(f"--client {client} does not exist: this run has clients 0..{len(partition.clients) - 1}")
    for client in tqdm(chosen, desc=f"P2 {run.dataset}", unit="client", leave=False):
        start_path = starting_checkpoint(run, settings, client)
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
            "settings": settings.as_dict(), "stats": stats})


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


def is_done(run: Run, settings: P2Settings) -> bool:
    """True when p2/global.pt exists and was made with exactly these settings."""
    return checkpoint_matches(run.p2_global_path, {"settings": effective_settings(run, settings).as_dict(),
                                                   "seed": run.seed, "quick": run.quick},
                              inputs=(run.fl_final_path,))


def run_stage(run: Run, settings: P2Settings, client: str = "all") -> None:
    """`client` is an index (protect that client only) or "all" (protect every client, then aggregate)."""
    if client == "all":
        protect_clients(run, settings)
        aggregate(run)
    elif client.isdigit():
        protect_clients(run, settings, [int(client)])
    else:
        raise P2Error(f"--client {client!r} must be a client index or 'all'")


def stage_main(dataset: str, settings: P2Settings, description: str, argv=None) -> None:
    parser = cli.parser(description, dataset=dataset)
    parser.add_argument("--client", default="all",
                        help="client index to protect, or 'all' to protect every client and aggregate (default)")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)
    cli.main_guard(lambda _: run_stage(cli.run_from_args(args), settings, args.client))
