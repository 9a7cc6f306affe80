"""Split a dataset into the disjoint roles of one experiment, fixed by the seed, saved to one file.

Roles (P2_REFERENCE.md section 6): the clients' training sets (their union = members); a test set
for utility; evaluation members (drawn from members) and evaluation non-members; members and
non-members known to the supervised attacker (never in the evaluation set); a shadow/reference
pool for shadow models and reference models. Every index set is saved, so any result can be traced
to its rows. Output: model/<dataset>/<run>/partition.npz.

Three kinds of partition, one PARTITIONS row per dataset: IID (PartitionSizes), label-skewed
non-IID with Dirichlet(alpha) shares (DirichletSizes, the MNIST option) and natural, by writer
(WriterSizes, FEMNIST). Client sizes vary in the last two; the file format is the same.
"""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import logging
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import numpy as np
import torch

from data_preprocessing import load_dataset
from toolkit import cli
from toolkit.checkpoints import load_arrays, save_arrays
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import numpy_rng

log = logging.getLogger("data_partitioning")


@dataclass(frozen=True)
class PartitionSizes:
    """IID partition: rows per role. eval_size and known_size count each side (members and non-members).

    Members (clients x client_size rows) and every non-member role are drawn from one seeded
    permutation of all rows; each client gets client_size of the members.
    """
    clients: int
    client_size: int
    test_size: int
    eval_size: int
    known_size: int
    shadow_pool_size: int | None = None  # None: every row left over

    scheme: ClassVar[str] = "iid"

    def quick(self) -> "PartitionSizes":
        return replace(self, clients=min(self.clients, 3), client_size=min(self.client_size or 150, 150),
                       test_size=min(self.test_size, 300), eval_size=min(self.eval_size, 150),
                       known_size=min(self.known_size, 150),
                       shadow_pool_size=min(self.shadow_pool_size or 1200, 1200))


@dataclass(frozen=True)
class DirichletSizes(PartitionSizes):
    """Label-skewed (non-IID) partition: the same roles as the IID partition of the same seed (same
    members, same non-members), but the members are dealt to the clients by label: for each class,
    the clients' shares of its member rows are drawn from Dirichlet(alpha, ..., alpha) (the usual
    FL benchmark partition; small alpha = few classes per client). Client sizes then vary around
    client_size; their total stays clients x client_size. Draws are repeated (seeded) until every
    client holds at least min_client_size rows."""
    alpha: float = 0.5
    min_client_size: int = 10

    scheme: ClassVar[str] = "dirichlet"


@dataclass(frozen=True)
class WriterSizes(PartitionSizes):
    """Natural partition by writer (FEMNIST): writers are shuffled (seeded); clients x writers_per_client
    of them are member writers, grouped in that order, writers_per_client per client, and a client
    holds its writers' rows (at most client_size of them, drawn at random; None = all). Every non-member
    role (test, evaluation and known non-members, shadow pool) is drawn from the rows of the other
    writers, so no writer is split between clients nor between members and non-members. Rows of member
    writers beyond a client's client_size are left unused."""
    writers_per_client: int = 5

    scheme: ClassVar[str] = "writers"

    def quick(self) -> "WriterSizes":
        return replace(super().quick(), writers_per_client=min(self.writers_per_client, 2))


