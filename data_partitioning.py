"""Split a dataset into the disjoint roles of one experiment, fixed by the seed, saved to one file.

    python data_partitioning.py --dataset adult [--seed 0] [--quick]

Roles (docs/NOTES.md section 6): the clients' training sets (their union = members); a test set
for utility; evaluation members (drawn from members) and evaluation non-members; members and
non-members known to the supervised attacker (never in the evaluation set); each client's *defense
reference* rows (DEFENSE_REFERENCE_SIZE per client: non-members that the defenses needing them use,
AdvReg's reference set and MemGuard's defender classifier, other_attack_and_defend/advreg.py and
memguard.py); a shadow/reference pool for shadow models and reference models. Every index set is saved,
so any result can be traced to its rows. Output: model/<dataset>/<run>/partition.npz (arrays client<NNN>,
defense_reference_client<NNN>, and one per other role).

The defense reference rows are the defender's own non-member data: disjoint from the members, the test
rows, the evaluation rows, the attacker's known rows and the shadow pool, so neither a defense can train
on rows it is evaluated or attacked on, nor an attacker's shadow or reference model on a defense's rows.
They come out of the rows that were left for the shadow pool (the pool is what remains after them). In
the Dirichlet and writer partitions they are drawn like every other non-member role (from the shuffled
non-member rows; for writers, from the other writers' rows), not with the client's own label skew or
writers: a client's local non-member data would share those in a real deployment.

The sizes are experiment constants of the federation and live with the FedAvg recipe, at the top
of FL_model_generation/FL_model_for_<dataset>.py. Three kinds of partition (PARTITION): "iid",
label-skewed non-IID with Dirichlet(DIRICHLET_ALPHA) shares ("dirichlet") and natural, by writer
("writers", FEMNIST). Client sizes vary in the last two; the file format is the same.
"""
import logging
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from data_preprocessing import load_dataset
from toolkit.checkpoints import load_arrays, save_arrays
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import numpy_rng
from toolkit.settings import Settings, require

log = logging.getLogger("data_partitioning")


@dataclass(frozen=True)
class PartitionSettings(Settings):
    """Rows per role, from FL_model_generation/FL_model_for_<dataset>.py. EVAL_SIZE and KNOWN_SIZE count
    each side (members and non-members). IID: members (CLIENTS x CLIENT_SIZE rows) and every non-member
    role come from one seeded permutation of all rows, each client gets CLIENT_SIZE of the members.
    Dirichlet: the same roles as the IID partition of the same seed, but the members are dealt to the
    clients class by class, each class's shares ~ Dirichlet(DIRICHLET_ALPHA), redrawn (seeded) until
    every client holds MIN_CLIENT_SIZE rows. Writers: WRITERS_PER_CLIENT writers per client, at most
    CLIENT_SIZE of their rows (None: all); every non-member role comes from the other writers' rows.
    DEFENSE_REFERENCE_SIZE non-member rows per client are the defenses' reference rows (taken before the
    shadow pool). SHADOW_POOL_SIZE caps the pool (None: every row left over). Constants a scheme does not
    use are None."""
    partition: Literal["iid", "dirichlet", "writers"]
    clients: int
    client_size: int | None
    test_size: int
    eval_size: int
    known_size: int
    defense_reference_size: int
    shadow_pool_size: int | None
    dirichlet_alpha: float | None
    min_client_size: int | None
    writers_per_client: int | None

    QUICK: ClassVar[dict] = {"CLIENTS": 3, "CLIENT_SIZE": 150, "TEST_SIZE": 300, "EVAL_SIZE": 150,
                             "KNOWN_SIZE": 150, "DEFENSE_REFERENCE_SIZE": 30,
                             "SHADOW_POOL_SIZE": 1200,
                             "WRITERS_PER_CLIENT": lambda value: None if value is None else min(value, 2)}

    def check(self) -> None:
        for name in ("clients", "test_size", "eval_size", "known_size"):
            require(getattr(self, name) >= 1, name.upper(), getattr(self, name), "must be at least 1")
        require(self.defense_reference_size >= 1, "DEFENSE_REFERENCE_SIZE", self.defense_reference_size,
                "must be at least 1 (rows per client; AdvReg and MemGuard train on them)")
        for name in ("client_size", "shadow_pool_size"):
            value = getattr(self, name)
            require(value is None or value >= 1, name.upper(), value, "must be at least 1 (or None)")
        require(self.client_size is not None or self.partition == "writers", "CLIENT_SIZE", self.client_size,
                "only the writers partition takes None (all of a client's rows)")
        if self.partition == "dirichlet":
            require(self.dirichlet_alpha is not None and self.dirichlet_alpha > 0, "DIRICHLET_ALPHA",
                    self.dirichlet_alpha, "must be positive with PARTITION = 'dirichlet'")
            require(self.min_client_size is not None and self.min_client_size >= 1, "MIN_CLIENT_SIZE",
                    self.min_client_size, "must be at least 1 with PARTITION = 'dirichlet'")
        if self.partition == "writers":
            require(self.writers_per_client is not None and self.writers_per_client >= 1, "WRITERS_PER_CLIENT",
                    self.writers_per_client, "must be at least 1 with PARTITION = 'writers'")


