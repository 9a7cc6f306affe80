"""Benchmark: the DP-SGD local updates of one FedAvg round, Opacus against other_attack_and_defend.dp_sgd.

Opacus (ghost clipping, DPOptimizerFastGradientClipping; one client after another, as the pipeline ran it
before) against dp_sgd.local_round (all clients of the round together), both batched over clients
(torch.func.vmap) and as a loop over clients; the speed-up is Opacus over the path local_round picks by
default. Random data, one thread, the same seeds for every path (it prints how many clients' updates equal
Opacus'). Also times one batch's clipped gradient sum with per-example gradients materialised by
torch.func (vmap(grad)) against dp_sgd.ClippedGradientSum.
    Adult MLP 14-500-300-2: 10 clients x 2,400 rows, batch 128, 5 local epochs
    MNIST CNN (FL_model_for_mnist.py's): 10 clients x 2,000 images, batch 64, 1 local epoch
    python benchmarks/bench_dp_sgd.py [--clients 10] [--repeats 1] [--skip-opacus]
"""
import argparse
import time

import torch
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from FL_model_generation.fedavg import initial_state
from FL_model_generation.models import build_model
from FL_model_generation.training import FLSettings
from other_attack_and_defend import dp_sgd

MNIST_CNN = {"kind": "cnn", "in_channels": 1, "num_classes": 10, "image_size": 28, "channels": [16, 32],
             "hidden": [128], "kernel_size": 5, "padding": 0}
CASES = {  # name: (architecture, example shape, classes, rows per client, batch, local epochs, momentum, clip norm)
    "Adult MLP": ({"kind": "mlp", "sizes": [14, 500, 300, 2]}, (14,), 2, 2400, 128, 5, 0.0, 5.0),
    "MNIST CNN": (MNIST_CNN, (1, 28, 28), 10, 2000, 64, 1, 0.9, 1.0),
}


def best_of(repeats: int, function) -> tuple[float, object]:
    """The shortest of `repeats` timed calls (other jobs share the CPU), and the last result."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def same_update(state: dict, expected: dict, start: dict, tolerance: float = 1e-5) -> bool:
    """Equal weights to float rounding: within `tolerance` of the largest change Opacus made."""
    scale = max((expected[key] - start[key]).abs().max().item() for key in start)
    return all((state[key] - expected[key]).abs().max().item() <= tolerance * scale for key in start)


def warm_up(architecture, data, fl: FLSettings, dp: dp_sgd.DPSettings) -> None:
    """A few steps of every path first, so that one-off costs (imports, first allocations) are not timed."""
    small = [(features[:2 * fl.batch_size], labels[:2 * fl.batch_size]) for features, labels in data[:2]]
    start = initial_state(architecture, 0)
    for batched in (True, False):
        clients = [dp_sgd.DPClient(dp, 1.0, 2 * fl.batch_size, fl.batch_size) for _ in small]
        dp_sgd.local_round(start, small, clients, fl, [torch.Generator().manual_seed(0)] * 2, batched=batched)
    dp_sgd.opacus_local_update(dp_sgd.DPClient(dp, 1.0, 2 * fl.batch_size, fl.batch_size), start, *small[0], fl,
                               torch.Generator().manual_seed(0))


def materialised_clipped_sum(model, params, features, labels, max_grad_norm):
    """torch.func's per-example gradients of every parameter, clipped jointly and summed."""
    def loss(weights, x, y):
        return F.cross_entropy(functional_call(model, weights, (x[None],)), y[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))(params, features, labels)
    norms = torch.stack([g.flatten(1).norm(2, dim=1) for g in per_example.values()], dim=1).norm(2, dim=1)
    factors = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    return {name: torch.einsum("i,i...", factors, g) for name, g in per_example.items()}


