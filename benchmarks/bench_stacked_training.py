"""Benchmark: many small trainings of one architecture stepped together (stacked_training.train_stacked)
against the same trainings one after another, measured side by side in one run.

Cases: one FedAvg round of 10 clients (the Adult MLP, the MNIST CNN, the CIFAR-10 LeNet), and P2's
fine-tuning of 10 clients' fully connected layers (the Adult MLP). Random data of the real sizes; the
per-model loop is `training.sgd_client_update` (FedAvg) or `train_stacked` on one model at a time (P2).

    python benchmarks/bench_stacked_training.py [--threads 2] [--repeats 2]
"""
import argparse
import time

import torch

from defend.p2_protection import l2_target_distances
from FL_model_generation.fedavg import initial_state
from FL_model_generation.models import build_model
from FL_model_generation.stacked_training import Recipe, train_stacked
from FL_model_generation.training import FLSettings, sgd_client_update

CASES = {
    "Adult MLP, FedAvg round": ({"kind": "mlp", "sizes": [14, 500, 300, 2], "activation": "relu"}, (14,), 2, 2400, 128,
                                5, 0.0),
    "MNIST CNN, FedAvg round": ({"kind": "cnn", "in_channels": 1, "num_classes": 10, "image_size": 28,
                                 "channels": [16, 32], "hidden": [128], "kernel_size": 5, "padding": 0},
                                (1, 28, 28), 10, 2000, 64, 1, 0.9),
    "CIFAR-10 LeNet, FedAvg round": ({"kind": "lenet", "in_channels": 3, "num_classes": 10, "image_size": 32},
                                     (3, 32, 32), 10, 3000, 64, 1, 0.0),
}
CLIENTS = 10


def best(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def fedavg_case(architecture, shape, classes, rows, batch, epochs, momentum, repeats):
    settings = FLSettings(architecture=architecture, rounds=1, local_epochs=epochs, lr=0.05, lr_decay=1.0,
                          momentum=momentum, batch_size=batch)
    start = initial_state(architecture, 0)
    data = [(torch.randn(rows, *shape), torch.randint(0, classes, (rows,))) for _ in range(CLIENTS)]

    def loop():
        for client, (x, y) in enumerate(data):
            sgd_client_update(start, x, y, settings, torch.Generator().manual_seed(client))

    def stacked():
        recipe = Recipe("sgd", lr=settings.lr, epochs=epochs, batch_size=batch, momentum=momentum)
        train_stacked(build_model(architecture), [start] * CLIENTS, [x for x, _ in data], [y for _, y in data], recipe,
                      [torch.Generator().manual_seed(client) for client in range(CLIENTS)])

    return best(loop, repeats), best(stacked, repeats)


def p2_case(repeats, epochs: int = 5):
    architecture = {"kind": "mlp", "sizes": [14, 500, 300, 2], "activation": "relu"}
    start = initial_state(architecture, 0)
    inputs = [torch.randn(2400, 14) for _ in range(CLIENTS)]
    targets = [torch.softmax(torch.randn(2400, 2), 1) for _ in range(CLIENTS)]
    recipe = Recipe("adam", lr=3e-4, epochs=epochs, batch_size=128, reduction="sum")

    def loop():
        for client in range(CLIENTS):
            train_stacked(build_model(architecture), [start], [inputs[client]], [targets[client]], recipe,
                          [torch.Generator().manual_seed(client)], per_example_loss=l2_target_distances)

    def stacked():
        train_stacked(build_model(architecture), [start] * CLIENTS, inputs, targets, recipe,
                      [torch.Generator().manual_seed(client) for client in range(CLIENTS)],
                      per_example_loss=l2_target_distances)

    return best(loop, repeats), best(stacked, repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2, both cores)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, the best kept (default: 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{CLIENTS} models trained one after another vs stacked, {args.threads} threads, best of {args.repeats}")
    print(f"{'case':<36}{'loop s':>9}{'stacked s':>11}{'loop / stacked':>16}")
    rows = [(name, *fedavg_case(*case, args.repeats)) for name, case in CASES.items()]
    rows.append(("Adult MLP, P2 fine-tuning (5 epochs)", *p2_case(args.repeats)))
    for name, loop, stacked in rows:
        print(f"{name:<36}{loop:>9.2f}{stacked:>11.2f}{loop / stacked:>15.2f}x")


if __name__ == "__main__":
    main()