# Experiment constants, one row per dataset. Why these sizes:
# - adult: the original (10 clients x 2,400 training rows; 48,842 rows in all).
# - purchase100 (+ the KMeans variants purchase2/10/20/50, same rows): 197,324 rows; 10 x 2,000 = 20,000
#   members, the order of the target training sets used with Purchase100 in the MIA literature (10-20k).
#   The shadow pool is capped at 40,000 rows, so that each reference model (trained on half the pool)
#   sees as many rows as the target (20,000), not 82,000 rows at four times the training time.
# - location: only 5,010 rows: 10 x 150 = 1,500 members, 1,000 test, 500 + 500 evaluation, 500 + 500
#   known to the attacker (members drawn from the 1,500), leaving 1,510 rows for the shadow pool.
# - mnist: 70,000 rows: 10 x 2,000 = 20,000 members, the usual 10,000-row test set, 37,000 left over.
#   MNIST_DIRICHLET_ALPHA switches to the label-skewed non-IID partition (same members, same roles).
# - femnist: natural, FEMNIST_CLIENTS clients of FEMNIST_WRITERS_PER_CLIENT writers each (about 225 rows
#   per writer in LEAF: ~11,000 members); LEAF with --sf 0.05 gives ~180 writers, so ~130 writers
#   (~29,000 rows) remain for the non-member roles.
# - cifar10: the original port (10 x 3,000 training images, 30,000 non-members: 10,000 test, 2,000 +
#   1,000 evaluation and known, 17,000 shadow pool).
MNIST_DIRICHLET_ALPHA: float | None = None  # None: IID (default); e.g. 0.5 for the non-IID option
FEMNIST_CLIENTS = 10
FEMNIST_WRITERS_PER_CLIENT = 5

_PURCHASE = PartitionSizes(clients=10, client_size=2000, test_size=10000, eval_size=2000, known_size=1000,
                           shadow_pool_size=40000)
_MNIST = PartitionSizes(clients=10, client_size=2000, test_size=10000, eval_size=2000, known_size=1000)
PARTITIONS = {
    "adult": PartitionSizes(clients=10, client_size=2400, test_size=4000, eval_size=2000, known_size=1000),
    "purchase100": _PURCHASE,
    **{f"purchase{k}": _PURCHASE for k in (2, 10, 20, 50)},
    "location": PartitionSizes(clients=10, client_size=150, test_size=1000, eval_size=500, known_size=500),
    "mnist": _MNIST if MNIST_DIRICHLET_ALPHA is None else DirichletSizes(**asdict(_MNIST), alpha=MNIST_DIRICHLET_ALPHA),
    "femnist": WriterSizes(clients=FEMNIST_CLIENTS, client_size=None, writers_per_client=FEMNIST_WRITERS_PER_CLIENT,
                           test_size=5000, eval_size=2000, known_size=1000),
    "cifar10": PartitionSizes(clients=10, client_size=3000, test_size=10000, eval_size=2000, known_size=1000),
}

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


def sizes_for(run: Run) -> PartitionSizes:
    if run.dataset not in PARTITIONS:
        raise P2Error(f"no partition sizes for dataset {run.dataset!r}; add a row to PARTITIONS in data_partitioning.py")
    sizes = PARTITIONS[run.dataset]
    return sizes.quick() if run.quick else sizes


def split_roles(num_rows: int, sizes: PartitionSizes, seed: int, labels: np.ndarray | None = None,
                groups: np.ndarray | None = None) -> Partition:
    """Draw disjoint roles, fixed by the seed. `labels` (N,) is needed by the Dirichlet partition,
    `groups` (N,) (writer ids) by the writer partition; the IID partition needs neither."""
    if isinstance(sizes, WriterSizes):
        if groups is None or len(groups) != num_rows:
            raise P2Error("the writer partition needs a writer id per row (Dataset.groups); this dataset has none")
        return _split_by_writer(groups, sizes, seed)
    partition = _split_iid(num_rows, sizes, seed)
    if isinstance(sizes, DirichletSizes):
        if labels is None or len(labels) != num_rows:
            raise P2Error("the Dirichlet partition needs the labels of every row")
        partition.clients = _deal_by_label(partition.members, labels, sizes, seed)
        partition.members = np.concatenate(partition.clients)
    return partition


