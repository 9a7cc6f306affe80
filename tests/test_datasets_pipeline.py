"""Partitions of every kind (IID, Dirichlet non-IID, natural by writer) and the quick pipeline end to
end on a small MNIST written in the real gzip IDX format.

No test reads shared data or the network: every data, cache, model and results folder is temporary.
"""
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from data_partitioning import PartitionSettings, load_partition, split_roles, write_partition
from data_preprocessing import DATASETS
from tests.helpers import script_settings
from toolkit.checkpoints import load_arrays
from toolkit.errors import P2Error
from toolkit.run import Run

ROWS = {"adult": 48842, "purchase100": 197324, "location": 5010, "mnist": 70000, "cifar10": 60000}
NON_MEMBER_ROLES = ("test", "eval_nonmembers", "known_nonmembers", "shadow_pool")


@pytest.fixture
def folders(tmp_path, monkeypatch) -> Path:
    """Temporary data, cache, model and results folders; returns the data folder."""
    for variable, name in (("P2_DATA_DIR", "data"), ("P2_CACHE_DIR", "cache"), ("P2_MODEL_DIR", "model"),
                           ("P2_RESULTS_DIR", "results")):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / name))
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "0")  # synthetic files cannot match the official MD5s
    return tmp_path / "data"


def check_partition(partition, sizes: PartitionSettings | None = None) -> None:
    """Roles disjoint (the defenses' reference rows of every client included), clients partition the members, the
    attacker's members are members."""
    members = set(partition.members.tolist())
    assert len(members) == len(partition.members)
    client_rows = np.concatenate(partition.clients)
    assert len(set(client_rows.tolist())) == len(client_rows) and set(client_rows.tolist()) == members
    seen = set(members)
    assert len(partition.defense_reference) == len(partition.clients)
    for role in NON_MEMBER_ROLES:
        rows = set(getattr(partition, role).tolist())
        assert len(rows) == len(getattr(partition, role)) and not rows & seen, role
        seen |= rows
    for client, reference in enumerate(partition.defense_reference):  # each client's own non-members
        rows = set(reference.tolist())
        assert len(rows) == len(reference) and not rows & seen, f"defense reference of client {client}"
        seen |= rows
    eval_members, known_members = set(partition.eval_members.tolist()), set(partition.known_members.tolist())
    assert eval_members <= members and known_members <= members and not eval_members & known_members
    if sizes is not None:
        assert len(partition.clients) == sizes.clients
        assert (len(partition.test), len(partition.eval_nonmembers), len(partition.known_nonmembers)) == \
               (sizes.test_size, sizes.eval_size, sizes.known_size)
        assert (len(partition.eval_members), len(partition.known_members)) == (sizes.eval_size, sizes.known_size)
        assert [len(rows) for rows in partition.defense_reference] == [sizes.defense_reference_size] * sizes.clients
        if sizes.shadow_pool_size is not None:  # a cap: rows left over beyond it stay unused
            assert len(partition.shadow_pool) <= sizes.shadow_pool_size


def same_partition(first, second) -> bool:
    roles = ("members", "eval_members", "known_members", *NON_MEMBER_ROLES)
    return len(first.clients) == len(second.clients) and \
        all(np.array_equal(a, b) for a, b in zip(first.clients, second.clients)) and \
        all(np.array_equal(a, b) for a, b in zip(first.defense_reference, second.defense_reference)) and \
        all(np.array_equal(getattr(first, role), getattr(second, role)) for role in roles)


def writer_groups(rng: np.random.Generator, writers: int, low: int, high: int) -> np.ndarray:
    """A shuffled writer id per row, each writer with between low and high rows (LEAF-like)."""
    return rng.permutation(np.repeat(np.arange(writers), rng.integers(low, high, writers)))


# ---------------------------------------------------------------- each dataset's partition constants


