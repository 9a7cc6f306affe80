"""Reliability as a user meets it, each case once found by probing the toolkit: changed raw data, stale
P2 clients, wrongly typed or invalid constants, unwritable folders, reruns and resumes, leftovers of a
killed run. Quick Adult runs on synthetic files in the real format, in this process."""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import pipeline
from tests.helpers import run_groups
from toolkit import stages as runner
from toolkit.checkpoints import clean_orphans, save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run

REPO = Path(__file__).resolve().parents[1]


def quick_experiment():
    return pipeline.load_experiment(Run("adult", seed=0, quick=True))


def stale_names(experiment, attacks=()) -> list[str]:
    return [stage.name for stage in pipeline.stages(experiment, tuple(attacks)) if runner.staleness(stage)]


def script_error(capsys, group, *argv, script=None, only=None) -> str:
    """Run a stage script's command line in this process; return its one-line error."""
    with pytest.raises(SystemExit) as stopped:
        pipeline.stage_script(group, script, only=only, argv=list(argv))
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ---------------------------------------------------------------- 1. changed raw data

def flip_labels(path: Path) -> None:
    text = path.read_text()
    path.write_text(text.replace(">50K", "@").replace("<=50K", ">50K").replace("@", "<=50K"))


def test_changed_raw_data_reruns_everything_made_from_it(adult):
    first = quick_experiment()
    run_groups(first, ("partition", "fl"))
    flip_labels(adult / "adult" / "adult.data")  # same rows, other labels: the row count cannot tell
    second = quick_experiment()
    assert second.data.fingerprint != first.data.fingerprint
    assert stale_names(second)[:2] == ["partition", "FedAvg"]
    assert runner.staleness(pipeline.stages(second)[0]) == "the raw data changed"


def test_fewer_raw_rows_give_a_new_partition_not_an_index_error(adult):
    run_groups(quick_experiment(), ("partition", "fl"))
    lines = (adult / "adult" / "adult.data").read_text().splitlines()
    (adult / "adult" / "adult.data").write_text("\n".join(lines[:-1000]) + "\n")
    run_groups(quick_experiment(), ("partition", "fl"))
    assert stale_names(quick_experiment())[0] != "partition"


# ---------------------------------------------------------------- 2. stale P2 clients

def test_p2_clients_made_from_an_older_fl_model_are_never_averaged(adult, monkeypatch, capsys):
    import FL_model_generation.FL_model_for_adult as fl_script

    run_groups(quick_experiment(), ("partition", "fl", "p2"))
    monkeypatch.setattr(fl_script, "LR", 0.05)  # FedAvg retrained: every P2 client is now stale
    run_groups(quick_experiment(), ("fl",))
    pipeline.stage_script("p2", str(REPO / "defend" / "defend_adult.py"), argv=["--quick", "--client", "0"])
    capsys.readouterr()
    message = script_error(capsys, "p2", "--quick", "--dataset", "adult", only="P2 aggregation")
    assert "P2 client 1" in message and "its input model:adult/quick_seed0/fl/final.pt changed" in message
    assert "run python defend/defend_adult.py --seed 0 --quick" in message
    assert stale_names(quick_experiment())[:5] == ["P2 targets of client 1", "P2 targets of client 2", "P2 client 1",
                                                   "P2 client 2", "P2 aggregation"]


# ---------------------------------------------------------------- 3, 4. constants typed or valued wrongly

