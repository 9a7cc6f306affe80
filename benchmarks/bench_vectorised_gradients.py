"""Benchmark: vectorised per-example gradients (torch.func) against a Python loop per example.

Prints the time of each and the speed-up measured in this one run, for the white-box attack's
features and for P2's poison-label choice, on the Adult MLP (14-500-300-2) with random inputs.
    python benchmarks/bench_vectorised_gradients.py [--examples 1000]
"""
import argparse
import time

import torch
from torch import nn

from defend.p2_protection import poison_labels
from FL_model_generation.models import build_model
from menif_attack.per_example_gradients import per_example_gradients

LAYERS = ["fc1.weight", "fc2.weight", "fc3.weight"]


def loop_gradients(model, features, labels):
    named = dict(model.named_parameters())
    for x, y in zip(features, labels):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[None]), y[None]).backward()
        [named[name].grad.clone() for name in LAYERS]


def loop_poison_labels(model, features, labels):
    weight = model.fc1.weight
    chosen = []
    for x, y in zip(features, labels):
        units = []
        for label in range(2):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[None]), torch.tensor([label])).backward()
            units.append(weight.grad.flatten() / weight.grad.norm())
        chosen.append(max((j for j in range(2) if j != y), key=lambda j: (units[j] - units[y]).pow(2).sum()))
    return torch.tensor(chosen)


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [14, 500, 300, 2]})
    features, labels = torch.rand(args.examples, 14), torch.randint(0, 2, (args.examples,))
    per_example_gradients(model, LAYERS, features[:10], labels[:10])  # warm-up
    rows = [("attack features (3 layers)", timed(per_example_gradients, model, LAYERS, features, labels),
             timed(loop_gradients, model, features, labels)),
            ("poison labels (fc1.weight)", timed(poison_labels, model, "fc1.weight", features, labels),
             timed(loop_poison_labels, model, features, labels))]
    print(f"{args.examples} examples, {torch.get_num_threads()} threads")
    print(f"{'what':30} {'vectorised s':>13} {'loop s':>9} {'speed-up':>9}")
    for name, fast, slow in rows:
        print(f"{name:30} {fast:13.3f} {slow:9.3f} {slow / fast:8.1f}x")


if __name__ == "__main__":
    main()