def partition_settings(dataset: str, quick: bool = False, **changes) -> PartitionSettings:
    settings = script_settings("partition", dataset, **changes)
    return settings.quick() if quick else settings


@pytest.mark.parametrize("dataset", sorted(ROWS))
@pytest.mark.parametrize("quick", [False, True])
def test_partition_constants_fit_their_dataset(dataset, quick):
    sizes = partition_settings(dataset, quick)
    labels = np.random.default_rng(0).integers(0, 10, ROWS[dataset])
    partition = split_roles(ROWS[dataset], sizes, seed=0, labels=labels)
    check_partition(partition, sizes)
    assert len(partition.members) == sizes.clients * sizes.client_size


@pytest.mark.parametrize("quick", [False, True])
def test_femnist_constants_fit_a_leaf_sized_dataset(quick):
    """LEAF's FEMNIST with --sf 0.05: about 180 writers of about 225 rows each."""
    sizes = partition_settings("femnist", quick)
    assert sizes.partition == "writers"
    groups = writer_groups(np.random.default_rng(0), 180, 100, 350)
    partition = split_roles(len(groups), sizes, seed=0, groups=groups)
    check_partition(partition, sizes)
    for rows in partition.clients:
        assert len(np.unique(groups[rows])) == sizes.writers_per_client


def test_location_constants_leave_a_shadow_pool():
    partition = split_roles(5010, partition_settings("location"), seed=0)
    assert [len(rows) for rows in partition.clients] == [150] * 10
    assert [len(rows) for rows in partition.defense_reference] == [50] * 10
    assert len(partition.shadow_pool) == 5010 - 1500 - 1000 - 500 - 500 - 500


# ---------------------------------------------------------------- IID


def test_iid_partition_is_sized_disjoint_and_seeded():
    sizes = partition_settings("adult", clients=4, client_size=50, test_size=100, eval_size=60, known_size=40,
                               defense_reference_size=10, shadow_pool_size=70)
    partition = split_roles(1000, sizes, seed=1)
    check_partition(partition, sizes)
    assert [len(rows) for rows in partition.clients] == [50] * 4
    assert same_partition(partition, split_roles(1000, sizes, seed=1))
    assert not same_partition(partition, split_roles(1000, sizes, seed=2))


def test_iid_partition_too_large_for_the_dataset_is_refused():
    with pytest.raises(P2Error, match="the dataset has 500 rows"):
        split_roles(500, partition_settings("adult", clients=4, client_size=100, test_size=100, eval_size=20,
                                            known_size=20, defense_reference_size=5), seed=0)


# ---------------------------------------------------------------- Dirichlet


def dirichlet(alpha: float, **overrides) -> PartitionSettings:
    values = dict(clients=5, client_size=400, test_size=500, eval_size=200, known_size=100, partition="dirichlet",
                  dirichlet_alpha=alpha, min_client_size=10, defense_reference_size=20)
    values.update(overrides)
    return partition_settings("mnist", **values)


def classes_per_client(partition, labels: np.ndarray, share: float = 0.05) -> float:
    """Mean number of classes holding at least `share` of a client's rows."""
    counts = [np.bincount(labels[rows], minlength=10) / len(rows) for rows in partition.clients]
    return float(np.mean([(c >= share).sum() for c in counts]))


def test_dirichlet_partition_deals_the_iid_members_by_label():
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    skewed = split_roles(5000, dirichlet(0.1), seed=3, labels=labels)
    iid = split_roles(5000, partition_settings("mnist", clients=5, client_size=400, test_size=500, eval_size=200,
                                               known_size=100, defense_reference_size=20), seed=3)
    check_partition(skewed, dirichlet(0.1))
    assert sum(len(rows) for rows in skewed.clients) == 2000
    assert len({len(rows) for rows in skewed.clients}) > 1  # sizes vary around client_size
    assert min(len(rows) for rows in skewed.clients) >= dirichlet(0.1).min_client_size
    # same members and every other role as the IID partition of the same seed: only the dealing differs
    assert set(skewed.members.tolist()) == set(iid.members.tolist())
    for role in ("eval_members", "known_members", *NON_MEMBER_ROLES):
        assert np.array_equal(getattr(skewed, role), getattr(iid, role)), role
    assert all(np.array_equal(a, b) for a, b in zip(skewed.defense_reference, iid.defense_reference))
    assert classes_per_client(skewed, labels) < 6 < classes_per_client(iid, labels)
    assert classes_per_client(split_roles(5000, dirichlet(1000.0), seed=3, labels=labels), labels) > 9


