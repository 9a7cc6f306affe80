"""The ClientApp: one client of the federation, run by the SuperNode that holds that client's rows.

Flower starts a fresh process for every message. Each handler rebuilds the experiment from the per-dataset
scripts (job.experiment), trains with the toolkit's own functions and replies with the weights and the number
of rows. FedAvg: training.sgd_client_update, the generator named ("fedavg", round, client) as in-process.
P2: in the first round p2_protection.client_targets from the model the server sent (the client's start), kept
in this node's context state for the later rounds of the run (the soft targets never leave the client), then
the fine-tuning of defend/p2_stage.py with the same generator names.
"""
import json
import time

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_federation import job as jobs
from toolkit.errors import P2Error

app = ClientApp()
TARGETS = "p2-soft-targets"


def say(text: str) -> None:
    print(f"{jobs.MARKER} {time.strftime('%H:%M:%S')} {text}", flush=True)   # into the SuperNode's log


@app.query()
def identify(msg: Message, context: Context) -> Message:
    """Which client this node holds (the server's handshake when it was not told the node ids)."""
    info = ConfigRecord({"partition-id": int(context.node_config["partition-id"])})
    return Message(RecordDict({"info": info}), reply_to=msg)


def _setup(msg: Message, context: Context):
    from toolkit import cli
    from toolkit.run import Run

    config = msg.content["config"]
    client = int(config["client-idx"])
    mine = int(context.node_config["partition-id"])
    if client != mine:
        raise P2Error(f"the server sent client {client}'s work to the SuperNode of client {mine} (partition-id)")
    cli.apply_threads(None)   # $P2_THREADS of the SuperNode, else torch's default
    run = Run(str(config["dataset"]), int(config["seed"]), bool(config["quick"]))
    data = jobs.load_client_partition(str(context.node_config.get("partition-file", "")), run, client,
                                      str(config["partition-digest"]))
    experiment = jobs.experiment(run, json.loads(str(config["settings-changes"])), str(config["settings-digest"]),
                                 data, where=f"client {client}")
    return config, client, experiment


def _reply(msg: Message, state: dict, rows: int, client: int, stats: dict | None = None) -> Message:
    info = ConfigRecord({"client-idx": client, "stats": json.dumps(stats) if stats is not None else ""})
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord({"num-examples": rows}),
                               "info": info}), reply_to=msg)


@app.train()
def fedavg(msg: Message, context: Context) -> Message:
    """One client's local SGD of one FedAvg round."""
    import torch

    from FL_model_generation.training import sgd_client_update
    from toolkit.seeding import torch_generator

    config, client, experiment = _setup(msg, context)
    round_index = int(config["round"])
    features, labels = torch.from_numpy(experiment.data.features), torch.from_numpy(experiment.data.labels)
    state = msg.content["arrays"].to_torch_state_dict()
    updated = sgd_client_update(state, features, labels, experiment.fl,
                                torch_generator(experiment.run.seed, "fedavg", round_index, client))
    say(f"client {client}: FedAvg round {round_index} trained on {len(labels)} rows")
    return _reply(msg, updated, len(labels), client)


@app.train("p2")
def p2(msg: Message, context: Context) -> Message:
    """One client's fine-tuning of one P2 round (its soft targets made in round 1)."""
    import torch

    from defend.p2_protection import client_statistics, client_targets, fine_tune_together
    from FL_model_generation.models import build_model, load_state
    from toolkit.seeding import torch_generator

    config, client, experiment = _setup(msg, context)
    settings, round_index = experiment.p2, int(config["round"])
    features, labels = torch.from_numpy(experiment.data.features), torch.from_numpy(experiment.data.labels)
    model = load_state(build_model(experiment.fl.architecture), msg.content["arrays"].to_torch_state_dict(),
                       f"the model of P2 round {round_index}")
    run_id = str(msg.metadata.run_id)
    if round_index == 1:
        made = client_targets(model, features, labels, settings)
        context.state[TARGETS] = ArrayRecord({name: value.contiguous() for name, value in made.items()})
        context.state[TARGETS + "-run"] = ConfigRecord({"run-id": run_id})
    else:
        kept = context.state.get(TARGETS + "-run")
        if kept is None or str(kept["run-id"]) != run_id:
            raise P2Error(f"client {client}: P2 round {round_index} but this SuperNode kept no soft targets from "
                          f"round 1 of this run (was it restarted?)")
        made = context.state[TARGETS].to_torch_state_dict()
    name = ("p2", client) if settings.rounds == 1 else ("p2", client, "round", round_index)
    fine_tune_together([model], [features], [made["targets"]], settings,
                       [torch_generator(experiment.run.seed, *name)], epochs=settings.epochs_per_round)
    stats = client_statistics(model, features, made)
    say(f"client {client}: P2 round {round_index}/{settings.rounds}: labels kept {stats['labels_kept']:.4f}, top "
        f"probability {stats['mean_top_prob_before']:.3f} -> {stats['mean_top_prob_after']:.3f}")
    return _reply(msg, model.state_dict(), len(labels), client, stats)