@pytest.mark.parametrize("module, constant, value, message", [
    ("defend.defend_adult", "EPS", "0.2", r"EPS = '0.2' in defend/defend_adult\.py: must be a number$"),
    ("defend.defend_adult", "EPOCHS", "200", r"EPOCHS = '200' in defend/defend_adult\.py: must be an integer$"),
    ("FL_model_generation.FL_model_for_adult", "BATCH_SIZE", 12.5,
     r"BATCH_SIZE = 12\.5 in FL_model_generation/FL_model_for_adult\.py: must be an integer$"),
    ("FL_model_generation.FL_model_for_adult", "MOMENTUM", -1,
     r"MOMENTUM = -1(\.0)? in FL_model_generation/FL_model_for_adult\.py: must lie in \[0, 1\)$"),
    ("FL_model_generation.FL_model_for_adult", "ARCHITECTURE", {"kind": "mlp", "sizes": [13, 500, 300, 2]},
     r"ARCHITECTURE = .* in FL_model_generation/FL_model_for_adult\.py: does not take adult's inputs of shape \(14,\)"),
    ("FL_model_generation.FL_model_for_adult", "ARCHITECTURE", {"kind": "mlp", "sizes": [14, 500, 3]},
     r"ARCHITECTURE = .*: gives 3 outputs but adult has 2 classes"),
    ("FL_model_generation.FL_model_for_adult", "ARCHITECTURE", {"kind": "mlp", "sizes": [14, -5, 2]},
     r"ARCHITECTURE = .*: mlp sizes \[14, -5, 2\] must list at least two positive integers"),
    ("menif_attack.membership_attack_adult", "LAYERS", ("fc9.weight",),
     r"LAYERS = \('fc9.weight',\) in menif_attack/membership_attack_adult\.py: \['fc9.weight'\] match no parameter"),
    ("defend.defend_adult", "START", "first", r"START = 'first' in defend/defend_adult\.py: must be one of"),
    ("defend.defend_adult", "TRAINABLE", "fc", r"TRAINABLE = 'fc' in defend/defend_adult\.py: must be a tuple of strings$"),
])
def test_a_bad_constant_is_named_as_written_with_its_file(adult, monkeypatch, module, constant, value, message):
    monkeypatch.setattr(__import__(module, fromlist=["_"]), constant, value)
    with pytest.raises(P2Error, match=message):
        quick_experiment()


def test_a_misspelt_constant_is_refused_with_a_suggestion(adult, monkeypatch):
    import defend.defend_adult as script

    monkeypatch.setattr(script, "EPOCH", 3, raising=False)
    with pytest.raises(P2Error, match=r"defend/defend_adult\.py sets EPOCH, which no setting reads \(did you mean EPOCHS"):
        quick_experiment()


def test_an_invalid_constant_is_one_line_from_a_stage_script_and_from_main(adult, monkeypatch, capsys):
    import main
    import defend.defend_adult as script

    monkeypatch.setattr(script, "EPS", -1)
    expected = "error: EPS = -1.0 in defend/defend_adult.py: must lie in (0, 1]"
    assert script_error(capsys, "p2", "--quick", script=str(REPO / "defend" / "defend_adult.py")) == expected
    with pytest.raises(SystemExit):
        main.main(["--quick"])
    assert capsys.readouterr().err.strip() == expected


