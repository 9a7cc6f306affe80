"""What one Flower run is asked to do, and what the ServerApp, the ClientApps and the driver share.

A Job is the run config of one `flwr run` (its keys and defaults are in this folder's pyproject.toml): which
stage (every FedAvg round, or every P2 round), which experiment run (dataset, seed, preset, folders), the
settings changed on top of the per-dataset scripts, the stage's provenance, and the fault settings.

Both apps build the experiment as the in-process run does, with pipeline.load_experiment from the per-dataset
scripts, and compare a digest of the constants with the driver's, so a machine with other constants refuses
to take part. A client holds only its own rows: partition files, one per client, written from the run's
partition (`write_client_partitions`; the path is the SuperNode's node config `partition-file`).
"""
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import P2Error
from toolkit.run import Run

APP_DIR = Path(__file__).resolve().parent
STAGES = {"fedavg": "FedAvg", "p2": "P2"}
MESSAGE_TYPES = {"fedavg": "train", "p2": "train.p2"}   # ClientApp: @app.train() and @app.train("p2")
MARKER = "[p2-flower]"                                   # prefixes every line the driver reads from the logs


def app_config() -> dict:
    """The run config's keys and defaults (pyproject.toml, [tool.flwr.app.config])."""
    return tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


@dataclass(frozen=True)
class Job:
    stage: str
    run: Run
    model_dir: str = ""
    settings_changes: dict = field(default_factory=dict)
    settings_digest: str = ""
    made_from: dict | None = None
    nodes: dict = field(default_factory=dict)       # client index -> SuperNode id
    min_clients: int = 0
    max_parallel: int = 0                            # clients working at once (0: all)
    reply_timeout: float = 900.0
    node_wait_timeout: float = 120.0
    poll_interval: float = 0.2
    threads: int = 0

    def __post_init__(self):
        if self.stage not in STAGES:
            raise P2Error(f"Flower run config: stage = {self.stage!r}; choose one of {', '.join(STAGES)}")
        if self.min_clients < 0 or self.max_parallel < 0 or self.reply_timeout <= 0:
            raise P2Error(f"Flower run config: min-clients = {self.min_clients} must be >= 0 (0: every client) and "
                          f"reply-timeout = {self.reply_timeout} positive")

    @property
    def label(self) -> str:
        return STAGES[self.stage]

    def to_run_config(self) -> dict:
        run = self.run
        config = {"stage": self.stage, "dataset": run.dataset, "seed": run.seed, "quick": run.quick,
                  "data-dir": str(Path(run.data_dir).expanduser().resolve()) if run.data_dir else "",
                  "model-dir": self.model_dir,
                  "settings-changes": json.dumps(self.settings_changes, sort_keys=True),
                  "settings-digest": self.settings_digest,
                  "made-from": json.dumps(self.made_from) if self.made_from is not None else "",
                  "nodes": " ".join(f"{client}:{node}" for client, node in sorted(self.nodes.items())),
                  "min-clients": self.min_clients, "max-parallel": self.max_parallel,
                  "reply-timeout": float(self.reply_timeout),
                  "node-wait-timeout": float(self.node_wait_timeout), "poll-interval": float(self.poll_interval),
                  "threads": self.threads}
        unknown = sorted(set(config) - set(app_config()))
        if unknown:
            raise RuntimeError(f"run config keys {unknown} are missing from {APP_DIR / 'pyproject.toml'}")
        return config

    @classmethod
    def from_run_config(cls, config) -> "Job":
        config = dict(config)
        nodes = {}
        for pair in str(config["nodes"]).split():
            client, _, node = pair.partition(":")
            nodes[int(client)] = int(node)
        return cls(stage=str(config["stage"]),
                   run=Run(str(config["dataset"]), int(config["seed"]), bool(config["quick"]),
                           str(config["data-dir"]) or None),
                   model_dir=str(config["model-dir"]),
                   settings_changes=json.loads(str(config["settings-changes"]) or "{}"),
                   settings_digest=str(config["settings-digest"]),
                   made_from=json.loads(str(config["made-from"])) if str(config["made-from"]) else None,
                   nodes=nodes, min_clients=int(config["min-clients"]), max_parallel=int(config["max-parallel"]),
                   reply_timeout=float(config["reply-timeout"]),
                   node_wait_timeout=float(config["node-wait-timeout"]),
                   poll_interval=float(config["poll-interval"]), threads=int(config["threads"]))


