"""The white-box gradient attack as a pipeline stage: the same attack configuration (same split,
same initialisation) is trained against each target model and scored on the evaluation set.

Writes results/<dataset>/<run>/scores/gradient__<target>.npz (scores, membership, threshold)."""
import logging

import numpy as np
import torch

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from FL_model_generation.fl_stage import load_model
from menif_attack.scoring import membership_metrics
from menif_attack.whitebox_attack import WhiteboxSettings, attack_features, predict, train_attack
from toolkit import cli
from toolkit.checkpoints import load_arrays, save_arrays
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import seed_torch, torch_generator

log = logging.getLogger(__name__)
ATTACK = "gradient"
EVAL_CHUNK = 500  # evaluation examples whose gradients are held at once


def effective_settings(run: Run, settings: WhiteboxSettings) -> WhiteboxSettings:
    return settings.quick() if run.quick else settings


def attack_target(run: Run, settings: WhiteboxSettings, target: str) -> dict:
    """Train the attack against `target` ("fl", "p2"), score the evaluation set, return the metrics."""
    settings = effective_settings(run, settings)
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    model, _ = load_model(run.target_model_path(target), run)
    known_rows = np.concatenate([partition.known_members, partition.known_nonmembers])
    known_is_member = torch.from_numpy(np.arange(len(known_rows)) < len(partition.known_members))
    known = attack_features(model, settings.layers, *tensors(dataset, known_rows), dataset.num_classes)
    seed_torch(run.seed, ATTACK)
    attack, threshold, history = train_attack(known, known_is_member, settings, torch_generator(run.seed, ATTACK))
    del known
    eval_rows = np.concatenate([partition.eval_members, partition.eval_nonmembers])
    is_member = np.arange(len(eval_rows)) < len(partition.eval_members)
    scores = np.concatenate([
        predict(attack, attack_features(model, settings.layers, *tensors(dataset, eval_rows[start:start + EVAL_CHUNK]),
                                        dataset.num_classes))
        for start in range(0, len(eval_rows), EVAL_CHUNK)])
    save_arrays(run.score_path(ATTACK, target), {
        "attack": ATTACK, "target": target, "dataset": run.dataset, "seed": run.seed, "quick": run.quick,
        "settings": settings.as_dict(), "threshold": threshold, "training": history},
        scores=scores, is_member=is_member, rows=eval_rows)
    metrics = membership_metrics(scores, is_member, threshold)
    log.info("gradient attack on %s: AUC %.4f, balanced accuracy %.4f (best epoch %d, validation AUC %.4f)",
             target, metrics["auc"], metrics["balanced_acc"], history["best_epoch"], history["best_val_auc"])
    return metrics


def is_done(run: Run, settings: WhiteboxSettings, target: str) -> bool:
    try:
        load_arrays(run.score_path(ATTACK, target), expect={"settings": effective_settings(run, settings).as_dict(),
                                                            "seed": run.seed, "quick": run.quick})
    except P2Error:
        return False
    return run.score_path(ATTACK, target).stat().st_mtime >= run.target_model_path(target).stat().st_mtime


def stage_main(dataset: str, settings: WhiteboxSettings, description: str, argv=None) -> None:
    parser = cli.parser(description, dataset=dataset)
    parser.add_argument("--target", choices=["fl", "p2", "both"], default="both",
                        help="model to attack: the FL model, the P2-protected model, or both (default)")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)
    targets = ["fl", "p2"] if args.target == "both" else [args.target]
    cli.main_guard(lambda _: [attack_target(cli.run_from_args(args), settings, target) for target in targets])