def test_dirichlet_partition_is_seeded():
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    first = split_roles(5000, dirichlet(0.5), seed=4, labels=labels)
    assert same_partition(first, split_roles(5000, dirichlet(0.5), seed=4, labels=labels))
    assert not same_partition(first, split_roles(5000, dirichlet(0.5), seed=5, labels=labels))


@pytest.mark.parametrize("alpha, changes, labels, problem", [
    (0.0, {}, np.zeros(5000, dtype=np.int64), "DIRICHLET_ALPHA = 0.0: must be positive"),
    (0.5, {}, None, "needs the labels"),
    (0.5, {"min_client_size": 500}, np.zeros(5000, dtype=np.int64), "MIN_CLIENT_SIZE"),
    (0.01, {"min_client_size": 300}, np.arange(5000) % 2, "raise DIRICHLET_ALPHA"),
])
def test_impossible_dirichlet_partition_is_refused(alpha, changes, labels, problem):
    with pytest.raises(P2Error, match=problem):
        split_roles(5000, dirichlet(alpha, **changes), seed=0, labels=labels)


# ---------------------------------------------------------------- natural partition by writer


def writer_sizes(**overrides) -> PartitionSettings:
    values = dict(clients=4, client_size=None, writers_per_client=3, test_size=200, eval_size=50, known_size=50,
                  defense_reference_size=10)
    values.update(overrides)
    return partition_settings("femnist", **values)


def test_writer_partition_keeps_each_writer_inside_one_client():
    groups = writer_groups(np.random.default_rng(1), 40, 20, 60)
    partition = split_roles(len(groups), writer_sizes(), seed=0, groups=groups)
    check_partition(partition, writer_sizes())
    client_writers = [set(groups[rows].tolist()) for rows in partition.clients]
    assert [len(writers) for writers in client_writers] == [3] * 4
    member_writers = set().union(*client_writers)
    assert len(member_writers) == 12  # no writer in two clients
    for client, rows in zip(client_writers, partition.clients):  # a client holds all of its writers' rows
        assert len(rows) == np.isin(groups, list(client)).sum()
    for role in NON_MEMBER_ROLES:  # non-members come from the other writers only
        assert not set(groups[getattr(partition, role)].tolist()) & member_writers, role
    assert not set(groups[partition.all_defense_reference].tolist()) & member_writers
    assert len(partition.shadow_pool) == (~np.isin(groups, list(member_writers))).sum() - 300 - 40


def test_writer_partition_caps_clients_and_is_seeded():
    groups = writer_groups(np.random.default_rng(1), 40, 20, 60)
    capped = split_roles(len(groups), writer_sizes(client_size=25), seed=0, groups=groups)
    assert [len(rows) for rows in capped.clients] == [25] * 4
    for rows in capped.clients:
        assert len(np.unique(groups[rows])) <= 3
    first = split_roles(len(groups), writer_sizes(), seed=7, groups=groups)
    assert same_partition(first, split_roles(len(groups), writer_sizes(), seed=7, groups=groups))
    assert not same_partition(first, split_roles(len(groups), writer_sizes(), seed=8, groups=groups))


