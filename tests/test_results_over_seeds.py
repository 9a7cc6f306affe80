"""A dataset's combined results come from every seed made with the current constants and data: seeds run in
separate invocations add up, seeds made otherwise are left out by name, and rerunning a committed seed on a
fresh clone rewrites the committed files byte for byte. Full (not quick) runs of main.py on a tiny Adult."""
import logging
import shutil

import pytest

import main
from reporting import metrics_table
from toolkit.checkpoints import load_json

TINY = {"FL_model_generation.FL_model_for_adult": dict(CLIENTS=2, CLIENT_SIZE=150, TEST_SIZE=200, EVAL_SIZE=100,
                                                         KNOWN_SIZE=50, ROUNDS=1, LOCAL_EPOCHS=1),
        "defend.defend_adult": dict(EPOCHS=2),
        "other_attack_and_defend.reference_attacks_adult": dict(NUM_REFERENCE=4),
        "other_attack_and_defend.baseline_defenses_adult": dict(DP_TARGET_EPS=(8,))}
ATTACKS = ["--attacks", "loss", "gap", "--defenses", "top_k"]  # what these tests need, and little else


@pytest.fixture
def tiny_adult(adult, tmp_path, monkeypatch):
    """The synthetic Adult of conftest's `adult`, with the TINY constants; returns its results folder."""
    for module, constants in TINY.items():
        for name, value in constants.items():
            monkeypatch.setattr(__import__(module, fromlist=["_"]), name, value)
    return tmp_path / "results" / "adult"


def seeds_in(folder) -> list[int]:
    return sorted(set(metrics_table.load(folder / "metrics.csv")["seed"]))


def test_seeds_of_separate_invocations_add_up(tiny_adult):
    main.main(["--seed", "0", *ATTACKS])
    main.main(["--seed", "1", *ATTACKS])
    combined = load_json(tiny_adult / "summary.json")
    assert combined["seed"] == [0, 1] and seeds_in(tiny_adult) == [0, 1]
    assert set(combined["std"]["models"]["fl"]) == {"train_acc", "test_acc", "diagnostics"}
    assert set(combined["server_attacks"]["p2_difference"]["per_client"][0]) == {"auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"}
    assert "| adult* | 2 | fl |" in (tiny_adult.parent / "README.md").read_text()


def test_a_seed_swept_on_another_grid_still_counts(tiny_adult, monkeypatch, caplog):
    """The sweep's grid changes no model of a seed's summary, and a wider grid keeps the points swept before (a
    bug once dropped MNIST's seeds 1 and 2 when seed 0 was rerun with --sweep on a new grid)."""
    import defend.defend_adult as p2_script

    monkeypatch.setattr(p2_script, "SWEEP_EPS", (0.1, 0.5))
    monkeypatch.setattr(p2_script, "SWEEP_ROUNDS", (1,))
    main.main(["--seed", "0", "--sweep", *ATTACKS])
    monkeypatch.setattr(p2_script, "SWEEP_EPS", (0.001, 0.1, 0.5))
    with caplog.at_level(logging.WARNING):
        main.main(["--seed", "1", "--sweep", *ATTACKS])
    assert load_json(tiny_adult / "summary.json")["seed"] == [0, 1] and seeds_in(tiny_adult) == [0, 1]
    sweep = load_json(tiny_adult / "p2_sweep.json")
    assert [(point["eps"], point["seeds"]) for point in sweep["points"]] == [(0.001, [1]), (0.1, [0, 1]), (0.5, [0, 1])]
    assert "other constants" not in caplog.text


def test_a_seed_made_with_other_constants_is_left_out_and_named(tiny_adult, monkeypatch, caplog):
    import defend.defend_adult as p2_script

    main.main(["--seed", "0", *ATTACKS])
    monkeypatch.setattr(p2_script, "EPS", 0.2)
    with caplog.at_level(logging.WARNING, logger="reporting.aggregate"):
        main.main(["--seed", "1", *ATTACKS])
    assert load_json(tiny_adult / "summary.json")["seed"] == [1] and seeds_in(tiny_adult) == [1]
    assert "seed(s) 0 were made with other constants or data" in caplog.text
    assert "rerun them with: python main.py --dataset adult --seed 0" in caplog.text


def test_rerunning_a_committed_seed_on_a_fresh_clone_rewrites_the_same_files(tiny_adult, tmp_path):
    main.main(["--seed", "0", "1", *ATTACKS])
    committed = {name: (tiny_adult / name).read_bytes() for name in ("metrics.csv", "summary.json", "tradeoff.png")}
    readme = (tiny_adult.parent / "README.md").read_bytes()
    # a fresh clone has the committed files but neither the models nor the runs' own summaries (not tracked)
    shutil.rmtree(tmp_path / "model")
    for seed in (0, 1):
        (tiny_adult / f"seed{seed}" / "summary.json").unlink()
    main.main(["--seed", "0", *ATTACKS])
    assert {name: (tiny_adult / name).read_bytes() for name in committed} == committed
    assert (tiny_adult.parent / "README.md").read_bytes() == readme
