"""Attack metrics against hand-computed ROC cases."""
import numpy as np
import pytest

from toolkit.scoring import balanced_accuracy, choose_threshold, membership_metrics


def test_hand_computed_case():
    # members 0.9, 0.8, 0.4; non-members 0.7, 0.3, 0.2, 0.1
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    is_member = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    metrics = membership_metrics(scores, is_member, threshold=0.75)
    # pairs (member > non-member): 0.9 and 0.8 beat all 4, 0.4 beats 3 -> 11 / 12
    assert metrics["auc"] == pytest.approx(11 / 12)
    # threshold 0.75: TPR 2/3, TNR 4/4
    assert metrics["balanced_acc"] == pytest.approx((2 / 3 + 1) / 2)
    # best TPR - FPR: at threshold 0.8 -> 2/3 - 0; at 0.4 -> 1 - 1/4 = 3/4
    assert metrics["advantage"] == pytest.approx(3 / 4)
    # FPR <= 1% (i.e. no false positive): TPR 2/3
    assert metrics["tpr_at_1pct_fpr"] == pytest.approx(2 / 3)
    assert metrics["tpr_at_0.1pct_fpr"] == pytest.approx(2 / 3)


def test_perfect_and_inverted_attacks():
    is_member = np.array([1, 1, 0, 0], dtype=bool)
    perfect = membership_metrics(np.array([4, 3, 2, 1.0]), is_member, threshold=2.5)
    assert perfect == {"auc": 1.0, "balanced_acc": 1.0, "advantage": 1.0,
                       "tpr_at_1pct_fpr": 1.0, "tpr_at_0.1pct_fpr": 1.0}
    inverted = membership_metrics(np.array([1, 2, 3, 4.0]), is_member, threshold=2.5)
    assert inverted["auc"] == 0.0
    assert inverted["tpr_at_1pct_fpr"] == 0.0


def test_low_fpr_needs_enough_non_members():
    # 1,000 non-members: 1% FPR allows 10 false positives, 0.1% allows 1
    rng = np.random.default_rng(0)
    non_members = np.sort(rng.random(1000))
    # 5 members, each just below one of the 5 highest non-members; the rest hopeless
    members = np.concatenate([non_members[-5:] - 1e-9, np.full(95, -1.0)])
    scores = np.concatenate([members, non_members])
    is_member = np.arange(1100) < 100
    metrics = membership_metrics(scores, is_member, threshold=0.5)
    assert metrics["tpr_at_1pct_fpr"] == pytest.approx(0.05)   # all 5 found with <= 10 false positives
    assert metrics["tpr_at_0.1pct_fpr"] == pytest.approx(0.01)  # one false positive allowed: one member found


def test_threshold_is_chosen_on_given_data_only():
    scores = np.array([0.9, 0.6, 0.5, 0.1])
    is_member = np.array([1, 1, 0, 0], dtype=bool)
    threshold = choose_threshold(scores, is_member)
    assert 0.5 < threshold <= 0.6
    assert balanced_accuracy(scores, is_member, threshold) == 1.0


def test_useless_scores_give_a_finite_threshold_that_flags_nobody():
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    is_member = np.array([1, 1, 0, 0], dtype=bool)  # members score lower: no threshold helps
    threshold = choose_threshold(scores, is_member)
    assert np.isfinite(np.float32(threshold)) and threshold > scores.max()
    assert balanced_accuracy(scores, is_member, threshold) == 0.5
