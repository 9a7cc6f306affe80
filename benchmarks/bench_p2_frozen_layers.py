"""Benchmark: P2 fine-tuning of a CNN whose convolutions are frozen, with the frozen layers run once
(defend.p2_protection.split_frozen_prefix) against running the whole model in every epoch.

Prints both times and the speed-up measured in this one run, on the MNIST CNN of
FL_model_generation/FL_model_for_mnist.py with random 28x28 inputs (one client: 2,000 images).
    python benchmarks/bench_p2_frozen_layers.py [--examples 2000] [--epochs 10]
"""
import argparse
import time
from dataclasses import replace
from unittest import mock

import torch

from defend import p2_protection
from defend.defend_mnist import SETTINGS as P2
from FL_model_generation.FL_model_for_mnist import SETTINGS as FL
from FL_model_generation.models import build_model


def fine_tune_seconds(features, targets, settings, cache_frozen: bool) -> float:
    model = build_model(FL.architecture)
    whole = lambda model, features: (model, features)  # noqa: E731  (the uncached path)
    started = time.perf_counter()
    with mock.patch.object(p2_protection, "split_frozen_prefix", p2_protection.split_frozen_prefix if cache_frozen
                           else whole):
        p2_protection.fine_tune(model, features, targets, settings, torch.Generator().manual_seed(0))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10, help="P2 epochs to time (the recipe runs 200)")
    args = parser.parse_args()
    torch.manual_seed(0)
    features = torch.rand(args.examples, 1, 28, 28)
    targets = torch.softmax(torch.randn(args.examples, 10), 1)
    settings = replace(P2, epochs=args.epochs)
    every_epoch = fine_tune_seconds(features, targets, settings, cache_frozen=False)
    once = fine_tune_seconds(features, targets, settings, cache_frozen=True)
    print(f"P2 fine-tuning, MNIST CNN, {args.examples} examples x {args.epochs} epochs, convolutions frozen "
          f"(torch threads: {torch.get_num_threads()})")
    print(f"  convolutions run every epoch: {every_epoch:.2f} s")
    print(f"  convolutions run once:        {once:.2f} s")
    print(f"  speed-up: {every_epoch / once:.1f}x")


if __name__ == "__main__":
    main()
