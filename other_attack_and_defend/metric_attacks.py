"""Membership signals computed from released score vectors, without training (Song & Mittal 2021),
and the label-only gap attack. Every signal is oriented "higher = more likely a member".

Score vectors come as released by a target (softmax, or a defense's perturbed/truncated version),
so nothing here assumes they sum to one or are strictly positive. Confident models release
probabilities within float32 rounding of 1; the signals are therefore computed in float64 from the
*other* classes' mass (sum_{j != y} p_j, accurate down to 1e-45) instead of from 1 - p_y, so that
members with p_y == 1.0f still get distinct values.
"""
import numpy as np
import torch

METRICS = ("loss", "confidence", "entropy", "modified_entropy")
TINY = np.finfo(np.float64).tiny  # floor for log(0): a zeroed (e.g. top-k truncated) entry stays finite


def as_numpy(posteriors) -> np.ndarray:
    if isinstance(posteriors, torch.Tensor):
        posteriors = posteriors.detach().cpu().numpy()
    return np.asarray(posteriors, dtype=np.float64)


def complements(posteriors) -> np.ndarray:
    """(N, C) array of sum_{i != j} p_i for every class j, without the cancellation of 1 - p_j."""
    p = as_numpy(posteriors)
    total = p.sum(1, keepdims=True)
    result = total - p                                   # accurate where p_j is not the dominant entry
    top = p.argmax(1)
    rows = np.arange(len(p))
    others = p.copy()
    others[rows, top] = 0.0
    result[rows, top] = others.sum(1)                    # the dominant entry: sum the small ones directly
    return np.maximum(result, 0.0)


def true_class_mass(posteriors, labels) -> tuple[np.ndarray, np.ndarray]:
    """(p_y, sum_{j != y} p_j) per example, both float64."""
    p = as_numpy(posteriors)
    labels = as_numpy(labels).astype(np.int64)
    rows = np.arange(len(p))
    return p[rows, labels], complements(p)[rows, labels]


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, TINY))


def log_true_probability(posteriors, labels) -> np.ndarray:
    """log p_y, precise both for p_y near 0 and near 1."""
    p_y, rest = true_class_mass(posteriors, labels)
    small = p_y < 0.5
    result = np.empty_like(p_y)
    result[small] = _log(p_y[small])
    result[~small] = np.log1p(-np.minimum(rest[~small], 1.0 - 1e-16))
    return result


def logit_confidence(posteriors, labels) -> np.ndarray:
    """log p_y - log(sum_{j != y} p_j): the logit-scaled confidence of LiRA (Carlini et al. 2022)."""
    p_y, rest = true_class_mass(posteriors, labels)
    return _log(p_y) - _log(rest)


def entropy(posteriors) -> np.ndarray:
    p = as_numpy(posteriors)
    return -(p * _log(p)).sum(1)


def modified_entropy(posteriors, labels) -> np.ndarray:
    """Song & Mittal's Mentr = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)."""
    p = as_numpy(posteriors)
    labels = as_numpy(labels).astype(np.int64)
    rows = np.arange(len(p))
    p_y, rest = true_class_mass(p, labels)
    log_complement = _log(complements(p))                # log(1 - p_j), precise for dominant p_j
    others = p * log_complement
    others[rows, labels] = 0.0
    return -rest * log_true_probability(p, labels) - others.sum(1)


def metric_signal(posteriors, labels, metric: str) -> np.ndarray:
    """One of METRICS as a membership signal (higher = member):
    loss -> -CE = log p_y; confidence -> logit(p_y) (the same ranking as p_y, without float ties);
    entropy -> -H(p); modified_entropy -> -Mentr(p, y)."""
    if metric == "loss":
        return log_true_probability(posteriors, labels)
    if metric == "confidence":
        return logit_confidence(posteriors, labels)
    if metric == "entropy":
        return -entropy(posteriors)
    if metric == "modified_entropy":
        return -modified_entropy(posteriors, labels)
    raise ValueError(f"unknown metric {metric!r}; known: {METRICS}")


def gap_signal(posteriors, labels) -> np.ndarray:
    """The label-only gap attack (Yeom et al. 2018): 1 if the released label is correct, else 0."""
    p = as_numpy(posteriors)
    return (p.argmax(1) == as_numpy(labels).astype(np.int64)).astype(np.float64)


GAP_THRESHOLD = 0.5  # the rule itself: member iff correctly classified, no data needed
