"""Roofline of a run's stages: how far each stage's wall time is from its FLOPs at this machine's matmul speed.

For every stage that computes (training, fine-tuning, per-example gradients), the FLOPs are counted with
torch.utils.flop_counter.FlopCounterMode on the stage's own step functions (one step, or one epoch, on
inputs of the stage's real shapes) and multiplied by the number of steps the stage takes. The matmul
throughput is measured in this process at the stage's dominant shape (its largest layer at its batch size,
stacked over the models it trains together). The roofline time is FLOPs / throughput; the ratio of the
stage's wall time (from the run's summary.json `timings`) to it says how close the stage runs to what this
CPU can do. Stages that do little arithmetic (the black-box attacks' scoring, aggregation) are summed.

    python benchmarks/roofline.py --dataset adult --summary results/adult/seed0/summary.json --threads 2
"""
import argparse
import math
import time
from collections import defaultdict
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

import pipeline
from defend.p2_protection import client_targets, fine_tune_together
from FL_model_generation.fedavg import initial_state, local_updates, stacks_well
from FL_model_generation.models import build_model, load_state
from menif_attack.whitebox_attack import attack_features, predict, train_attack
from other_attack_and_defend import dp_sgd, dp_tuning
from other_attack_and_defend.attack_common import train_classifiers
from toolkit.checkpoints import load_json
from toolkit.run import Run
from toolkit.seeding import torch_generator


