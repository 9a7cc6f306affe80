"""Split a dataset into the disjoint roles of one experiment, fixed by the seed, saved to one file.

Roles (P2_REFERENCE.md section 6): the clients' training sets (their union = members); a test set
for utility; evaluation members (drawn from members) and evaluation non-members; members and
non-members known to the supervised attacker (never in the evaluation set); a shadow/reference
pool for shadow models and reference models. Every index set is saved, so any result can be traced
to its rows. Output: model/<dataset>/<run>/partition.npz.
"""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import logging
from dataclasses import asdict, dataclass, replace

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
    """Rows per role. eval_size and known_size count each side (members and non-members)."""
    clients: int
    client_size: int
    test_size: int
    eval_size: int
    known_size: int
    shadow_pool_size: int | None = None  # None: every row left over

    def quick(self) -> "PartitionSizes":
        return PartitionSizes(clients=min(self.clients, 3), client_size=min(self.client_size, 150),
                              test_size=min(self.test_size, 300), eval_size=min(self.eval_size, 150),
                              known_size=min(self.known_size, 150),
                              shadow_pool_size=min(self.shadow_pool_size or 1200, 1200))


# Experiment constants, one row per dataset.
PARTITIONS = {
    "adult": PartitionSizes(clients=10, client_size=2400, test_size=4000, eval_size=2000, known_size=1000),
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


def split_roles(num_rows: int, sizes: PartitionSizes, seed: int) -> Partition:
    """Draw disjoint roles from a seeded permutation of all rows."""
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
    test, rest = rest[:sizes.test_size], rest[sizes.test_size:]
    eval_nonmembers, rest = rest[:sizes.eval_size], rest[sizes.eval_size:]
    known_nonmembers, rest = rest[:sizes.known_size], rest[sizes.known_size:]
    shadow_pool = rest if sizes.shadow_pool_size is None else rest[:sizes.shadow_pool_size]
    chosen = numpy_rng(seed, "attacker-view").permutation(members)
    eval_members = chosen[:sizes.eval_size]
    known_members = chosen[sizes.eval_size:sizes.eval_size + sizes.known_size]
    return Partition(clients=clients, members=members, test=test, eval_members=eval_members,
                     eval_nonmembers=eval_nonmembers, known_members=known_members,
                     known_nonmembers=known_nonmembers, shadow_pool=shadow_pool)


def partition_meta(run: Run, num_rows: int) -> dict:
    return {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "num_rows": num_rows,
            "sizes": asdict(sizes_for(run))}


def write_partition(run: Run) -> Partition:
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = split_roles(len(dataset.labels), sizes_for(run), run.seed)
    arrays = {f"client{i:03d}": rows for i, rows in enumerate(partition.clients)}
    arrays.update({role: getattr(partition, role) for role in ROLE_NAMES})
    save_arrays(run.partition_path, partition_meta(run, len(dataset.labels)), **arrays)
    log.info("partition of %s written to %s: %d clients x %d rows, %d shadow-pool rows", run.dataset,
             run.partition_path, len(partition.clients), len(partition.clients[0]), len(partition.shadow_pool))
    return partition


def load_partition(run: Run) -> Partition:
    arrays, _ = load_arrays(run.partition_path, expect={"dataset": run.dataset, "seed": run.seed,
                                                         "quick": run.quick})
    clients = [arrays[name] for name in sorted(arrays) if name.startswith("client")]
    return Partition(clients=clients, **{role: arrays[role] for role in ROLE_NAMES})


def tensors(dataset, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of `rows` as torch tensors."""
    return torch.from_numpy(dataset.features[rows]), torch.from_numpy(dataset.labels[rows])


def main(argv=None) -> None:
    args = cli.parser(__doc__).parse_args(argv)
    cli.setup_logging(args.verbose)
    write_partition(cli.run_from_args(args))


if __name__ == "__main__":
    cli.main_guard(main)