def count_same(states: list[dict], references: list[dict], start: dict) -> int:
    return sum(same_update(state, expected, start) for state, expected in zip(states, references))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="time each path this often, keep the best")
    parser.add_argument("--noise-multiplier", type=float, default=1.0)
    parser.add_argument("--skip-opacus", action="store_true", help="time only the new paths")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"DP-SGD, the local updates of one FedAvg round; {args.clients} clients, random data, "
          f"noise multiplier {args.noise_multiplier}, torch threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"{'model':<10} {'rows x batch x epochs':>21} {'Opacus':>9} {'batched':>9} {'loop':>9} {'default':>8} "
          f"{'speed-up':>9} {'batched/loop':>13} {'same as Opacus':>15} {'same, 1e-8 apart':>17}")
    step_rows = []
    for name, (architecture, shape, classes, rows, batch, epochs, momentum, norm) in CASES.items():
        fl = FLSettings(architecture=architecture, rounds=1, local_epochs=epochs, lr=0.05, lr_decay=1.0,
                        momentum=momentum, batch_size=batch)
        dp = dp_sgd.DPSettings(target_eps=1.0, delta_factor=10, max_grad_norm=norm, lr=None)
        data_generator = torch.Generator().manual_seed(0)
        data = [(torch.rand(rows, *shape, generator=data_generator),
                 torch.randint(0, classes, (rows,), generator=data_generator)) for _ in range(args.clients)]
        start = initial_state(architecture, 0)
        moved = {key: value + 1e-8 * torch.randn(value.shape, generator=data_generator) for key, value in start.items()}

        def generators():
            return [torch.Generator().manual_seed(1000 + client) for client in range(args.clients)]

        def clients():
            return [dp_sgd.DPClient(dp, args.noise_multiplier, rows, batch) for _ in range(args.clients)]

        def new_path(batched, weights=start):
            return lambda: dp_sgd.local_round(weights, data, clients(), fl, generators(), batched=batched)

        def opacus_path():
            return [dp_sgd.opacus_local_update(client, start, features, labels, fl, generator)
                    for client, (features, labels), generator in zip(clients(), data, generators())]

        warm_up(architecture, data, fl, dp)
        default_batched = dp_sgd.batched_over_clients(architecture)
        batched_s, batched_states = best_of(args.repeats, new_path(True))
        loop_s, loop_states = best_of(args.repeats, new_path(False))
        default_s, default_states = (batched_s, batched_states) if default_batched else (loop_s, loop_states)
        control = count_same(new_path(default_batched, moved)(), default_states, start)
        if args.skip_opacus:
            opacus_s, same = float("nan"), "n/a"
        else:
            opacus_s, reference = best_of(args.repeats, opacus_path)
            same = (f"{count_same(batched_states, reference, start)}, {count_same(loop_states, reference, start)}"
                    f" of {args.clients}")
        print(f"{name:<10} {f'{rows} x {batch} x {epochs}':>21} {opacus_s:8.2f}s {batched_s:8.2f}s {loop_s:8.2f}s "
              f"{'batched' if default_batched else 'loop':>8} {opacus_s / default_s:8.1f}x {loop_s / batched_s:12.2f}x "
              f"{same:>15} {f'{control} of {args.clients}':>17}")

        model = build_model(architecture)
        params = {key: value.detach() for key, value in model.named_parameters()}
        features, labels = data[0][0][:batch], data[0][1][:batch]
        clipped = dp_sgd.ClippedGradientSum(architecture, shape, norm, channels_last=not default_batched)
        repeats = max(3, args.repeats)
        vmap_s, _ = best_of(repeats, lambda: materialised_clipped_sum(model, params, features, labels, norm))
        ours_s, _ = best_of(repeats, lambda: clipped(params, features, labels, torch.ones(batch)))
        step_rows.append(f"{name:<10} {batch:>6} {vmap_s * 1e3:18.1f} ms {ours_s * 1e3:20.1f} ms "
                         f"{vmap_s / ours_s:8.1f}x")
    print("batched/loop > 1: batching over clients is faster. Same as Opacus: clients (batched path, loop path)\n"
          "whose weights equal Opacus' to 1e-5 of its update. Same, 1e-8 apart: clients whose default-path weights\n"
          "stay that close when it starts from weights moved by 1e-8: a ReLU or max-pool near-tie that rounding\n"
          "decides the other way changes one example's gradient, so about as many clients differ for that alone.")
    print()
    print("One batch's clipped gradient sum (one client):")
    print(f"{'model':<10} {'batch':>6} {'torch.func vmap(grad)':>21} {'ClippedGradientSum':>23} {'ratio':>9}")
    print("\n".join(step_rows))


if __name__ == "__main__":
    main()
