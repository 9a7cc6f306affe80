"""The white-box gradient attack as a pipeline stage: the same attack configuration (same split,
same initialisation) is trained against each target model and scored on the evaluation set.

A target is an other_attack_and_defend.targets.Target. The attacker only
sees what the target releases: its per-example gradients and losses pass through the target's
`perturb_gradients` / `perturb_losses`, both for the attacker's own training examples and for the
evaluation examples. Gradients a target releases exactly are kept in factored form where that is
exact (whitebox_attack.RankOne). Each example's attack inputs are computed once, not once per epoch.
Targets without a white-box view (whitebox=False, e.g. top-k release) are skipped.

Writes results/<dataset>/<run>/scores/gradient__<target>.npz (scores, membership, threshold)."""
import logging

import numpy as np
import torch

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from FL_model_generation.fl_stage import load_model
from toolkit.scoring import membership_metrics
from menif_attack.whitebox_attack import AttackFeatures, WhiteboxSettings, attack_features, predict, train_attack
from other_attack_and_defend.targets import Target
from toolkit.checkpoints import save_arrays
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator

log = logging.getLogger(__name__)
ATTACK = "gradient"
EVAL_CHUNK = 500  # evaluation examples whose gradients are held at once


def released_features(target: Target, model, layers: tuple[str, ...], features: torch.Tensor,
                      labels: torch.Tensor, num_classes: int) -> AttackFeatures:
    """Attack inputs of these examples as the target releases them. Where the target releases exact
    gradients (fl, p2, DP-SGD), nn.Linear weight gradients stay in factored form; a target that perturbs
    them (output noise on every entry) gets the materialised gradients to perturb."""
    exact = attack_features(model, layers, features, labels, num_classes, factorise=target.exact_gradients)
    gradients = exact.gradients
    if not target.exact_gradients:
        perturbed = target.perturb_gradients(dict(zip(layers, gradients)), features=features)
        gradients = [perturbed[name] for name in layers]
    losses = target.perturb_losses(exact.losses.squeeze(1), model, features, labels)
    return AttackFeatures(gradients, exact.labels, losses.reshape(-1, 1))


def attack_target(run: Run, settings: WhiteboxSettings, target: Target) -> dict | None:
    """Train the attack against `target`, score the evaluation set, return the metrics (None: no white-box view)."""
    if not target.whitebox:
        log.info("gradient attack on %s: skipped, the target releases no gradients", target.name)
        return None
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    model, _ = load_model(target.checkpoint, run)
    known_rows = np.concatenate([partition.known_members, partition.known_nonmembers])
    known_is_member = torch.from_numpy(np.arange(len(known_rows)) < len(partition.known_members))
    known = released_features(target, model, settings.layers, *tensors(dataset, known_rows), dataset.num_classes)
    seed_torch(run.seed, ATTACK)
    attack, threshold, history = train_attack(known, known_is_member, settings, torch_generator(run.seed, ATTACK))
    del known
    eval_rows = np.concatenate([partition.eval_members, partition.eval_nonmembers])
    is_member = np.arange(len(eval_rows)) < len(partition.eval_members)
    scores = np.concatenate([
        predict(attack, released_features(target, model, settings.layers,
                                          *tensors(dataset, eval_rows[start:start + EVAL_CHUNK]), dataset.num_classes))
        for start in range(0, len(eval_rows), EVAL_CHUNK)])
    meta = {"attack": ATTACK, "target": target.name, "dataset": run.dataset, "seed": run.seed, "quick": run.quick,
            "settings": settings.constants(), "threshold": threshold, "training": history}
    if target.describe() is not None:
        meta["defense"] = target.describe()
    save_arrays(run.score_path(ATTACK, target.name), meta, scores=scores, is_member=is_member, rows=eval_rows)
    metrics = membership_metrics(scores, is_member, threshold)
    log.info("gradient attack on %s: AUC %.4f, balanced accuracy %.4f (best epoch %d, validation AUC %.4f)",
             target.name, metrics["auc"], metrics["balanced_acc"], history["best_epoch"], history["best_val_auc"])
    return metrics
