"""The white-box gradient attack as a pipeline stage: the same attack configuration (same split,
same initialisation) is trained against each target model and scored on the evaluation set.

A target is a toolkit.targets.Target (or the name of a base target, "fl" or "p2"). The attacker only
sees what the target releases: its per-example gradients and losses pass through the target's
`perturb_gradients` / `perturb_losses`, both for the attacker's own training examples and for the
evaluation examples. Targets without a white-box view (whitebox=False, e.g. top-k release) are skipped.

Writes results/<dataset>/<run>/scores/gradient__<target>.npz (scores, membership, threshold)."""
import logging

import numpy as np
import torch

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from FL_model_generation.fl_stage import load_model
from menif_attack.scoring import membership_metrics
from menif_attack.whitebox_attack import AttackFeatures, WhiteboxSettings, attack_features, predict, train_attack
from toolkit import cli
from toolkit.checkpoints import load_arrays, save_arrays
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator
from toolkit.targets import Target, base_targets

log = logging.getLogger(__name__)
ATTACK = "gradient"
EVAL_CHUNK = 500  # evaluation examples whose gradients are held at once


def effective_settings(run: Run, settings: WhiteboxSettings) -> WhiteboxSettings:
    return settings.quick() if run.quick else settings


def resolve_target(run: Run, target: Target | str) -> Target:
    """A Target as given, or the base target ("fl", "p2") of that name."""
    if isinstance(target, Target):
        return target
    known = {candidate.name: candidate for candidate in base_targets(run)}
    if target not in known:
        raise P2Error(f"unknown target model {target!r}; known: {sorted(known)} (or pass a Target)")
    return known[target]


def released_features(target: Target, model, layers: tuple[str, ...], features: torch.Tensor,
                      labels: torch.Tensor, num_classes: int) -> AttackFeatures:
    """Attack inputs of these examples as the target releases them (exact for fl and p2)."""
    exact = attack_features(model, layers, features, labels, num_classes)
    gradients = target.perturb_gradients(dict(zip(layers, exact.gradients)), features=features)
    losses = target.perturb_losses(exact.losses.squeeze(1), model, features, labels)
    return AttackFeatures([gradients[name] for name in layers], exact.labels, losses.reshape(-1, 1))


def attack_target(run: Run, settings: WhiteboxSettings, target: Target | str) -> dict | None:
    """Train the attack against `target`, score the evaluation set, return the metrics (None: no white-box view)."""
    target = resolve_target(run, target)
    if not target.whitebox:
        log.info("gradient attack on %s: skipped, the target releases no gradients", target.name)
        return None
    settings = effective_settings(run, settings)
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
            "settings": settings.as_dict(), "threshold": threshold, "training": history}
    if target.describe() is not None:
        meta["defense"] = target.describe()
    save_arrays(run.score_path(ATTACK, target.name), meta, scores=scores, is_member=is_member, rows=eval_rows)
    metrics = membership_metrics(scores, is_member, threshold)
    log.info("gradient attack on %s: AUC %.4f, balanced accuracy %.4f (best epoch %d, validation AUC %.4f)",
             target.name, metrics["auc"], metrics["balanced_acc"], history["best_epoch"], history["best_val_auc"])
    return metrics


def is_done(run: Run, settings: WhiteboxSettings, target: Target | str) -> bool:
    """True when the scores exist, match these settings (and defense), and are newer than the target model;
    always True for a target without a white-box view (nothing to do)."""
    target = resolve_target(run, target)
    if not target.whitebox:
        return True
    expect = {"settings": effective_settings(run, settings).as_dict(), "seed": run.seed, "quick": run.quick}
    if target.describe() is not None:
        expect["defense"] = target.describe()
    try:
        load_arrays(run.score_path(ATTACK, target.name), expect=expect)
    except P2Error:
        return False
    if not target.checkpoint.is_file():
        return False
    return run.score_path(ATTACK, target.name).stat().st_mtime >= target.checkpoint.stat().st_mtime


def stage_main(dataset: str, settings: WhiteboxSettings, description: str, argv=None) -> None:
    parser = cli.parser(description, dataset=dataset)
    parser.add_argument("--target", choices=["fl", "p2", "both"], default="both",
                        help="model to attack: the FL model, the P2-protected model, or both (default)")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)
    targets = ["fl", "p2"] if args.target == "both" else [args.target]
    cli.main_guard(lambda _: [attack_target(cli.run_from_args(args), settings, target) for target in targets])
