"""P2's strength sweep over seeds: each setting's mean and std, seeds made otherwise left out by name, a plot."""
import json
import logging

import pytest

from reporting import p2_sweep

GRID = {"SWEEP_EPS": [0.1, 0.5], "SWEEP_ROUNDS": [1, 5]}
CURRENT = {"settings": {"p2": {"EPS": 0.1}, "p2_sweep": GRID}, "data_fingerprint": "abc",
           "raw_data": "official (MD5 checked)"}


def entry(eps, rounds, auc, accuracy):
    return {"eps": eps, "rounds": rounds, "model": f"p2_eps{eps:g}_r{rounds}", "test_acc": accuracy, "train_acc": 0.9,
            "strongest_auc": auc, "strongest_auc_attack": "lira", "strongest_tpr_at_1pct_fpr": auc / 10,
            "strongest_tpr_attack": "rmia", "labels_kept": 0.99, "members_top_prob": 0.8, "nonmembers_top_prob": 0.7}


def write(folder, seed, points, settings=CURRENT["settings"]):
    (folder / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    (folder / f"seed{seed}" / "p2_sweep.json").write_text(json.dumps(
        {"dataset": "toy", "seed": seed, **CURRENT, "settings": settings, "points": points}))


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("P2_RESULTS_DIR", str(tmp_path))
    return tmp_path / "toy"


def test_settings_are_averaged_over_the_current_seeds(results, caplog):
    write(results, 0, [entry(0.1, 1, 0.60, 0.80), entry(0.5, 5, 0.54, 0.78)])
    write(results, 1, [entry(0.1, 1, 0.62, 0.82), entry(0.5, 5, 0.56, 0.76)])
    write(results, 2, [entry(0.1, 1, 0.9, 0.1), entry(0.5, 5, 0.9, 0.1)], settings={"p2": {"EPS": 0.3}, "p2_sweep": GRID})
    with caplog.at_level(logging.WARNING):
        result = p2_sweep.refresh("toy", CURRENT)
    assert result["seeds"] == [0, 1] and "seed(s) 2 were made with other constants" in caplog.text
    first = result["points"][0]
    assert (first["eps"], first["rounds"]) == (0.1, 1)
    assert first["strongest_auc"] == pytest.approx(0.61) and first["strongest_auc_std"] == pytest.approx(0.01)
    assert (results / "p2_sweep.png").read_bytes()[:4] == b"\x89PNG"
    # a later invocation that ran seed 3 only keeps the committed seeds 0 and 1
    for seed in (0, 1):
        (results / f"seed{seed}" / "p2_sweep.json").unlink()
    write(results, 3, [entry(0.1, 1, 0.64, 0.84), entry(0.5, 5, 0.58, 0.80)])
    assert p2_sweep.refresh("toy", CURRENT)["seeds"] == [0, 1, 3]


def test_a_wider_grid_keeps_the_seeds_swept_on_the_narrower_one(results):
    """Each point is averaged over the seeds that ran it: seed 0 swept EPS 0.1 and 0.5, seed 1 also 0.001."""
    write(results, 0, [entry(0.1, 1, 0.60, 0.80), entry(0.5, 1, 0.54, 0.78)])
    wider = {"p2": {"EPS": 0.1}, "p2_sweep": {"SWEEP_EPS": [0.001, 0.1, 0.5], "SWEEP_ROUNDS": [1]}}
    write(results, 1, [entry(0.001, 1, 0.66, 0.83), entry(0.1, 1, 0.62, 0.82), entry(0.5, 1, 0.56, 0.76)],
          settings=wider)
    result = p2_sweep.refresh("toy", {**CURRENT, "settings": wider})
    assert [(point["eps"], point["seeds"]) for point in result["points"]] == [(0.001, [1]), (0.1, [0, 1]), (0.5, [0, 1])]
    assert result["points"][1]["strongest_auc"] == pytest.approx(0.61) and result["points"][0]["strongest_auc_std"] == 0
    # narrowing the grid again leaves the other points out of the combined file
    assert [point["eps"] for point in p2_sweep.refresh("toy", CURRENT)["points"]] == [0.1, 0.5]