ROLE_NAMES = ("members", "test", "eval_members", "eval_nonmembers", "known_members", "known_nonmembers",
              "shadow_pool")


@dataclass
class Partition:
    clients: list[np.ndarray]
    members: np.ndarray
    test: np.ndarray
    eval_members: np.ndarray
    eval_nonmembers: np.ndarray
    known_members: np.ndarray
    known_nonmembers: np.ndarray
    shadow_pool: np.ndarray
    defense_reference: list[np.ndarray]     # per client: the defenses' own non-member rows

    @property
    def all_defense_reference(self) -> np.ndarray:
        return np.concatenate(self.defense_reference) if self.defense_reference else np.zeros(0, dtype=np.int64)


SCRIPT = "FL_model_generation/FL_model_for_{}.py"


def split_roles(num_rows: int, settings: PartitionSettings, seed: int, labels: np.ndarray | None = None,
                groups: np.ndarray | None = None, script: str = SCRIPT.format("<dataset>")) -> Partition:
    """Draw disjoint roles, fixed by the seed. `labels` (N,) is needed by the Dirichlet partition,
    `groups` (N,) (writer ids) by the writer partition; `script` is named in errors."""
    if settings.partition == "writers":
        if groups is None or len(groups) != num_rows:
            raise P2Error(f"PARTITION = 'writers' in {script} needs a writer id per row; this dataset has none")
        return _split_by_writer(groups, settings, seed, script)
    partition = _split_iid(num_rows, settings, seed, script)
    if settings.partition == "dirichlet":
        if labels is None or len(labels) != num_rows:
            raise P2Error("the Dirichlet partition needs the labels of every row")
        partition.clients = _deal_by_label(partition.members, labels, settings, seed, script)
        partition.members = np.concatenate(partition.clients)
    return partition


def non_member_rows(settings: PartitionSettings) -> int:
    """Non-member rows every role but the shadow pool takes: test, evaluation, known, defense reference."""
    return (settings.test_size + settings.eval_size + settings.known_size
            + settings.clients * settings.defense_reference_size)


def _split_iid(num_rows: int, settings: PartitionSettings, seed: int, script: str) -> Partition:
    """Members and every non-member role from one seeded permutation of all rows."""
    non_member_need = non_member_rows(settings)
    member_need = settings.clients * settings.client_size
    if settings.eval_size + settings.known_size > member_need:
        raise P2Error(f"EVAL_SIZE + KNOWN_SIZE = {settings.eval_size + settings.known_size} exceeds the "
                      f"{member_need} members (CLIENTS x CLIENT_SIZE); lower them in {script}")
    if member_need + non_member_need >= num_rows:
        raise P2Error(f"the dataset has {num_rows} rows but {script} asks for {member_need} members + "
                      f"{non_member_need} non-members (test, evaluation, known, CLIENTS x DEFENSE_REFERENCE_SIZE) + a "
                      f"shadow pool; lower CLIENTS, CLIENT_SIZE or the role sizes")
    order = numpy_rng(seed, "partition").permutation(num_rows)
    members, rest = order[:member_need], order[member_need:]
    clients = list(members.reshape(settings.clients, settings.client_size))
    return _with_other_roles(clients, members, rest, settings, seed)


def _with_other_roles(clients: list[np.ndarray], members: np.ndarray, nonmembers: np.ndarray,
                      settings: PartitionSettings, seed: int) -> Partition:
    """Non-member roles taken in order from `nonmembers` (already shuffled); attacker's view of members."""
    test, rest = nonmembers[:settings.test_size], nonmembers[settings.test_size:]
    eval_nonmembers, rest = rest[:settings.eval_size], rest[settings.eval_size:]
    known_nonmembers, rest = rest[:settings.known_size], rest[settings.known_size:]
    reference_need = len(clients) * settings.defense_reference_size
    defense_reference = list(rest[:reference_need].reshape(len(clients), settings.defense_reference_size))
    rest = rest[reference_need:]
    shadow_pool = rest if settings.shadow_pool_size is None else rest[:settings.shadow_pool_size]
    chosen = numpy_rng(seed, "attacker-view").permutation(members)
    eval_members = chosen[:settings.eval_size]
    known_members = chosen[settings.eval_size:settings.eval_size + settings.known_size]
    return Partition(clients=clients, members=members, test=test, eval_members=eval_members,
                     eval_nonmembers=eval_nonmembers, known_members=known_members,
                     known_nonmembers=known_nonmembers, shadow_pool=shadow_pool, defense_reference=defense_reference)


