"""P2's strength sweep over seeds: each setting's mean and std, seeds made otherwise left out by name, a plot."""
import json
import logging

import pytest

from reporting import p2_sweep

CURRENT = {"settings": {"p2": {"EPS": 0.1}}, "data_fingerprint": "abc", "raw_data": "official (MD5 checked)"}


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
    write(results, 2, [entry(0.1, 1, 0.9, 0.1), entry(0.5, 5, 0.9, 0.1)], settings={"p2": {"EPS": 0.3}})
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