def test_a_constants_file_that_is_not_python_any_more_is_named(tmp_path, monkeypatch):
    from defend.p2_protection import P2Settings
    from toolkit.settings import load

    (tmp_path / "edited_constants.py").write_text("EPS = 0.1\nLR = 3e-4 +\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(P2Error, match=r"^edited_constants\.py line 2: invalid syntax$"):
        load(P2Settings, "edited_constants")


# ---------------------------------------------------------------- 5. folders that cannot be written

def test_an_unwritable_output_folder_is_one_clear_error(adult, monkeypatch, tmp_path):
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the model folder should be")
    monkeypatch.setenv("P2_MODEL_DIR", str(blocked))
    with pytest.raises(P2Error, match=r"cannot write .*not_a_folder/adult/quick_seed0/partition\.npz .*make .* "
                                      r"writable, or move the output elsewhere \(P2_MODEL_DIR"):
        run_groups(quick_experiment(), ("partition",))


def test_an_empty_results_folder_retrains_no_model(adult, tmp_path):
    import shutil

    experiment = quick_experiment()
    chosen = [stage for stage in pipeline.stages(experiment, ("shokri",))
              if stage.group in ("partition", "fl") or stage.group == "shokri" and stage.target in (None, "fl")]
    runner.run(chosen)
    shutil.rmtree(tmp_path / "results")
    assert [stage.name for stage in chosen if runner.staleness(stage)] == ["shokri attack on fl"]


# ---------------------------------------------------------------- 8. reruns, resumes, leftovers, file modes

def test_changing_eps_reruns_p2_and_the_attacks_on_it_only(adult):
    experiment = replace(quick_experiment(), defenses=("top_k",))
    attacks = ("gradient", "shokri", "loss")
    runner.run(pipeline.stages(experiment, attacks))
    changed = replace(experiment, p2=replace(experiment.p2, eps=0.2))
    aware = ["P2-aware shokri shadow models"] + [f"P2-aware reference model {k}" for k in range(4)]
    assert stale_names(changed, attacks) == [f"P2 targets of client {c}" for c in range(3)] + aware
    runner.run([stage for stage in pipeline.stages(changed, attacks)
                if stage.name.startswith("P2 targets") or stage.name in aware])
    assert stale_names(changed, attacks) == ["P2 client 0", "P2 client 1", "P2 client 2",  # the average: next
                                             "shokri_p2aware attack on p2", "loss_p2aware attack on p2"]
    runner.run([stage for stage in pipeline.stages(changed, attacks) if stage.group == "p2"])
    assert stale_names(changed, attacks) == ["gradient attack on p2", "shokri attack on p2",
                                             "shokri_p2aware attack on p2", "server attacks", "loss attack on p2",
                                             "loss_p2aware attack on p2"]  # DP-SGD, shadows, references: kept


def test_defenses_chooses_which_models_are_trained_and_attacked(adult):
    experiment = replace(quick_experiment(), defenses=("top_k", "hamp"))
    assert [target.name for target in pipeline.targets(experiment)] == ["fl", "p2", "top1", "hamp"]
    names = [stage.name for stage in pipeline.stages(experiment, ("loss",))]
    assert "HAMP hamp" in names and "server attacks on hamp" in names
    assert not [name for name in names if name.startswith(("DP-SGD", "DP-FedAvg", "RelaxLoss", "AdvReg", "MemGuard"))]
    assert {name.removeprefix("loss attack on ") for name in names if name.startswith("loss attack on ")} == \
        {"fl", "p2", "top1", "hamp"}
    with pytest.raises(P2Error, match="unknown defense"):
        pipeline.load_experiment(experiment.run, defenses=("dpsgd",))


def test_protecting_every_client_resumes_where_an_interrupted_round_stopped(adult):
    experiment = quick_experiment()
    run_groups(experiment, ("partition", "fl"))
    pipeline.stage_script("p2", str(REPO / "defend" / "defend_adult.py"), argv=["--quick", "--client", "1"])
    made = experiment.run.p2_client_path(1).stat().st_mtime_ns
    pipeline.stage_script("p2", str(REPO / "defend" / "defend_adult.py"), argv=["--quick"])
    assert experiment.run.p2_client_path(1).stat().st_mtime_ns == made
    assert experiment.run.p2_global_path.is_file() and stale_names(experiment)[0].startswith("DP-SGD")


def test_leftovers_of_a_killed_writer_are_removed_and_a_live_writers_kept(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
        orphan = tmp_path / "fl" / f".final.pt.{dead}.abc123.tmp"
        writing = tmp_path / "p2" / f".global.pt.{live.pid}.def456.tmp"
        for path in (orphan, writing):
            path.parent.mkdir(parents=True)
            path.write_bytes(b"x" * 100)
        assert clean_orphans(tmp_path) == 1
        assert not orphan.exists() and writing.exists()
    finally:
        live.kill()


def test_written_files_get_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "model.pt", {}, {})
    finally:
        os.umask(previous)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o644