@pytest.mark.parametrize("sizes, groups, problem", [
    (writer_sizes(), None, "needs a writer id per row"),
    (writer_sizes(clients=10, writers_per_client=4), np.repeat(np.arange(40), 30), "has 40 writers"),
    (writer_sizes(test_size=2000), np.repeat(np.arange(40), 30), "non-member writers have 840 rows"),
    (writer_sizes(defense_reference_size=200), np.repeat(np.arange(40), 30), "DEFENSE_REFERENCE_SIZE|defense reference"),
    (writer_sizes(eval_size=300, known_size=100), np.repeat(np.arange(40), 30), "exceeds the 360 rows"),
])
def test_impossible_writer_partition_is_refused(sizes, groups, problem):
    with pytest.raises(P2Error, match=problem):
        split_roles(1200, sizes, seed=0, groups=groups)


# ---------------------------------------------------------------- files in the real formats


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, train: int = 2000, test: int = 300) -> np.ndarray:
    """Gzip IDX files under their official names; label k draws a bright bar on row 2k + 4."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, train + test)
    images = rng.integers(0, 60, (train + test, 28, 28))
    images[np.arange(len(labels)), 2 * labels + 4, 4:24] = 255
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, rows in (("train", slice(0, train)), ("t10k", slice(train, None))):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images[rows], 2051)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels[rows], 2049)))
    return labels


def write_leaf(folder: Path, writers: int = 30, rows: int = 20) -> None:
    """LEAF's JSON, writers split over two files as LEAF writes them."""
    rng = np.random.default_rng(0)
    names = [f"f{index:04d}_{index % 7:02d}" for index in range(writers)]
    for part, chunk in enumerate((names[:writers // 2], names[writers // 2:])):
        content = {"users": chunk, "num_samples": [rows] * len(chunk),
                   "user_data": {name: {"x": rng.random((rows, 784)).round(3).tolist(),
                                        "y": rng.integers(0, 62, rows).tolist()} for name in chunk}}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"all_data_{part}.json").write_text(json.dumps(content))


def test_writer_partition_file_round_trip(folders, monkeypatch):
    write_leaf(folders / "femnist")
    sizes = writer_sizes(clients=3, writers_per_client=2, test_size=100, eval_size=30, known_size=30)
    run = Run("femnist", seed=0)
    written = write_partition(run, sizes)
    assert same_partition(written, load_partition(run))
    _, meta = load_arrays(run.partition_path)
    assert meta["settings"]["PARTITION"] == "writers" and meta["settings"]["WRITERS_PER_CLIENT"] == 2
    assert [len(rows) for rows in written.clients] == [40] * 3


def test_dirichlet_partition_file_round_trip(folders, monkeypatch):
    labels = write_mnist(folders / "mnist")
    sizes = dirichlet(0.3, clients=4, client_size=150, test_size=200, eval_size=100, known_size=100)
    run = Run("mnist", seed=0)
    written = write_partition(run, sizes)
    loaded = load_partition(run)
    assert same_partition(written, loaded)
    assert len({len(rows) for rows in loaded.clients}) > 1 and sum(len(rows) for rows in loaded.clients) == 600
    assert len(loaded.shadow_pool) == 2300 - 600 - 400 - 4 * 20
    assert [len(rows) for rows in loaded.defense_reference] == [20] * 4
    assert classes_per_client(loaded, labels) < 9
    assert load_arrays(run.partition_path)[1]["settings"]["PARTITION"] == "dirichlet"


# ---------------------------------------------------------------- the quick pipeline on MNIST


def test_quick_pipeline_on_mnist_end_to_end(folders, tmp_path, one_thread):
    """Partition, FedAvg, the P2 round and the white-box attack on both models, with the constants
    of the MNIST scripts in their quick preset; main.py --dataset mnist --quick runs these stages."""
    import pipeline
    from FL_model_generation import fl_stage
    from toolkit import stages as runner

    write_mnist(folders / "mnist")
    run = Run("mnist", seed=0, quick=True)
    experiment = pipeline.load_experiment(run)
    chosen = [stage for stage in pipeline.stages(experiment, ("gradient",))
              if stage.group in ("partition", "fl", "p2") or stage.target in ("fl", "p2")]
    runner.run(chosen)
    assert all(runner.staleness(stage) is None for stage in chosen)
    partition = load_partition(run)
    check_partition(partition, partition_settings("mnist", quick=True))
    assert [len(rows) for rows in partition.clients] == [150] * 3 and len(partition.shadow_pool) == 2300 - 450 - 600 - 3 * 30
    assert run.fl_client_path(2, 2).is_file()

    fl_model, _ = fl_stage.load_model(run.fl_final_path, run)
    p2_model, meta = fl_stage.load_model(run.p2_global_path, run)
    assert list(meta["settings"]["TRAINABLE"]) == ["fc"] and len(meta["client_stats"]) == 3
    # only the fully connected layers moved (the frozen convolutions up to FedAvg's float rounding);
    # whether labels are kept is tested in test_p2_protection.py: two quick rounds leave this model
    # near chance (top probability ~0.11), where any change flips labels
    fl_state, p2_state = fl_model.state_dict(), p2_model.state_dict()
    assert all(torch.allclose(fl_state[name], p2_state[name], rtol=0, atol=1e-6) for name in fl_state
               if name.startswith("conv"))
    assert not torch.equal(fl_state["fc1.weight"], p2_state["fc1.weight"])
    # lambda may be 0: near chance, no example can keep a LABEL_MARGIN lead within EPS
    assert all(0 <= stats["mean_lambda"] <= 1 and 0 <= stats["labels_kept"] <= 1 for stats in meta["client_stats"])

    for target in ("fl", "p2"):
        arrays, _ = load_arrays(run.score_path("gradient", target))
        assert len(arrays["scores"]) == 2 * len(partition.eval_members)
        assert 0 <= roc_auc(arrays) <= 1
    for folder in (run.model_dir, run.results_dir):
        assert tmp_path in folder.parents


def roc_auc(arrays) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(arrays["is_member"], arrays["scores"])


def test_main_quick_on_mnist(folders, one_thread, capsys):
    """The same through main.py, once main.py accepts MNIST (SUPPORTED is the lead's to change)."""
    import main

    write_mnist(folders / "mnist")
    main.main(["--dataset", "mnist", "--quick", "--defenses", "none"])
    assert "mnist (quick preset" in capsys.readouterr().out


# ---------------------------------------------------------------- which datasets main.py can run

STAGE_SCRIPTS = ("FL_model_generation/FL_model_for_{}.py", "defend/defend_{}.py",
                 "menif_attack/membership_attack_{}.py", "other_attack_and_defend/shokri_attack_{}.py",
                 "other_attack_and_defend/ML_leaks_attack_{}.py", "other_attack_and_defend/reference_attacks_{}.py",
                 "other_attack_and_defend/baseline_defenses_{}.py")
REPO = Path(__file__).resolve().parents[1]


def test_every_supported_dataset_has_every_stage_script():
    import pipeline
    from toolkit.settings import check_no_unread_constants

    missing = [pattern.format(dataset) for dataset in pipeline.SUPPORTED for pattern in STAGE_SCRIPTS
               if not (REPO / pattern.format(dataset)).is_file()]
    assert not missing
    for dataset in pipeline.SUPPORTED:  # every script's constants load, and none is left unread
        for group, (pattern, settings_class) in pipeline.SCRIPTS.items():
            script_settings(group, dataset)
            check_no_unread_constants(pattern.format(dataset), [cls for other, cls in pipeline.SCRIPTS.values()
                                                                if other == pattern])


def test_stage_scripts_of_one_dataset_answer_help():
    import subprocess
    import sys

    for pattern in STAGE_SCRIPTS:
        script = REPO / pattern.format("location")
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                              cwd=REPO, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, f"{script.name}: {done.stderr[-2000:]}"
        assert "usage" in done.stdout.lower(), script.name


def test_location_shadow_sizes_fit_its_pool_and_a_misfit_names_the_constant():
    from other_attack_and_defend import ML_leaks_attack_location as ml_leaks, shokri_attack_location as shokri
    from other_attack_and_defend.shadow_attacks import ml_leaks_shadow_rows, shokri_shadow_rows

    pool = split_roles(5010, partition_settings("location"), seed=0).shadow_pool
    shokri_settings, ml_settings = script_settings("shokri", "location"), script_settings("ml_leaks", "location")
    assert len(shokri_shadow_rows(pool, shokri_settings, seed=0, dataset="location")[0]) == shokri.SHADOW_SIZE
    assert len(ml_leaks_shadow_rows(pool, ml_settings, seed=0, dataset="location")[0]) == ml_leaks.SHADOW_IN
    with pytest.raises(P2Error, match=r"lower SHADOW_SIZE in other_attack_and_defend/shokri_attack_location\.py"):
        shokri_shadow_rows(pool, script_settings("shokri", "location", shadow_size=2000), seed=0, dataset="location")
    with pytest.raises(P2Error, match=r"SHADOW_IN / SHADOW_OUT in other_attack_and_defend/ML_leaks_attack_location"):
        ml_leaks_shadow_rows(pool, script_settings("ml_leaks", "location", shadow_in=3000, shadow_out=3000), seed=0,
                             dataset="location")


def test_raw_files_present_checks_names_only(tmp_path):
    from data_preprocessing import raw_files_present

    assert not any(raw_files_present(name, tmp_path) for name in DATASETS)
    touch = {"adult": ["adult/adult.data", "adult/adult.test"], "purchase100": ["purchase100/dataset_purchase.tgz"],
             "location": ["location/bangkok"], "femnist": ["femnist/data/all_data/all_data_0.json"],
             "cifar10": ["cifar10/cifar-10-python.tar.gz"]}
    for name, files in touch.items():
        for index, file in enumerate(files):
            assert not raw_files_present(name, tmp_path)
            (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / file).write_bytes(b"")
        assert raw_files_present(name, tmp_path), name
    assert raw_files_present("purchase50", tmp_path)  # the variants share purchase100's files
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    (tmp_path / "mnist").mkdir()
    for index, name in enumerate(names):
        assert not raw_files_present("mnist", tmp_path)
        (tmp_path / "mnist" / (name + (".gz" if index % 2 else ""))).write_bytes(b"")
    assert raw_files_present("mnist", tmp_path)
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").unlink()
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir()
    assert raw_files_present("cifar10", tmp_path)
    with pytest.raises(P2Error, match="unknown dataset"):
        raw_files_present("svhn", tmp_path)


def test_main_all_runs_the_present_datasets_and_refuses_none(folders, monkeypatch, caplog):
    import logging

    import main

    with pytest.raises(P2Error, match=f"no raw files of any supported dataset .* in {folders}"):
        main.datasets_to_run("all", None)
    write_mnist(folders / "mnist", train=20, test=10)
    (folders / "location").mkdir()
    (folders / "location" / "bangkok").write_text("")
    with caplog.at_level(logging.INFO, logger="main"):
        assert main.datasets_to_run("all", None) == ["location", "mnist"]
    assert "adult: raw files not in" in caplog.text and "cifar10: raw files not in" in caplog.text
    assert main.datasets_to_run("cifar10", None) == ["cifar10"]
    ran = []
    monkeypatch.setattr(main, "run_experiment",
                        lambda run, attacks, force, threads, sweep, engine, defenses: ran.append(run.dataset) or ({}, {}))
    monkeypatch.setattr(main.summary, "format_table", lambda combined: "")
    main.main(["--dataset", "all", "--quick", "--attacks", "gap"])
    assert ran == ["location", "mnist"]
