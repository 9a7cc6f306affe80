"""Flower's Deployment Engine (flower_federation/): the same models as the in-process run for the same seed,
the same files and provenance, and a SuperNode killed during a round reported with its client and round,
leaving no stage that passes for complete. One local federation (a SuperLink and 3 SuperNodes on 127.0.0.1)
serves the module; every process it started is ended even when a test fails."""
import json
import os
import re
import threading
import time

import pytest
import torch

import pipeline
from flower_federation import job as jobs
from flower_federation.engine import FlowerEngine
from tests.synthetic_adult import write_synthetic_adult
from toolkit import stages as runner
from toolkit.checkpoints import load_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run

# In-process FedAvg trains the MLP clients stacked (stacked_training.py), the Flower clients one by one
# (training.sgd_client_update), and P2 likewise: the same steps in another summation order. The tolerance of
# tests/test_stacked_training.py (which compares those two paths directly) holds for whole runs as well.
ATOL, RTOL = 2e-5, 1e-4
REDUCED = {"fl": {"ROUNDS": 1}, "p2": {"ROUNDS": 2}}   # quick preset, 3 clients; P2 over 2 Flower rounds
FLOWER_STAGES = ("partition", "FedAvg (Flower)", "P2 round (Flower)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("flower")
    write_synthetic_adult(root / "data")
    saved = {name: os.environ.get(name) for name in ("P2_CACHE_DIR", "P2_MODEL_DIR", "P2_VERIFY_CHECKSUMS")}
    os.environ.update(P2_CACHE_DIR=str(root / "cache"), P2_VERIFY_CHECKSUMS="0")
    try:
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def use(root, model: str) -> None:
    """Run.model_dir follows $P2_MODEL_DIR: each engine's run gets its own folder."""
    os.environ["P2_MODEL_DIR"] = str(root / model)


def experiment(root, model: str):
    use(root, model)
    run = Run("adult", 0, quick=True, data_dir=str(root / "data"))
    return pipeline.with_constants(pipeline.load_experiment(run), REDUCED)


@pytest.fixture(scope="module")
def engine(folders):
    made = FlowerEngine(threads=2, reply_timeout=120, keep_running=True)
    try:
        yield made
    finally:
        federation = made.federation
        made.close()
        if federation is not None:
            assert federation.tagged() == [], "Flower processes left running"


@pytest.fixture(scope="module")
def both_runs(folders, engine):
    """The same experiment in this process and on the federation, each in its own model folder."""
    inprocess = experiment(folders, "inprocess")
    runner.run([stage for stage in pipeline.stages(inprocess, attacks=())
                if stage.group in ("partition", "fl", "p2")])
    flower = experiment(folders, "flower")
    everything = pipeline.stages(flower, engine=engine)
    runner.run([stage for stage in everything if stage.name in FLOWER_STAGES])
    return inprocess, flower, everything


def models(root, model: str, exp, path_of) -> tuple[dict, dict]:
    use(root, model)
    return load_checkpoint(path_of(exp.run))


def test_flower_gives_the_in_process_models(both_runs, folders):
    inprocess, flower, _ = both_runs
    files = {"fl/final.pt": lambda run: run.fl_final_path, "p2/global.pt": lambda run: run.p2_global_path,
             "p2/round001/global.pt": lambda run: run.model_dir / "p2" / "round001" / "global.pt",
             "fl/round001/client002.pt": lambda run: run.fl_client_path(1, 2)}
    for name, path_of in files.items():
        expected, _ = models(folders, "inprocess", inprocess, path_of)
        found, meta = models(folders, "flower", flower, path_of)
        assert sorted(found) == sorted(expected), name
        for key in expected:
            assert torch.allclose(found[key], expected[key], atol=ATOL, rtol=RTOL), (name, key)
        assert meta["made_from"]["settings"]["engine"] == "flower", name
    _, p2_meta = models(folders, "flower", flower, lambda run: run.p2_global_path)
    _, p2_expected = models(folders, "inprocess", inprocess, lambda run: run.p2_global_path)
    assert {key: value for key, value in p2_meta.items() if key not in ("made_from", "client_stats")} == \
        {key: value for key, value in p2_expected.items() if key not in ("made_from", "client_stats")}
    assert len(p2_meta["client_stats"]) == 3 and p2_meta["p2_round"] == 2


def test_flower_writes_every_file_and_manifest_but_no_targets(both_runs, folders):
    _, flower, everything = both_runs
    use(folders, "flower")
    done = [stage for stage in everything if stage.name in FLOWER_STAGES]
    assert [runner.staleness(stage) for stage in done] == [None, None, None]
    assert not (flower.run.model_dir / "p2" / "targets").exists()   # the soft targets stay on the clients
    fl_stage = done[1]
    assert json.loads(fl_stage.manifest.read_text())["settings"]["engine"] == "flower"
    # the stages after FedAvg and P2 read the same files: their inputs all exist
    later = [stage for stage in everything if stage.name not in FLOWER_STAGES]
    produced = {str(path) for stage in done for path in stage.outputs}
    assert later and all(os.path.isfile(path) for stage in later for path in stage.inputs if str(path) in produced)
    # the engine is part of the Flower stages' settings only: an in-process run is stale for them, and back
    inprocess_fl = next(stage for stage in pipeline.stages(flower, attacks=()) if stage.name == "FedAvg")
    assert runner.staleness(inprocess_fl) == "settings changed (engine)"


def test_a_client_that_fails_stops_the_round_or_is_left_out():
    failures = {1: (777, "no reply within reply-timeout = 5 s")}
    left, line = jobs.settle("FedAvg", 2, failures, [2, 0], clients=3, minimum=2)
    assert left == [0, 2] and line == "FedAvg round 2 completes without client(s) [1]: averaged over clients [0, 2] " \
                                      "(min-clients = 2)"
    with pytest.raises(P2Error) as error:
        jobs.settle("P2", 1, failures, [0, 2], clients=3, minimum=3)
    assert str(error.value) == ("P2 round 1: client 1 (SuperNode 777) failed: no reply within reply-timeout = 5 s; "
                                "2 of 3 clients left, fewer than the 3 that min-clients asks for")


def test_run_config_round_trips_through_toml():
    import tomllib

    job = jobs.Job(stage="p2", run=Run("adult", 3, True, "/data dir"), model_dir="/m",
                   settings_changes={"p2": {"TRAINABLE": ["fc"]}}, settings_digest="abc",
                   made_from={"stage": "P2 round (Flower)", "settings": {"quote": "a \"b\" \\ c"}},
                   nodes={0: 11, 1: 12}, min_clients=2, reply_timeout=30)
    text = jobs.run_config_toml(job.to_run_config())
    assert jobs.Job.from_run_config(tomllib.loads(text)) == job


def test_a_killed_supernode_is_reported_and_its_stage_never_passes_for_complete(both_runs, engine, folders):
    _, flower, everything = both_runs
    use(folders, "flower")
    federation = engine.federation
    log = federation.logs / "supernode1.log"
    start = len(log.read_text(errors="replace"))
    # A killed SuperNode never replies: the round waits out reply-timeout. Twice the slowest healthy round so far
    # (a new process per message makes a round take seconds, more on a busy machine) tells the two apart.
    rounds = [float(seconds) for path in federation.logs.glob("*.serverapp.log")
              for seconds in re.findall(r"round \d+/\d+: \d+ clients in ([\d.]+) s", path.read_text())]
    engine.min_clients, engine.reply_timeout = 2, max(8.0, 2 * max(rounds))
    killed = threading.Event()

    def kill_when_client_1_gets_work():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.is_set():
            if re.search(r"Receiving: train message", log.read_text(errors="replace")[start:]):
                federation.kill_node(1)
                killed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_client_1_gets_work, daemon=True)
    watcher.start()
    fl = next(stage for stage in everything if stage.name == "FedAvg (Flower)")
    try:
        with pytest.raises(P2Error) as error:
            runner.run([fl], force=True)
    finally:
        killed.set()
        watcher.join()
    message = str(error.value)
    assert "FedAvg (Flower) completed without client 1 in round 1" in message and "\n" not in message
    # completed with the 2 others: the average exists and says who is missing; client 1's file does not
    state, meta = load_checkpoint(flower.run.fl_final_path)
    assert list(meta["missing_clients"]) == ["1"] and not flower.run.fl_client_path(1, 1).exists()
    assert flower.run.fl_client_path(1, 2).exists()
    # ...so the stage has no manifest and reruns; nothing built on it is taken as up to date
    assert not fl.manifest.exists() and runner.staleness(fl) == "not made yet"
    with pytest.raises(P2Error, match="not up to date"):
        runner.check_upstream(everything, [stage for stage in everything if stage.name == "P2 round (Flower)"])
