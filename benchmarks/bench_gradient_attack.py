"""Benchmark: the whole white-box gradient attack (features, training, scoring), old path against new.

old: every per-example gradient materialised (torch.func) and the per-op optimiser, as before;
new: nn.Linear weight gradients kept as rank-one factors (errors, layer inputs), fused optimiser.
The target is the Adult MLP (14-500-300-2), trained for a few epochs on random rows with random labels
so that members and non-members differ; the attack uses Adult's settings (menif_attack/
membership_attack_adult.py: fc1/fc2/fc3, 20 channels, Adam 1e-4, 10 epochs, batch 64), 1,000 + 1,000
known and 2,000 + 2,000 evaluation examples, as the attack stage runs it. Both paths start from the same
seed. Prints each path's wall and CPU time, the speed-up and both AUCs.
    python benchmarks/bench_gradient_attack.py [--threads 1] [--epochs 10] [--fused-old]
"""
import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from FL_model_generation.models import build_model
from menif_attack.gradient_attack_stage import EVAL_CHUNK
from menif_attack import whitebox_attack
from menif_attack.whitebox_attack import WhiteboxSettings, attack_features, predict, train_attack
from toolkit.settings import load

SIZES = [14, 500, 300, 2]


def overfit_target(members: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """The Adult MLP trained on `members` only, so that the attack has a membership signal to find."""
    torch.manual_seed(seed)
    model = build_model({"kind": "mlp", "sizes": SIZES})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(100):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(members[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()


def run_attack(model, settings: WhiteboxSettings, known, eval_, factorise: bool, fused: bool, seed: int) -> dict:
    """Features, training and scoring as gradient_attack_stage.attack_target runs them; times and AUC."""
    (known_x, known_y, known_member), (eval_x, eval_y, eval_member) = known, eval_
    whitebox_attack.FUSED_OPTIMIZER = fused
    wall, cpu = time.perf_counter(), time.process_time()
    inputs = attack_features(model, settings.layers, known_x, known_y, 2, factorise=factorise)
    torch.manual_seed(seed)
    attack, _, history = train_attack(inputs, known_member, settings, torch.Generator().manual_seed(seed))
    del inputs
    scores = np.concatenate([
        predict(attack, attack_features(model, settings.layers, eval_x[start:start + EVAL_CHUNK],
                                        eval_y[start:start + EVAL_CHUNK], 2, factorise=factorise))
        for start in range(0, len(eval_y), EVAL_CHUNK)])
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "auc": roc_auc_score(eval_member.numpy(), scores), "best_epoch": history["best_epoch"], "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--epochs", type=int, default=None, help="attack epochs (default: Adult's EPOCHS)")
    parser.add_argument("--known", type=int, default=1000, help="known members, and as many non-members")
    parser.add_argument("--eval", type=int, default=2000, help="evaluation members, and as many non-members")
    parser.add_argument("--target-epochs", type=int, default=20, help="epochs the target overfits its members")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fused-old", action="store_true",
                        help="the old path with the fused optimiser too: the factorisation's gain alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = load(WhiteboxSettings, "menif_attack.membership_attack_adult")
    if args.epochs is not None:
        settings = replace(settings, epochs=args.epochs)

    generator = torch.Generator().manual_seed(args.seed)
    size = 2 * (args.known + args.eval)
    features = torch.rand(size, SIZES[0], generator=generator)
    labels = torch.randint(0, 2, (size,), generator=generator)
    members = torch.arange(size) < args.known + args.eval  # known members, eval members, then non-members
    model = overfit_target(features[members], labels[members], args.target_epochs, args.seed)

    def split(member_rows, outsider_rows):
        rows = torch.cat([member_rows, outsider_rows])
        return features[rows], labels[rows], torch.arange(len(rows)) < len(member_rows)

    outsiders = torch.arange(args.known + args.eval, size)
    known = split(torch.arange(args.known), outsiders[:args.known])
    eval_ = split(torch.arange(args.known, args.known + args.eval), outsiders[args.known:])

    runs = {"old": (False, args.fused_old), "new": (True, True)}
    results = {name: run_attack(model, settings, known, eval_, factorise, fused, args.seed)
               for name, (factorise, fused) in runs.items()}
    whitebox_attack.FUSED_OPTIMIZER = True
    old, new = results["old"], results["new"]
    print(f"Adult MLP {'-'.join(map(str, SIZES))}, layers {', '.join(settings.layers)}, {settings.conv_channels} "
          f"channels, {settings.epochs} epochs, batch {settings.batch_size}; {args.known}+{args.known} known, "
          f"{args.eval}+{args.eval} evaluation; {torch.get_num_threads()} thread(s)")
    print(f"{'path':42} {'wall s':>8} {'CPU s':>8} {'AUC':>9} {'best epoch':>11}")
    for name, result in results.items():
        factorise, fused = runs[name]
        what = f"{name}: {'factorised' if factorise else 'materialised'}, {'fused' if fused else 'per-op'} optimiser"
        print(f"{what:42} {result['wall']:8.2f} {result['cpu']:8.2f} {result['auc']:9.5f} {result['best_epoch']:11d}")
    print(f"speed-up: {old['wall'] / new['wall']:.1f}x wall, {old['cpu'] / new['cpu']:.1f}x CPU; "
          f"AUC difference {new['auc'] - old['auc']:+.2e}, "
          f"largest score difference {np.abs(new['scores'] - old['scores']).max():.2e}")


if __name__ == "__main__":
    main()
