"""Attack figures: one ROC and one histogram figure per attack, the strongest attacks together."""
import numpy as np
import pytest

from toolkit.checkpoints import save_arrays
from reporting.plots import strongest_attacks, write_plots
from toolkit.run import Run
from reporting.summary import attack_metrics


@pytest.fixture
def run_with_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("P2_RESULTS_DIR", str(tmp_path / "results"))
    run = Run("adult", seed=0, quick=False)
    rng = np.random.default_rng(0)
    is_member = np.arange(400) < 200
    scores = {("strong", "fl"): rng.normal(size=400) + 2.0 * is_member,     # continuous, leaks
              ("strong", "p2"): rng.normal(size=400) + 0.2 * is_member,
              ("labels", "fl"): (rng.random(400) < np.where(is_member, 0.9, 0.6)).astype(float),  # 0/1 scores
              ("labels", "p2"): (rng.random(400) < np.where(is_member, 0.9, 0.6)).astype(float)}
    for (attack, target), values in scores.items():
        save_arrays(run.score_path(attack, target), {"attack": attack, "target": target, "threshold": 0.5},
                    scores=values, is_member=is_member, rows=np.arange(400))
    summary = {"models": {"fl": {}, "p2": {}},
               "attacks": {attack: {target: attack_metrics(run, attack, target) for target in ("fl", "p2")}
                           for attack in ("strong", "labels")}}
    return run, summary


def test_every_figure_is_written_as_a_png(run_with_scores):
    run, summary = run_with_scores
    paths = write_plots(run, summary)
    names = sorted(path.name for path in paths)
    assert names == ["hist_labels.png", "hist_strong.png", "roc_labels.png", "roc_strong.png", "roc_strongest.png"]
    for path in paths:
        assert path.parent == run.results_dir / "plots"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    quick = Run("adult", seed=0, quick=True)  # a smoke run draws the ROC curves only
    for attack, target in (("strong", "fl"), ("strong", "p2"), ("labels", "fl"), ("labels", "p2")):
        quick.score_path(attack, target).parent.mkdir(parents=True, exist_ok=True)
        quick.score_path(attack, target).write_bytes(run.score_path(attack, target).read_bytes())
    assert sorted(path.name for path in write_plots(quick, summary)) == [
        "roc_labels.png", "roc_strong.png", "roc_strongest.png"]


def test_strongest_attack_is_chosen_per_model(run_with_scores):
    _, summary = run_with_scores
    assert strongest_attacks(summary, "auc") == {"fl": "strong", "p2": "labels"}
    summary["attacks"]["strong"]["p2"]["tpr_at_1pct_fpr"] = 1.0
    assert strongest_attacks(summary, "tpr_at_1pct_fpr")["p2"] == "strong"


def test_a_missing_score_file_is_left_out(run_with_scores):
    run, summary = run_with_scores
    run.score_path("labels", "p2").unlink()
    summary["attacks"]["ghost"] = {"fl": {"auc": 0.9}}
    names = sorted(path.name for path in write_plots(run, summary))
    assert "roc_ghost.png" not in names and "roc_labels.png" in names