def _split_iid(num_rows: int, sizes: PartitionSizes, seed: int) -> Partition:
    """Members and every non-member role from one seeded permutation of all rows."""
    non_member_need = sizes.test_size + sizes.eval_size + sizes.known_size
    member_need = sizes.clients * sizes.client_size
    if sizes.eval_size + sizes.known_size > member_need:
        raise P2Error(f"EVAL_SIZE + KNOWN_SIZE = {sizes.eval_size + sizes.known_size} exceeds the "
                      f"{member_need} members; lower them in PARTITIONS")
    if member_need + non_member_need >= num_rows:
        raise P2Error(f"the dataset has {num_rows} rows but the partition needs {member_need} members + "
                      f"{non_member_need} non-members + a shadow pool; lower the sizes in PARTITIONS")
    order = numpy_rng(seed, "partition").permutation(num_rows)
    members, rest = order[:member_need], order[member_need:]
    clients = list(members.reshape(sizes.clients, sizes.client_size))
    return _with_other_roles(clients, members, rest, sizes, seed)


def _with_other_roles(clients: list[np.ndarray], members: np.ndarray, nonmembers: np.ndarray,
                      sizes: PartitionSizes, seed: int) -> Partition:
    """Non-member roles taken in order from `nonmembers` (already shuffled); attacker's view of members."""
    test, rest = nonmembers[:sizes.test_size], nonmembers[sizes.test_size:]
    eval_nonmembers, rest = rest[:sizes.eval_size], rest[sizes.eval_size:]
    known_nonmembers, rest = rest[:sizes.known_size], rest[sizes.known_size:]
    shadow_pool = rest if sizes.shadow_pool_size is None else rest[:sizes.shadow_pool_size]
    chosen = numpy_rng(seed, "attacker-view").permutation(members)
    eval_members = chosen[:sizes.eval_size]
    known_members = chosen[sizes.eval_size:sizes.eval_size + sizes.known_size]
    return Partition(clients=clients, members=members, test=test, eval_members=eval_members,
                     eval_nonmembers=eval_nonmembers, known_members=known_members,
                     known_nonmembers=known_nonmembers, shadow_pool=shadow_pool)