def run_config_toml(config: dict) -> str:
    """A run config as a TOML file for `flwr run --run-config <file>.toml` (strings of any content: a JSON
    string literal is a valid TOML basic string)."""
    lines = []
    for key, value in config.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = json.dumps(str(value), ensure_ascii=True)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the experiment, on every side

def experiment(run: Run, changes: dict, digest: str, data=None, where: str = "the ServerApp"):
    """pipeline.load_experiment (from the scripts; `data`: a client's own rows), the driver's changes on top,
    then the digest compared with the driver's."""
    import pipeline

    made = pipeline.with_constants(pipeline.load_experiment(run, data), changes)
    mine = pipeline.settings_digest(made)
    if digest and mine != digest:
        raise P2Error(f"{where}: the constants of its per-dataset scripts (digest {mine}) differ from the driver's "
                      f"({digest}); install the same version of the project on every machine")
    return made


# ------------------------------------------------------------------ each client's own rows

def partition_file(run: Run, client: int) -> Path:
    """Where the driver writes client `client`'s rows for its SuperNode (the local federation reads it there)."""
    return run.model_dir / "flower" / "partitions" / f"client{client:03d}.npz"


def write_client_partitions(experiment, clients: list[int] | None = None) -> list[Path]:
    """Each client's features and labels, from the run's partition.npz, as the file its SuperNode reads
    (copy file i to the machine of client i for a real federation). Rewritten only when stale."""
    from data_partitioning import load_partition, tensors
    from toolkit.checkpoints import load_arrays, save_arrays
    from toolkit.digests import file_digest

    run = experiment.run
    partition = load_partition(run)
    source = file_digest(run.partition_path)
    written = []
    for client in clients if clients is not None else range(len(partition.clients)):
        path = partition_file(run, client)
        meta = {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "client": client,
                "partition": source, "data": experiment.data.fingerprint, "num_classes": experiment.data.num_classes}
        try:
            _, found = load_arrays(path) if path.is_file() else (None, None)
        except P2Error:
            found = None
        if found != meta:
            features, labels = tensors(experiment.data, partition.clients[client])
            save_arrays(path, meta, features=features.numpy(), labels=labels.numpy())
        written.append(path)
    return written


def load_client_partition(path: str, run: Run, client: int, partition_digest: str):
    """A client's own rows as a Dataset (what pipeline.load_experiment checks the settings against), after
    checking the file belongs to this run and client."""
    import numpy as np

    from data_sources.dataset import Dataset
    from toolkit.checkpoints import load_arrays

    if not path:
        raise P2Error(f"client {client}: its SuperNode has no node config partition-file; start it with "
                      f"--node-config 'partition-id={client} partition-file=\"/path/client{client:03d}.npz\"'")
    arrays, meta = load_arrays(Path(path), expect={"dataset": run.dataset, "seed": run.seed, "quick": run.quick,
                                                   "client": client})
    if partition_digest and meta["partition"] != partition_digest:
        raise P2Error(f"client {client}: {path} was written from another partition.npz than the server's; "
                      f"write it again (python -m flower_federation.local_federation --write-partitions)")
    return Dataset(name=run.dataset, features=arrays["features"], labels=arrays["labels"].astype(np.int64),
                   num_classes=int(meta["num_classes"]), fingerprint=meta["data"])


def settle(label: str, round_index: int, failures: dict, answered: list[int], clients: int,
           minimum: int) -> tuple[list[int], str]:
    """After `failures` ({client: (SuperNode id, why)}) in a round: (the clients the run goes on with, the line
    that says so) when those that answered are at least `minimum`; else one P2Error naming every failed client
    and the round (the ServerApp's policy, server_app.py)."""
    names = "; ".join(f"client {client} (SuperNode {node}) failed: {why}" for client, (node, why) in
                      sorted(failures.items()))
    if len(answered) < minimum:
        raise P2Error(f"{label} round {round_index}: {names}; {len(answered)} of {clients} clients left, fewer than "
                      f"the {minimum} that min-clients asks for")
    return sorted(answered), (f"{label} round {round_index} completes without client(s) {sorted(failures)}: "
                              f"averaged over clients {sorted(answered)} (min-clients = {minimum})")


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if isinstance(error, P2Error) else f"{type(error).__name__}: {text}"
