"""Benchmark: one step of the stacked optimizer as the training loop used to feed it (gradients in the layout
autograd returns, each tensor updated whole) against today's (gradients made contiguous once, each tensor
updated in cache-sized slices), side by side in one run; then, for scale, a few epochs of P2 fine-tuning with
today's code.

A vmapped Linear's weight gradient comes back transposed in memory, so every elementwise operation of the update
(five for Adam) walked it with a stride; and on a stack of many models each operation streamed whole tensors
through memory. Both paths give the same bits (checked here and in tests/test_stacked_training.py). The stack is
the P2-aware attacker's: P2 fine-tuning (Adam) of Location client models.

    python benchmarks/bench_stacked_optimizer.py [--threads 1] [--models 30] [--steps 10]
"""
import argparse
import time

import torch

from defend.p2_protection import l2_target_distances
from FL_model_generation import stacked_training
from FL_model_generation.models import build_model
from FL_model_generation.stacked_training import Recipe, StackedOptimizer, train_stacked

LOCATION_MLP = {"kind": "mlp", "sizes": [446, 1024, 512, 256, 128, 30], "activation": "tanh"}
RECIPE = Recipe("adam", lr=3e-4, epochs=1, batch_size=128, reduction="sum")
WHOLE = 1 << 62  # a slice larger than any tensor: the update runs on whole tensors


def stacked_gradients(models: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(stacked parameters, their gradients as autograd returns them) for one minibatch of every model."""
    torch.manual_seed(0)
    module = build_model(LOCATION_MLP)
    stacked = {name: torch.stack([p.detach()] * models).requires_grad_(True) for name, p in module.named_parameters()}
    x = torch.randint(0, 2, (models, 128, 446)).float()
    outputs = torch.func.vmap(lambda parameters, batch: torch.func.functional_call(module, parameters, (batch,)))(
        stacked, x)
    gradients = torch.autograd.grad(outputs.square().sum(), list(stacked.values()))
    return [p.detach().clone() for p in stacked.values()], list(gradients)


def optimizer_steps(parameters, gradients, steps: int, contiguous: bool, slice_size: int) -> float:
    """Seconds for `steps` Adam steps; the parameters are updated in place."""
    stacked_training.UPDATE_SLICE = slice_size
    optimizer = StackedOptimizer(RECIPE, parameters, len(parameters[0]))
    active = torch.ones(len(parameters[0]), dtype=torch.bool)
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step(tuple(g.contiguous() for g in gradients) if contiguous else tuple(gradients), 3e-4, active)
    return time.perf_counter() - started


def fine_tuning(models: int, epochs: int) -> float:
    """Seconds for P2-style fine-tuning of `models` Location client models (150 rows each) with today's code."""
    torch.manual_seed(0)
    module = build_model(LOCATION_MLP)
    data = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 2, (150, 446), generator=data).float() for _ in range(models)]
    targets = [torch.rand(150, 30, generator=data).softmax(1) for _ in range(models)]
    recipe = Recipe("adam", lr=3e-4, epochs=epochs, batch_size=128, reduction="sum")
    started = time.perf_counter()
    train_stacked(module, [module.state_dict()] * models, inputs, targets, recipe,
                  [torch.Generator().manual_seed(m) for m in range(models)], per_example_loss=l2_target_distances)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=int, default=30, help="client models in the stack (default 30)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps timed per path (default 10)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sliced = stacked_training.UPDATE_SLICE
    parameters, gradients = stacked_gradients(args.models)
    print(f"{args.models} Location MLPs stacked ({sum(p.numel() for p in parameters) / 1e6:.0f}M parameters), "
          f"{args.threads} thread(s); gradient strides {[g.stride() for g in gradients[:1]]}")
    before_parameters = [p.clone() for p in parameters]
    after_parameters = [p.clone() for p in parameters]
    optimizer_steps(before_parameters, gradients, 1, False, WHOLE)  # warm-up: first touch of the state
    optimizer_steps(after_parameters, gradients, 1, True, sliced)
    before = optimizer_steps(before_parameters, gradients, args.steps, False, WHOLE)
    after = optimizer_steps(after_parameters, gradients, args.steps, True, sliced)
    same = all(torch.equal(a, b) for a, b in zip(before_parameters, after_parameters))
    print(f"Adam step, autograd's layout, whole tensors: {before / args.steps * 1e3:7.1f} ms")
    print(f"Adam step, contiguous, in slices:            {after / args.steps * 1e3:7.1f} ms   "
          f"{before / after:.2f}x, same bits: {same}")
    seconds = fine_tuning(args.models, epochs=5)
    print(f"for scale: 5 epochs of P2 fine-tuning (10 steps, forward and backward included) with today's code: "
          f"{seconds:.1f} s")


if __name__ == "__main__":
    main()