def _deal_by_label(members: np.ndarray, labels: np.ndarray, sizes: DirichletSizes, seed: int) -> list[np.ndarray]:
    """Members dealt to clients class by class, each class's shares ~ Dirichlet(alpha)."""
    if not sizes.alpha > 0:
        raise P2Error(f"Dirichlet ALPHA={sizes.alpha} must be positive")
    if sizes.min_client_size * sizes.clients > len(members):
        raise P2Error(f"MIN_CLIENT_SIZE={sizes.min_client_size} x {sizes.clients} clients exceeds the "
                      f"{len(members)} members")
    rng = numpy_rng(seed, "dirichlet")
    member_labels = labels[members]
    for _ in range(1000):
        parts = [[] for _ in range(sizes.clients)]
        for label in np.unique(member_labels):
            rows = rng.permutation(members[member_labels == label])
            shares = rng.dirichlet(np.full(sizes.clients, float(sizes.alpha)))
            cuts = np.round(np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for client, piece in enumerate(np.split(rows, cuts)):
                parts[client].append(piece)
        clients = [rng.permutation(np.concatenate(pieces)) for pieces in parts]
        if min(len(rows) for rows in clients) >= sizes.min_client_size:
            return clients
    raise P2Error(f"1000 Dirichlet draws with ALPHA={sizes.alpha} all left a client with fewer than "
                  f"{sizes.min_client_size} rows; raise ALPHA or lower MIN_CLIENT_SIZE")


def _split_by_writer(groups: np.ndarray, sizes: WriterSizes, seed: int) -> Partition:
    """Member writers grouped into clients; non-member roles from the other writers' rows."""
    writers = np.unique(groups)
    member_writer_need = sizes.clients * sizes.writers_per_client
    if sizes.writers_per_client < 1:
        raise P2Error(f"WRITERS_PER_CLIENT={sizes.writers_per_client} must be at least 1")
    if member_writer_need >= len(writers):
        raise P2Error(f"the dataset has {len(writers)} writers but the partition needs {sizes.clients} clients x "
                      f"{sizes.writers_per_client} writers + non-member writers; lower them in PARTITIONS")
    writer_order = numpy_rng(seed, "partition").permutation(writers)
    member_writers = writer_order[:member_writer_need].reshape(sizes.clients, sizes.writers_per_client)
    rng = numpy_rng(seed, "partition-rows")
    clients = []
    for client_writers in member_writers:
        rows = rng.permutation(np.flatnonzero(np.isin(groups, client_writers)))
        clients.append(rows if sizes.client_size is None else rows[:sizes.client_size])
    members = np.concatenate(clients)
    nonmembers = rng.permutation(np.flatnonzero(~np.isin(groups, member_writers)))
    non_member_need = sizes.test_size + sizes.eval_size + sizes.known_size
    if sizes.eval_size + sizes.known_size > len(members):
        raise P2Error(f"EVAL_SIZE + KNOWN_SIZE = {sizes.eval_size + sizes.known_size} exceeds the "
                      f"{len(members)} rows of the member writers; lower them in PARTITIONS")
    if non_member_need >= len(nonmembers):
        raise P2Error(f"the {len(writers) - member_writer_need} non-member writers have {len(nonmembers)} rows but "
                      f"the partition needs {non_member_need} non-members + a shadow pool; lower the sizes "
                      f"or WRITERS_PER_CLIENT in PARTITIONS")
    return _with_other_roles(clients, members, nonmembers, sizes, seed)


def partition_meta(run: Run, num_rows: int) -> dict:
    sizes = sizes_for(run)
    return {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "num_rows": num_rows,
            "scheme": sizes.scheme, "sizes": asdict(sizes)}


def write_partition(run: Run) -> Partition:
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = split_roles(len(dataset.labels), sizes_for(run), run.seed, labels=dataset.labels,
                            groups=dataset.groups)
    arrays = {f"client{i:03d}": rows for i, rows in enumerate(partition.clients)}
    arrays.update({role: getattr(partition, role) for role in ROLE_NAMES})
    save_arrays(run.partition_path, partition_meta(run, len(dataset.labels)), **arrays)
    client_sizes = [len(rows) for rows in partition.clients]
    log.info("%s partition of %s written to %s: %d clients x %s rows, %d shadow-pool rows", sizes_for(run).scheme,
             run.dataset, run.partition_path, len(client_sizes),
             client_sizes[0] if min(client_sizes) == max(client_sizes) else f"{min(client_sizes)}..{max(client_sizes)}",
             len(partition.shadow_pool))
    return partition


def load_partition(run: Run) -> Partition:
    arrays, _ = load_arrays(run.partition_path, expect={"dataset": run.dataset, "seed": run.seed,
                                                         "quick": run.quick})
    clients = [arrays[name] for name in sorted(arrays) if name.startswith("client")]
    return Partition(clients=clients, **{role: arrays[role] for role in ROLE_NAMES})


def is_done(run: Run) -> bool:
    """True when partition.npz exists and was drawn with the current PARTITIONS row for this run."""
    try:
        _, meta = load_arrays(run.partition_path, expect={"dataset": run.dataset, "seed": run.seed,
                                                          "quick": run.quick})
    except P2Error:
        return False
    sizes = sizes_for(run)
    return meta.get("sizes") == asdict(sizes) and meta.get("scheme", "iid") == sizes.scheme  # files before schemes: iid


def tensors(dataset, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of `rows` as torch tensors."""
    return torch.from_numpy(dataset.features[rows]), torch.from_numpy(dataset.labels[rows])


def main(argv=None) -> None:
    args = cli.parser(__doc__).parse_args(argv)
    cli.setup_logging(args.verbose)
    write_partition(cli.run_from_args(args))


if __name__ == "__main__":
    cli.main_guard(main)
