"""One scoring module for every attack: an attack yields a membership score per evaluation example
(higher = more likely a member) plus a threshold chosen without the evaluation labels; the metrics
below come from the same scikit-learn ROC, so attacks are comparable."""
import numpy as np

LOW_FPRS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}


def roc_curve(*args, **kwargs):
    """sklearn's, imported on first use: scikit-learn takes about as long to import as torch, and every process
    that imports the pipeline (a Flower ClientApp starts one per message) would pay for it."""
    from sklearn.metrics import roc_curve as curve

    return curve(*args, **kwargs)


def roc_auc_score(*args, **kwargs):
    """sklearn's, imported on first use (see roc_curve)."""
    from sklearn.metrics import roc_auc_score as score

    return score(*args, **kwargs)


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """Highest TPR among ROC points whose FPR does not exceed `max_fpr`."""
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def balanced_accuracy(scores: np.ndarray, is_member: np.ndarray, threshold: float) -> float:
    """Mean of TPR and TNR when `score >= threshold` predicts member."""
    predicted = scores >= threshold
    return float((predicted[is_member].mean() + (~predicted[~is_member]).mean()) / 2)


def choose_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold with the best balanced accuracy on the attacker's own (validation) data."""
    is_member = np.asarray(is_member, dtype=bool)
    fpr, tpr, thresholds = roc_curve(is_member, scores)
    best = np.argmax(tpr - fpr)
    if np.isfinite(thresholds[best]):
        return float(thresholds[best])
    top = float(np.max(scores))  # no threshold beats flagging nobody: a finite value above every score
    return top + abs(top) + 1.0


def membership_metrics(scores: np.ndarray, is_member: np.ndarray, threshold: float) -> dict:
    """AUC, balanced accuracy at `threshold`, advantage max(TPR - FPR), TPR at 1% and 0.1% FPR."""
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    fpr, tpr, _ = roc_curve(is_member, scores)
    metrics = {"auc": float(roc_auc_score(is_member, scores)),
               "balanced_acc": balanced_accuracy(scores, is_member, threshold),
               "advantage": float(np.max(tpr - fpr))}
    metrics.update({name: tpr_at_fpr(fpr, tpr, limit) for name, limit in LOW_FPRS.items()})
    return metrics


def threshold_free_metrics(scores: np.ndarray, is_member: np.ndarray) -> dict:
    """AUC and TPR at 1% and 0.1% FPR: what an attack without a chosen threshold is scored by."""
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    fpr, tpr, _ = roc_curve(is_member, scores)
    return {"auc": float(roc_auc_score(is_member, scores)),
            **{name: tpr_at_fpr(fpr, tpr, limit) for name, limit in LOW_FPRS.items()}}