class _NoModules:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks clash with torch.func.vjp inside
    the DP-SGD step; the total count does not need per-module attribution."""
    parents = {"Global"}
    is_bw = False

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def count_flops(function) -> int:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModules()
    with counter:
        function()
    return counter.get_total_flops()


def dominant_rate(architecture: dict, rows: int, models: int, repeats: int = 5) -> tuple[float, str]:
    """FLOP/s of the architecture's largest layer at `rows` rows, for `models` models at once (a batched
    matmul, or the convolution itself for a CNN), and the shape measured."""
    model = build_model(architecture)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if convs:
        layer = max(convs, key=lambda m: m.weight.numel())
        inputs = {}
        model.eval()
        handle = layer.register_forward_hook(lambda m, args, out: inputs.setdefault("x", args[0]))
        shape = (1, architecture.get("in_channels", 1), architecture.get("image_size", 28),
                 architecture.get("image_size", 28))
        with torch.no_grad():
            model(torch.zeros(shape))
        handle.remove()
        x = torch.randn(rows * models, *inputs["x"].shape[1:])
        flops = count_flops(lambda: layer(x))
        run = lambda: layer(x)  # noqa: E731
        label = f"conv {tuple(layer.weight.shape)} on {tuple(x.shape)}"
    else:
        layer = max((m for m in model.modules() if isinstance(m, torch.nn.Linear)), key=lambda m: m.weight.numel())
        a = torch.randn(models, rows, layer.in_features)
        w = torch.randn(models, layer.in_features, layer.out_features)
        flops = 2 * models * rows * layer.in_features * layer.out_features
        run = lambda: torch.bmm(a, w)  # noqa: E731
        label = f"{models} x ({rows}x{layer.in_features}) @ ({layer.in_features}x{layer.out_features})"
    with torch.no_grad():
        run()
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        seconds = (time.perf_counter() - started) / repeats
    return flops / seconds, label


def data(architecture: dict, rows: int, classes: int, shape: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(rows, *shape, generator=generator), torch.randint(0, classes, (rows,), generator=generator)


def fedavg_like(experiment, models: int, rows_per_client: int, shape, classes) -> tuple[int, float, str]:
    """FLOPs of `models` client trainings with the FL recipe (one step counted, times the steps), and the
    rate at its shape."""
    fl = experiment.fl
    one_step = replace(fl, local_epochs=1)
    starts = [initial_state(fl.architecture, 0)] * models
    batches = [data(fl.architecture, fl.batch_size, classes, shape) for _ in range(models)]
    generators = [torch.Generator().manual_seed(m) for m in range(models)]
    flops = count_flops(lambda: local_updates(one_step, starts, batches, generators))
    steps = fl.rounds * fl.local_epochs * math.ceil(rows_per_client / fl.batch_size)
    rate, label = dominant_rate(fl.architecture, fl.batch_size, models if stacks_well(fl.architecture) else 1)
    return flops * steps, rate, label


def dp_recipe(experiment, search: dp_tuning.Search) -> dp_tuning.Candidate:
    """The DP-SGD recipe the run's search chose (its record in results/), or the grid's first before a search."""
    path = dp_tuning.search_path(experiment.run, search.target_eps)
    if not path.is_file():
        return search.grid()[0]
    return dp_tuning.chosen_candidate(load_json(path))


def costs(experiment) -> dict[str, tuple[int, float, str]]:
    """{stage family: (FLOPs, FLOP/s at its dominant shape, shape)} for the stages that compute."""
    exp, data_set = experiment, experiment.data
    shape, classes = tuple(data_set.features.shape[1:]), data_set.num_classes
    clients, client_size = exp.partition.clients, exp.partition.client_size or 1000
    fl, p2 = exp.fl, exp.p2
    result = {"FedAvg": fedavg_like(exp, clients, client_size, shape, classes)}

    model = load_state(build_model(fl.architecture), initial_state(fl.architecture, 0), "")
    x, y = data(fl.architecture, client_size, classes, shape)
    flops = count_flops(lambda: client_targets(model, x, y, p2)) * clients
    result["P2 targets"] = (flops, *dominant_rate(fl.architecture, client_size, 1))
    models = [load_state(build_model(fl.architecture), model.state_dict(), "") for _ in range(clients)]
    batch = [data(fl.architecture, p2.batch_size, classes, shape)[0] for _ in range(clients)]
    targets = [torch.softmax(torch.randn(p2.batch_size, classes), 1) for _ in range(clients)]
    flops = count_flops(lambda: fine_tune_together(models, batch, targets, p2,
                                                   [torch.Generator().manual_seed(c) for c in range(clients)], epochs=1))
    result["P2 fine-tuning"] = (flops * p2.epochs * math.ceil(client_size / p2.batch_size),
                                *dominant_rate(fl.architecture, p2.batch_size, clients))

    for search in exp.baselines.dp_searches():
        recipe = dp_recipe(exp, search)
        sums = dp_sgd.GradientSums(fl.architecture, shape, recipe.max_grad_norm)
        params = {name: torch.stack([value] * clients) for name, value in initial_state(fl.architecture, 0).items()}
        rows = [data(fl.architecture, client_size, classes, shape) for _ in range(clients)]
        prepared = [(sums.prepare(features), labels) for features, labels in rows]
        batches = [torch.arange(fl.batch_size) for _ in range(clients)]
        flops = count_flops(lambda: sums(params, prepared, batches))
        steps = fl.rounds * recipe.local_epochs * dp_sgd.steps_per_epoch(client_size, fl.batch_size)
        result[f"DP-SGD eps={search.target_eps:g}"] = (flops * steps, *dominant_rate(
            fl.architecture, fl.batch_size, clients if sums.batched else 1))

    wb = exp.gradient
    known = 2 * exp.partition.known_size
    kx, ky = data(fl.architecture, known, classes, shape)
    ex, ey = data(fl.architecture, 2 * exp.partition.eval_size, classes, shape)
    one_epoch = replace(wb, epochs=1)

    def attack():
        features = attack_features(model, wb.layers, kx, ky, classes)
        trained, _, _ = train_attack(features, torch.arange(known) < known // 2, one_epoch,
                                     torch_generator(0, "roofline"))
        predict(trained, attack_features(model, wb.layers, ex, ey, classes))

    flops = count_flops(attack)
    train_share = count_flops(lambda: train_attack(attack_features(model, wb.layers, kx, ky, classes),
                                                   torch.arange(known) < known // 2, one_epoch,
                                                   torch_generator(0, "roofline")))
    head_rows = wb.conv_channels * max(p.shape[0] for n, p in model.named_parameters() if n in wb.layers)
    result["gradient attack (each target)"] = (flops + train_share * (wb.epochs - 1), *dominant_rate(
        {"kind": "mlp", "sizes": [head_rows, 512, 1]}, wb.batch_size, 1))

    for attack in ("shokri", "ml_leaks"):
        settings = getattr(exp, attack)
        count = settings.num_shadows if attack == "shokri" else 1
        rows_in = settings.shadow_size // 2 if attack == "shokri" else settings.shadow_in
        sets = [data(fl.architecture, settings.shadow_batch_size, classes, shape) for _ in range(count)]
        flops = count_flops(lambda: train_classifiers(fl.architecture, sets, settings.shadow_optimizer,
                                                      settings.shadow_lr, 1, settings.shadow_batch_size, 0,
                                                      [(attack, i) for i in range(count)]))
        result[f"{attack} shadow models"] = (flops * settings.shadow_epochs * math.ceil(rows_in / settings.shadow_batch_size),
                                             *dominant_rate(fl.architecture, settings.shadow_batch_size,
                                                            count if stacks_well(fl.architecture) else 1))
    pool = len(data_set.labels) - clients * client_size
    pool = min(pool, exp.partition.shadow_pool_size or pool)
    references = exp.reference.num_reference
    result["reference models"] = fedavg_like(exp, references * clients, max(1, pool // 2 // clients), shape, classes)
    return result


FAMILIES = {"FedAvg": "FedAvg", "P2 targets of client": "P2 targets", "P2 client": "P2 fine-tuning",
            "P2 round": "P2 fine-tuning", "P2 p2_eps": "P2 strength sweep (every P2 round of it)",
            "gradient attack on": "gradient attack (each target)",
            "shokri shadow models": "shokri shadow models", "ml_leaks shadow models": "ml_leaks shadow models",
            "reference model": "reference models", "P2-aware": "P2-aware reference and shadow models",
            "HAMP": "competitors' training (HAMP, MemGuard, RelaxLoss, AdvReg, DP-FedAvg)",
            "MemGuard": "competitors' training (HAMP, MemGuard, RelaxLoss, AdvReg, DP-FedAvg)",
            "RelaxLoss": "competitors' training (HAMP, MemGuard, RelaxLoss, AdvReg, DP-FedAvg)",
            "AdvReg": "competitors' training (HAMP, MemGuard, RelaxLoss, AdvReg, DP-FedAvg)",
            "DP-FedAvg": "competitors' training (HAMP, MemGuard, RelaxLoss, AdvReg, DP-FedAvg)"}


def family(stage: str) -> str:
    if stage.startswith("DP-SGD eps="):   # the search's candidates and record, apart from the tuned model
        return "DP-SGD recipe search (every eps)" if " candidate " in stage or stage.endswith(" search") else stage
    for prefix, name in FAMILIES.items():
        if stage.startswith(prefix):
            return name
    return "everything else (attack scoring, averaging, diagnostics, server attacks)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--summary", default=None, help="a run's summary.json with `timings` (default: seed 0's)")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: $P2_DATA_DIR or dataset/)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    experiment = pipeline.load_experiment(Run(args.dataset, 0, False, args.data_dir))
    summary = load_json(args.summary or Run(args.dataset, 0).results_dir / "summary.json")
    walls: dict[str, float] = defaultdict(float)
    targets_seen: dict[str, int] = defaultdict(int)
    for stage, seconds in summary["timings"].items():
        walls[family(stage)] += seconds
        if stage.startswith("gradient attack on"):
            targets_seen["gradient attack (each target)"] += 1
    for name, count in targets_seen.items():
        walls[name] /= count
    print(f"# {args.dataset}: roofline, {torch.get_num_threads()} threads; wall times from "
          f"{args.summary or 'seed 0'} (recorded with {summary.get('threads')} threads)")
    print("| stage | wall s | GFLOP | matmul GFLOP/s at its dominant shape | roofline s | wall / roofline | shape |")
    print("|---|---|---|---|---|---|---|")
    computed = costs(experiment)
    for name, (flops, rate, label) in computed.items():
        wall, roofline = walls.get(name), flops / rate
        print(f"| {name} | {f'{wall:.1f}' if wall else '–'} | {flops / 1e9:.1f} | {rate / 1e9:.0f} | {roofline:.1f} | "
              f"{f'{wall / roofline:.1f}' if wall else '–'} | {label} |")
    for name, wall in walls.items():
        if name not in computed:
            print(f"| {name} | {wall:.1f} | not counted | | | | |")
    print(f"| **all stages** | {sum(summary['timings'].values()):.1f} | | | | | |")


if __name__ == "__main__":
    main()