def _deal_by_label(members: np.ndarray, labels: np.ndarray, settings: PartitionSettings, seed: int,
                   script: str) -> list[np.ndarray]:
    """Members dealt to clients class by class, each class's shares ~ Dirichlet(alpha)."""
    if settings.min_client_size * settings.clients > len(members):
        raise P2Error(f"MIN_CLIENT_SIZE = {settings.min_client_size} x {settings.clients} clients exceeds the "
                      f"{len(members)} members; lower it in {script}")
    rng = numpy_rng(seed, "dirichlet")
    member_labels = labels[members]
    for _ in range(1000):
        parts = [[] for _ in range(settings.clients)]
        for label in np.unique(member_labels):
            rows = rng.permutation(members[member_labels == label])
            shares = rng.dirichlet(np.full(settings.clients, float(settings.dirichlet_alpha)))
            cuts = np.round(np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for client, piece in enumerate(np.split(rows, cuts)):
                parts[client].append(piece)
        clients = [rng.permutation(np.concatenate(pieces)) for pieces in parts]
        if min(len(rows) for rows in clients) >= settings.min_client_size:
            return clients
    raise P2Error(f"1000 Dirichlet draws with DIRICHLET_ALPHA = {settings.dirichlet_alpha} all left a client with "
                  f"fewer than {settings.min_client_size} rows; raise DIRICHLET_ALPHA or lower MIN_CLIENT_SIZE "
                  f"in {script}")


def _split_by_writer(groups: np.ndarray, settings: PartitionSettings, seed: int, script: str) -> Partition:
    """Member writers grouped into clients; non-member roles from the other writers' rows."""
    writers = np.unique(groups)
    member_writer_need = settings.clients * settings.writers_per_client
    if member_writer_need >= len(writers):
        raise P2Error(f"the dataset has {len(writers)} writers but {script} asks for CLIENTS = {settings.clients} x "
                      f"WRITERS_PER_CLIENT = {settings.writers_per_client} member writers + non-member writers")
    writer_order = numpy_rng(seed, "partition").permutation(writers)
    member_writers = writer_order[:member_writer_need].reshape(settings.clients, settings.writers_per_client)
    rng = numpy_rng(seed, "partition-rows")
    clients = []
    for client_writers in member_writers:
        rows = rng.permutation(np.flatnonzero(np.isin(groups, client_writers)))
        clients.append(rows if settings.client_size is None else rows[:settings.client_size])
    members = np.concatenate(clients)
    nonmembers = rng.permutation(np.flatnonzero(~np.isin(groups, member_writers)))
    non_member_need = non_member_rows(settings)
    if settings.eval_size + settings.known_size > len(members):
        raise P2Error(f"EVAL_SIZE + KNOWN_SIZE = {settings.eval_size + settings.known_size} exceeds the "
                      f"{len(members)} rows of the member writers; lower them in {script}")
    if non_member_need >= len(nonmembers):
        raise P2Error(f"the {len(writers) - member_writer_need} non-member writers have {len(nonmembers)} rows but "
                      f"{script} asks for {non_member_need} non-members (test, evaluation, known, defense reference) + a "
                      f"shadow pool; lower the role sizes or WRITERS_PER_CLIENT")
    return _with_other_roles(clients, members, nonmembers, settings, seed)


def write_partition(run: Run, settings: PartitionSettings) -> Partition:
    """Draw the roles for this run and write model/<dataset>/<run>/partition.npz."""
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = split_roles(len(dataset.labels), settings, run.seed, labels=dataset.labels, groups=dataset.groups,
                            script=SCRIPT.format(run.dataset))
    arrays = {f"client{i:03d}": rows for i, rows in enumerate(partition.clients)}
    arrays.update({f"defense_reference_client{i:03d}": rows for i, rows in enumerate(partition.defense_reference)})
    arrays.update({role: getattr(partition, role) for role in ROLE_NAMES})
    meta = {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "num_rows": len(dataset.labels),
            "settings": settings.constants()}
    save_arrays(run.partition_path, meta, **arrays)
    client_sizes = [len(rows) for rows in partition.clients]
    log.info("%s partition of %s written to %s: %d clients x %s rows, %d x %d defense reference rows, %d shadow-pool "
             "rows", settings.partition, run.dataset, run.partition_path, len(client_sizes),
             client_sizes[0] if min(client_sizes) == max(client_sizes) else f"{min(client_sizes)}..{max(client_sizes)}",
             len(partition.defense_reference), settings.defense_reference_size, len(partition.shadow_pool))
    return partition


def load_partition(run: Run) -> Partition:
    arrays, _ = load_arrays(run.partition_path, expect={"dataset": run.dataset, "seed": run.seed, "quick": run.quick})
    clients = [arrays[name] for name in sorted(arrays) if name.startswith("client")]
    reference = [arrays[name] for name in sorted(arrays) if name.startswith("defense_reference_client")]
    if len(reference) != len(clients):
        raise P2Error(f"{run.partition_path} has no defense reference rows for every client (an older partition); "
                      f"rerun python data_partitioning.py --dataset {run.dataset} (or main.py)")
    return Partition(clients=clients, defense_reference=reference, **{role: arrays[role] for role in ROLE_NAMES})


def tensors(dataset, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of `rows` as torch tensors."""
    return torch.from_numpy(dataset.features[rows]), torch.from_numpy(dataset.labels[rows])


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("partition")
